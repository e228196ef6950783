"""INT8 latency and top-1 with and without normalisation inside the graph, side by side.

For one run, exports the INT8 graph for ONNX Runtime and OpenVINO (CPU) twice: as trained
(float32 input, already normalised) and with `--input-format uint8` (8-bit RGB in, Cast/Mul/
Sub/Div as the graph's first nodes; in ONNX Runtime's INT8 graph the input quantizer absorbs
Mul/Sub/Div, and a third ONNX Runtime row keeps them, export's fold turned off, to show what
the fold buys). Each artifact is timed on its own input (random pixels /
their normalised floats) in alternating rounds, batch 1 and 32, and scored on the run's val
split through ftedge's own loaders (the uint8 artifact gets the val images' pixels).

Usage: python benchmarks/input_normalization.py RUN [--rounds 5] [--seconds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

import ftedge.runtime.onnxruntime.target as ort_target
from ftedge.stages.bench.latency import latency_percentiles, time_calls
from ftedge.data.transforms import preprocess_samples
from ftedge.runtime.artifact import load_artifact
from ftedge.stages.export.exporter import export_run
from ftedge.formats.run import RunFolder
from ftedge.graph.normalize import pixels_from_normalized
from ftedge.runtime import infer_batches
from ftedge.runtime.pytorch.runner import load_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    loaded = load_run(args.run)
    samples = RunFolder(args.run).samples("val", loaded.classes)
    x = preprocess_samples(samples, loaded.contract)
    labels = np.array([s.label for s in samples])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        arts = {}
        fold = ort_target.fold_normalization
        for target, fmt in (("onnxruntime-cpu", "normalized"), ("onnxruntime-cpu", "uint8"),
                            ("onnxruntime-cpu", "uint8, no fold"),
                            ("openvino-cpu", "normalized"), ("openvino-cpu", "uint8")):
            ort_target.fold_normalization = (lambda m: None) if "no fold" in fmt else fold
            res = export_run(args.run, target, precision="int8",
                             out=Path(tmp) / f"{target}-{fmt.replace(', ', '-')}",
                             input_format=fmt.split(",")[0], log=lambda m: None)
            graph = (res.manifest.get("extra") or {}).get("graph", {})
            if "normalization_in_quantizer" in graph:
                print(f"{target} {fmt}: normalization_in_quantizer "
                      f"{graph['normalization_in_quantizer']}")
            art = load_artifact(res.folder, args.threads)
            # the runner of a uint8 artifact converts normalised floats back to pixels;
            # time its inner runner on pixels so only the artifact is timed
            inner = getattr(art.runner, "inner", art.runner)
            top1 = float((infer_batches(art.runner, x).argmax(1) == labels).mean())
            arts[(target, fmt)] = (inner, top1)
        times: dict = {k: {1: [], 32: []} for k in arts}
        for _ in range(args.rounds):
            for b in (1, 32):
                pixels = rng.integers(0, 256, (b, *loaded.contract["input_size"]), np.uint8)
                floats = ((pixels.astype(np.float32) * np.float32(1 / 255)
                           - np.float32(loaded.contract["mean"]).reshape(1, 3, 1, 1))
                          / np.float32(loaded.contract["std"]).reshape(1, 3, 1, 1))
                assert np.array_equal(pixels_from_normalized(floats, loaded.contract, "uint8"),
                                      pixels)
                for key, (runner, _) in arts.items():
                    feed = pixels if key[1].startswith("uint8") else floats
                    t = time_calls(lambda r=runner, f=feed: r.infer(f), warmup=3,
                                   seconds=args.seconds)
                    times[key][b].append(latency_percentiles(t, b)["p50_ms"])
    print(f"run {args.run} ({len(labels)} val images), INT8, {args.threads} threads, "
          f"median over {args.rounds} alternating rounds of each round's p50:")
    print("| runtime | input | top-1 | p50 ms batch 1 | vs normalized | p50 ms batch 32 "
          "| vs normalized |")
    print("|---|---|---|---|---|---|---|")
    for (target, fmt), (_, top1) in arts.items():
        med = {b: statistics.median(times[(target, fmt)][b]) for b in (1, 32)}
        ref = {b: statistics.median(times[(target, "normalized")][b]) for b in (1, 32)}
        print(f"| {target} | {fmt} | {top1:.4f} | {med[1]:.3f} | {med[1] / ref[1]:.3f} "
              f"| {med[32]:.3f} | {med[32] / ref[32]:.3f} |")


if __name__ == "__main__":
    main()
