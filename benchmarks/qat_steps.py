"""How many QAT steps does a run need? QAT alone, from one finished run's best.pt, per length.

Each length runs the QAT stage of `ftedge tune --qat` (same config, split and seed as RUN,
no fallback) into OUT/e<N>, starting from a copy of RUN's best.pt, and reports the INT8 top-1
of model.int8.onnx in ONNX Runtime against FP32. This is how qat.epochs' default
(config.resolve_qat_epochs) was chosen; the FP32 stage is not repeated, so lengths compare on
one FP32 model:

    python benchmarks/qat_steps.py /work/exp/matrix2/flowers17-10shot-mobilenet_v2/qat \\
        --epochs 3,10,20,30,40,60 --set qat.distill=false --out /work/exp/qsteps
    # any other setting the same way: --set qat.lr=3e-5 --set qat.weight_bits=8

(the numbers in resolve_qat_epochs' docstring were measured before distillation became the
default, hence qat.distill=false.)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from pathlib import Path

import yaml

from ftedge.errors import FtedgeError


def qat_only(run: Path, out: Path, epochs: int, settings: list[str]) -> dict:
    from ftedge.config import TuneConfig, from_dict, validate_tune_config
    from ftedge.training import dist as D
    from ftedge.stages.tune.trainer import Trainer

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for kv in settings:
        key, value = kv.split("=", 1)
        section, name = key.split(".")
        cfg.setdefault(section, {})[name] = yaml.safe_load(value)
    cfg["out"] = str(out)
    cfg["qat"].update(enabled=True, fallback=False, epochs=epochs)
    config = from_dict(TuneConfig, cfg)
    validate_tune_config(config)
    ctx, device = D.init_distributed("cpu")
    trainer = Trainer(config, ctx, device, ckpt=None, callbacks=[])
    shutil.copy(run / "best.pt", out / "best.pt")  # the FP32 stage, done: QAT starts from it
    fp32 = [r for r in json.loads((run / "metrics.json").read_text()) if r["phase"] != "qat"]
    summary = json.loads((run / "summary.json").read_text())
    trainer.history, trainer.start_epoch = fp32, len(fp32)
    trainer.best_top1, trainer.best_epoch = summary["best_top1"], summary["best_epoch"]
    t0 = time.perf_counter()
    result = trainer.fit()
    gate = json.loads((out / "gate.json").read_text())
    steps = len(trainer.train_loader)
    return {"epochs": epochs, "steps": epochs * steps, "fp32": gate["fp32_top1"],
            "int8": gate["int8_top1"], "qat_torch": result.qat_top1,
            "epochs_run": sum(h["phase"] == "qat" for h in trainer.history),
            "shipped_epoch": gate["qat_checkpoint"]["chosen_epoch"],
            "seconds": round(time.perf_counter() - t0)}


RUN_FILES = ("config.yaml", "best.pt", "metrics.json", "summary.json")


def _lengths(text: str) -> list[int]:
    try:
        lengths = [int(e) for e in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers, e.g. 3,10,40") from None
    if min(lengths) < 1:
        raise argparse.ArgumentTypeError("QAT lengths must be >= 1")
    return lengths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a finished `ftedge tune` run (best.pt, metrics.json)")
    ap.add_argument("--epochs", type=_lengths, default="3,10,20,40",
                    help="QAT lengths to try, comma-separated")
    ap.add_argument("--out", type=Path, required=True, help="one run folder per length goes here")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="a config change for every length (repeatable)")
    args = ap.parse_args()
    missing = [f for f in RUN_FILES if not (args.run / f).is_file()]
    if missing:
        ap.error(f"{args.run} is not a finished `ftedge tune` run: {', '.join(missing)} missing")
    if any(not re.fullmatch(r"\w+\.\w+=.*", kv) for kv in args.set):
        ap.error("--set takes SECTION.KEY=VALUE, e.g. --set qat.distill=false")
    taken = [args.out / f"e{n}" for n in args.epochs if (args.out / f"e{n}").exists()]
    if taken:
        ap.error(f"{', '.join(map(str, taken))} exist: choose another --out or remove them")
    rows = []
    for n in args.epochs:
        out = args.out / f"e{n}"
        try:
            rows.append(qat_only(args.run, out, n, args.set))
        except FtedgeError as e:
            raise SystemExit(f"error: {e}") from None
        print(json.dumps(rows[-1]), flush=True)
    print("\n| QAT epochs | steps | epochs run | INT8 top-1 (ORT) | FP32 | drop (points) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['epochs']} | {r['steps']} | {r['epochs_run']} | {r['int8']:.4f} | "
              f"{r['fp32']:.4f} | {100 * (r['fp32'] - r['int8']):+.2f} |")


if __name__ == "__main__":
    main()
