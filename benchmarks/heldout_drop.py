#!/usr/bin/env python3
"""INT8 drop of finished runs on images none of their choices saw, with 95% intervals.

A run's gate compares its INT8 graph with its FP32 graph on the val split, the split that
also picked best.pt and the shipped QAT epoch: a few hundred images, one image 0.37 points at
272. This scores each run's model.fp32.onnx and model.int8.onnx (ONNX Runtime, the run's own
preprocessing contract) on another folder of class folders, optionally leaving out the images
that are also in a given folder (the runs' val split), and prints per run and pooled per
group: FP32 and INT8 top-1, drop, top-1 agreement, and the drop's exact 95% interval
(ftedge.quant.gate.drop_interval). Runs are grouped by the name of their parent folder's
entry up to the first "_s<seed>" (fs_w7_s0, fs_w7_s1 -> fs_w7).

    # the 918 flowers17 photos the 10-shot set leaves out of training and val
    python benchmarks/heldout_drop.py /work/exp/pq/fs_*_s*/e40 \\
        --data /work/data/real/flowers17-10shot-bigval/val \\
        --exclude /work/data/real/flowers17-10shot/val

The runs must share the class list of the data's folders (their classes.json).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def images(data: Path, classes: list[str], exclude: Path | None) -> list:
    """(path, label) of every image in data/<class>/, minus those also in exclude/<class>/."""
    from ftedge.data.folder import Sample

    out = []
    for label, name in enumerate(classes):
        folder = data / name
        if not folder.is_dir():
            raise SystemExit(f"{folder} is missing: the data must have the runs' classes")
        for f in sorted(folder.iterdir()):
            if f.is_file() and not (exclude and (exclude / name / f.name).exists()):
                out.append(Sample(f, label))
    return out


def group_of(run: Path) -> str:
    name = run.name if not re.fullmatch(r"e\d+", run.name) else run.parent.name
    return re.split(r"_s\d+$", name)[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished runs (model.fp32.onnx, model.int8.onnx)")
    ap.add_argument("--data", type=Path, required=True, help="class folders to score on")
    ap.add_argument("--exclude", type=Path, help="leave out images also in these class folders")
    args = ap.parse_args(argv)

    from ftedge.data.transforms import preprocess_samples
    from ftedge.formats.run import FP32_ONNX, INT8_ONNX
    from ftedge.io import read_json, sha256_file
    from ftedge.quant.gate import accuracy_gate, drop_interval, onnx_logits

    first = args.runs[0]
    classes = read_json(first / "classes.json")
    contract = read_json(first / "preprocessing.json")
    samples = images(args.data, classes, args.exclude)
    labels = np.array([s.label for s in samples])
    x = preprocess_samples(samples, contract)
    print(f"{len(samples)} images ({args.data}" + (f", without those in {args.exclude}"
                                                     if args.exclude else "") + ")")
    # per group: only FP32 right, only INT8 right, images, sum FP32 top-1, sum INT8 top-1, runs
    pooled = defaultdict(lambda: [0, 0, 0, 0.0, 0.0, 0])
    fp32_cache: dict[str, np.ndarray] = {}
    for run in args.runs:
        if read_json(run / "classes.json") != classes or read_json(run / "preprocessing.json") != contract:
            raise SystemExit(f"{run}: another class list or preprocessing than {first}")
        fp32_path = run / FP32_ONNX
        key = sha256_file(fp32_path)  # runs QAT'd from one best.pt share their FP32 graph
        if key not in fp32_cache:
            fp32_cache[key] = onnx_logits(fp32_path, x)
        ref = fp32_cache[key]
        gate = accuracy_gate(ref, onnx_logits(run / INT8_ONNX["qat"], x), labels, classes=classes,
                             max_drop=1.0)
        m, (lo, hi) = gate["mcnemar"], gate["drop_ci95_points"]
        print(f"{run}: FP32 {gate['fp32_top1']:.4f} INT8 {gate['int8_top1']:.4f} drop "
              f"{gate['drop_points']:+.2f} ({lo:+.2f} to {hi:+.2f}) agreement "
              f"{gate['top1_agreement']:.4f}")
        p = pooled[group_of(run)]
        p[0] += m["only_fp32_right"]
        p[1] += m["only_int8_right"]
        p[2] += len(labels)
        p[3] += gate["fp32_top1"]
        p[4] += gate["int8_top1"]
        p[5] += 1
    print("\n| group | runs | images | FP32 top-1 | INT8 top-1 | drop (points) | 95% interval |")
    print("|---|---|---|---|---|---|---|")
    for name, (a, b, n, f, i, k) in sorted(pooled.items()):
        lo, hi = drop_interval(a, b, n)
        print(f"| {name} | {int(k)} | {n} | {f / k:.4f} | {i / k:.4f} | {100 * (a - b) / n:+.2f} "
              f"| {lo:+.2f} to {hi:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
