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
import shutil
import time
from pathlib import Path

import yaml


def qat_only(run: Path, out: Path, epochs: int, settings: list[str]) -> dict:
    from ftedge.config import TuneConfig, from_dict, validate_tune_config
    from ftedge.training import dist as D
    from ftedge.training.trainer import Trainer

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for kv in settings:
        key, value = kv.split("=", 1)
        section, name = key.split(".")
        cfg[section][name] = yaml.safe_load(value)
    cfg["out"] = str(out)
    cfg["qat"].update(enabled=True, fallback=False, epochs=epochs)
    config = from_dict(TuneConfig, cfg)
    validate_tune_config(config)
    ctx, device = D.init_distributed("cpu")
    trainer = Trainer(config, ctx, device, None, [])
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
            "seconds": round(time.perf_counter() - t0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a finished `ftedge tune` run (best.pt, metrics.json)")
    ap.add_argument("--epochs", default="3,10,20,40", help="QAT lengths to try, comma-separated")
    ap.add_argument("--out", type=Path, required=True, help="one run folder per length goes here")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="a config change for every length (repeatable)")
    args = ap.parse_args()
    rows = []
    for n in (int(e) for e in args.epochs.split(",")):
        out = args.out / f"e{n}"
        if out.exists():
            raise SystemExit(f"{out} exists: choose another --out or remove it")
        args.out.mkdir(parents=True, exist_ok=True)
        rows.append(qat_only(args.run, out, n, args.set))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| QAT epochs | steps | epochs run | INT8 top-1 (ORT) | FP32 | drop (points) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['epochs']} | {r['steps']} | {r['epochs_run']} | {r['int8']:.4f} | "
              f"{r['fp32']:.4f} | {100 * (r['fp32'] - r['int8']):+.2f} |")


if __name__ == "__main__":
    main()
