"""Top-1 under the exact contract and under the DeepStream (nvinfer) emulation, for a run.

The run's val split, preprocessed as its contract says and as the kit's nvinfer config does
(whole frame stretched, or letterboxed for a letterbox run; bilinear without antialiasing;
normalisation by the graph, as the TensorRT exports do by default, and with nvinfer's own
net-scale-factor/offsets), scored with the FP32 weights (PyTorch, best.pt) and each INT8
graph present (ONNX Runtime): the same numbers parity.json's `deepstream_preprocessing`
records at export, for runs tuned with different geometries side by side.

Usage: python benchmarks/device_pipeline.py RUN [RUN ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ftedge.data.transforms import preprocess_samples
from ftedge.deploy.deepstream import emulate_samples
from ftedge.formats.contract import describe
from ftedge.formats.run import RunFolder
from ftedge.runtime import infer_batches
from ftedge.runtime.onnxruntime.runner import OrtRunner
from ftedge.runtime.pytorch import load_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    print("| run | contract | model | val | top-1 exact contract | DeepStream emulated "
          "(in-graph norm.) | drop | emulated (nvinfer norm.) |")
    print("|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        loaded = load_run(run)
        samples = RunFolder(run).samples("val", loaded.classes)
        labels = np.array([s.label for s in samples])
        x = preprocess_samples(samples, loaded.contract)
        ds_exact = emulate_samples(samples, loaded.contract, pixels_in_graph=True)
        ds_nvinfer = emulate_samples(samples, loaded.contract, pixels_in_graph=False)
        models = [("FP32 (PyTorch)", loaded.runner)]
        for kind in ("qat", "ptq"):
            path = RunFolder(run).int8_onnx(kind)
            if path.is_file():
                models.append((f"INT8 {path.name} (ORT)", OrtRunner(path)))
        for name, runner in models:
            top = [float((infer_batches(runner, v).argmax(1) == labels).mean())
                   for v in (x, ds_exact, ds_nvinfer)]
            print(f"| {run.name} | {describe(loaded.contract)} | {name} | {len(labels)} "
                  f"| {top[0]:.4f} | {top[1]:.4f} | {100 * (top[0] - top[1]):+.2f} "
                  f"| {top[2]:.4f} |", flush=True)


if __name__ == "__main__":
    main()
