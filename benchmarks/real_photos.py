"""The real-photo matrix: linear probe, FP32 recipes, PTQ variants, QAT, per set and network.

Per data set (class folders with train/ + val/, e.g. from benchmarks/real_photo_sets.py) and
network, in one run on one machine:

  probe        frozen ImageNet features + logistic regression (`ftedge probe`)
  fp32 old     the recipe before issue 9: BatchNorm in training mode at batch 32, random head,
               15 epochs
  fp32 new     the default recipe (`ftedge tune` without options)
  ptq ...      `ftedge quantize` of the new run: minmax / entropy, 7- and 8-bit weights,
               without and with bias correction, without and with the float fallback
  qat          `ftedge tune --qat --no-distill` (the FP32 stage of the same run is "fp32 new")
  qat+distill  the same with --distill (the default)

Every step is an ftedge command; its outputs stay in --out (a step whose result is there is
not run again), and the table is printed at the end:

    python benchmarks/real_photos.py --data /work/data/real --sets flowers17,monkeys10 \\
        --models efficientnet_lite0 --img-size 128 --out /work/exp/matrix
    # MobileNetV2 from converted ImageNet weights (benchmarks/convert_mobilenet_weights.py):
    python benchmarks/real_photos.py ... --models mobilenet_v2 \\
        --weights mobilenet_v2=/work/weights/mobilenet_v2_from_onnx_int8.pth
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

OLD_RECIPE = "train:\n  bn: train\n  head_init: random\n  epochs: 15\n"
PTQ = {"ptq minmax w7": ["--calib-method", "minmax"],
       "ptq entropy w7": ["--calib-method", "entropy"],
       "ptq minmax w8": ["--calib-method", "minmax", "--weight-bits", "8"],
       "ptq entropy w8": ["--calib-method", "entropy", "--weight-bits", "8"]}


def ftedge(*args, log: Path) -> int:
    with open(log, "w") as f:
        return subprocess.run([sys.executable, "-m", "ftedge", *map(str, args)], stdout=f,
                              stderr=subprocess.STDOUT).returncode


def cached(path: Path, make):
    if path.is_file():
        return json.loads(path.read_text())
    value = make()
    path.write_text(json.dumps(value))
    return value


def run_cell(data: Path, model: str, weights: str | None, size: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    common = ["--data", data, "--model", model, "--img-size", size, "--device", "cpu"]
    if weights:
        common += ["--weights", weights]
    row: dict = {}

    def probe():
        ftedge("probe", *common[:6], *(["--weights", weights] if weights else []), "--json",
               log=out / "probe.log")
        return json.loads((out / "probe.log").read_text().strip().splitlines()[-1])

    row["probe"] = cached(out / "probe.json", probe)["val_top1"]

    def tune(name, extra, config=None):
        run = out / name
        if not (run / "summary.json").is_file():
            shutil.rmtree(run, ignore_errors=True)
            args = [*common, "--out", run, *extra] + (["--config", config] if config else [])
            t0 = time.perf_counter()
            ftedge("tune", *args, log=out / f"{name}.log")
            (out / f"{name}.seconds").write_text(f"{time.perf_counter() - t0:.0f}")
        return json.loads((run / "summary.json").read_text())

    (out / "old.yaml").write_text(OLD_RECIPE)
    row["fp32 old"] = tune("old", config_file=[], resume=out / "old.yaml")["best_top1"]
    qat = tune("qat", config_file=["--qat", "--no-distill", "--no-fallback"])
    row["fp32 new"] = qat["best_top1"]
    row["qat"] = (qat["qat"] or {}).get("int8_onnx_top1")
    row["qat fp32 onnx"] = (qat["qat"] or {}).get("fp32_onnx_top1")
    distill = tune("qat_distill", config_file=["--qat", "--distill", "--no-fallback"])
    row["qat+distill"] = (distill["qat"] or {}).get("int8_onnx_top1")
    row["qat+distill fp32"] = distill["best_top1"]
    for name, args in {**PTQ, "ptq entropy w7 +bc": ["--calib-method", "entropy"],
                       "ptq entropy w7 +bc +fallback": ["--calib-method", "entropy"]}.items():
        def quantize(args=args, name=name):
            bc = ["--bias-correction"] if "+bc" in name else ["--no-bias-correction"]
            fb = ["--fallback"] if "fallback" in name else ["--no-fallback"]
            ftedge("quantize", out / "qat", *args, *bc, *fb,
                   log=out / f"{name.replace(' ', '_')}.log")
            gate = json.loads((out / "qat" / "gate_ptq.json").read_text())
            return {"int8_top1": gate["int8_top1"], "fp32_top1": gate["fp32_top1"],
                    "openvino_top1": (gate.get("openvino") or {}).get("int8_top1"),
                    "float_layers": len((gate.get("fallback") or {}).get("float_layers", [])),
                    "passed": gate["passed"]}
        row[name] = cached(out / f"{name.replace(' ', '_')}.json", quantize)
    return row


def fmt(v) -> str:
    if isinstance(v, dict):
        s = f"{v['int8_top1']:.4f}"
        if v.get("openvino_top1") is not None:
            s += f" (OV {v['openvino_top1']:.4f})"
        return s + (f", {v['float_layers']} float" if v.get("float_layers") else "")
    return "n/a" if v is None else f"{v:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding the sets")
    ap.add_argument("--sets", default="flowers17,monkeys10")
    ap.add_argument("--models", default="efficientnet_lite0")
    ap.add_argument("--weights", action="append", default=[], help="MODEL=FILE")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    weights = dict(w.split("=", 1) for w in a.weights)
    rows = []
    for s in a.sets.split(","):
        for m in a.models.split(","):
            print(f"running {s} x {m} ...", flush=True)
            rows.append((s, m, run_cell(a.data / s, m, weights.get(m), a.img_size,
                                        a.out / f"{s}-{m}")))
    keys = list(rows[0][2])
    print(f"\n{a.img_size} px, val top-1 (PTQ: ONNX Runtime, and OpenVINO in brackets)\n")
    print("| set | network | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for s, m, r in rows:
        print(f"| {s} | {m} | " + " | ".join(fmt(r.get(k)) for k in keys) + " |")


if __name__ == "__main__":
    main()
