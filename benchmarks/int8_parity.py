"""How the INT8 export parity rule (export/parity.py int8_agreement) was measured: each INT8
graph of a run, run as the onnxruntime-cpu and openvino-cpu targets export it and as OpenVINO
reads the unchanged shared graph, against the graph run exactly in ONNX Runtime (S8S8 integer
kernels, which agree 100% with the QAT model on every graph measured), on the run's val split.

Prints, per graph and runtime, the top-1 agreement on all images and on the images the
reference decides by more than the INT8 noise (the mean |logit change| between the reference
and the run's FP32 model), and the reference's top-1 margin on every image that flipped.

    python benchmarks/int8_parity.py RUN [GRAPH.onnx ...] [--ov-isa AVX2]

GRAPH defaults to the run's own INT8 graph; other graphs must come from the same FP32 model
(benchmarks/qat_steps.py writes such graphs). --ov-isa AVX2 makes OpenVINO run as on a CPU
without VNNI (ONEDNN_MAX_CPU_ISA), where u8 x s8 pair sums saturate with 8-bit weights.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a run folder written by ftedge tune")
    ap.add_argument("graphs", type=Path, nargs="*", help="INT8 Q/DQ ONNX graphs of that run")
    ap.add_argument("--ov-isa", help="ONEDNN_MAX_CPU_ISA for OpenVINO, e.g. AVX2")
    args = ap.parse_args()
    if args.ov_isa:
        os.environ["ONEDNN_MAX_CPU_ISA"] = args.ov_isa  # read when OpenVINO loads its CPU plugin
    missing = [str(g) for g in args.graphs if not g.is_file()]
    if missing:
        ap.error(f"no such file: {', '.join(missing)}")

    import onnx
    import openvino as ov

    from ftedge.data.transforms import preprocess_samples
    from ftedge.export.parity import int8_agreement
    from ftedge.formats.run import RunFolder
    from ftedge.graph import edit
    from ftedge.graph.layout import to_openvino_layout, to_ort_layout
    from ftedge.runtime import infer_batches
    from ftedge.runtime.ort import OrtRunner
    from ftedge.runtime.pytorch import load_run

    loaded = load_run(args.run)
    run = RunFolder(loaded.path)
    graphs = args.graphs or [p for p in (run.int8_onnx("qat"), run.int8_onnx("ptq")) if p.is_file()]
    if not graphs:
        ap.error(f"{args.run} has no INT8 graph; pass one")
    samples = run.samples("val", loaded.classes)
    x = preprocess_samples(samples, loaded.contract)
    fp32 = infer_batches(loaded.runner, x)
    core = ov.Core()

    def openvino(model):
        with tempfile.TemporaryDirectory() as tmp:
            onnx.save(model, f"{tmp}/m.onnx")
            compiled = core.compile_model(core.read_model(f"{tmp}/m.onnx"), "CPU")
        return infer_batches(type("R", (), {"infer": lambda self, b: compiled(b)[0]})(), x)

    print(f"{len(x)} val images of {loaded.path}; OpenVINO ISA limit: {args.ov_isa or 'none'}")
    print("| graph | runtime | agreement, all images | INT8 noise (logit) | decisive images "
          "| agreement, decisive | reference margins of the flips |")
    print("|---|---|---|---|---|---|---|")
    for path in graphs:
        shared = onnx.load(str(path))
        ref = infer_batches(OrtRunner(path), x)
        ort_model = onnx.load(str(path))
        to_ort_layout(ort_model)
        ov_model = onnx.load(str(path))
        to_openvino_layout(ov_model)
        for name, logits in (("onnxruntime-cpu", infer_batches(OrtRunner(edit.clean(ort_model)), x)),
                             ("openvino-cpu", openvino(ov_model)),
                             ("openvino, shared graph", openvino(shared))):
            a = int8_agreement(ref, logits, fp32)
            flips = ref.argmax(1) != logits.argmax(1)
            rows = np.arange(len(ref))
            margins = ref[rows, ref.argmax(1)] - ref[rows, logits.argmax(1)]
            shown = ", ".join(f"{m:.2f}" for m in sorted(margins[flips])[:8])
            print(f"| {path} | {name} | {1 - flips.mean():.4f} ({flips.sum()}) "
                  f"| {a['int8_noise_logit']:.3f} | {a['decisive_images']} "
                  f"| {a['decisive_top1_agreement']:.4f} ({a['decisive_disagreements']}) | {shown} |")


if __name__ == "__main__":
    main()
