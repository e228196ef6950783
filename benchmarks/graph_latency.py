"""Latency of two or more Q/DQ INT8 graphs side by side, in one run: each graph in the layout
the onnxruntime-cpu and openvino-cpu targets export (graph/layout.py), timed in interleaved
rounds so that drifts of the machine hit every graph alike; prints the median ms per image
and each graph's speed relative to the first.

    python benchmarks/graph_latency.py old/model.ptq.int8.onnx new/model.ptq.int8.onnx \\
        [--batch 1] [--threads 2] [--rounds 3]

This is how full-range depthwise weights were checked to cost nothing (README, "Weights are
stored with 7-bit magnitudes").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from int8_latency import ort_layout, ov_compile, timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("graphs", type=Path, nargs="+", help="INT8 Q/DQ ONNX files (the same input)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    missing = [str(g) for g in args.graphs if not g.is_file()]
    if missing:
        ap.error(f"no such file: {', '.join(missing)}")

    import onnx
    import openvino as ov

    from ftedge.runtime.onnxruntime.runner import inference_session

    shapes = set()
    for g in args.graphs:
        try:
            dims = onnx.load(str(g)).graph.input[0].type.tensor_type.shape.dim
        except Exception as e:  # protobuf's DecodeError and friends: not an ONNX model
            ap.error(f"{g} is not a readable ONNX model ({type(e).__name__}); pass the "
                     "model.int8.onnx or model.ptq.int8.onnx of a run")
        shapes.add(tuple(d.dim_value for d in dims[1:]))
    if len(shapes) != 1:
        ap.error(f"the graphs take different inputs {sorted(shapes)}: compare graphs of one "
                 "network at one resolution")
    x = np.random.default_rng(0).standard_normal((args.batch, *shapes.pop())).astype(np.float32)
    core, times = ov.Core(), {}
    with tempfile.TemporaryDirectory() as tmp:
        runners = {}
        for i, g in enumerate(args.graphs):
            ort_graph = ort_layout(g, Path(tmp) / f"{i}.ort.onnx")
            sess = inference_session(ort_graph, threads=args.threads)
            name = sess.get_inputs()[0].name
            runners[(i, "ONNX Runtime")] = lambda b, s=sess, n=name: s.run(None, {n: b})
            ov_graph = ort_layout(g, Path(tmp) / f"{i}.ov.onnx", "openvino")
            compiled = ov_compile(core, core.read_model(str(ov_graph)), args.threads)
            runners[(i, "OpenVINO")] = lambda b, c=compiled: c(b)
        for _ in range(args.rounds):
            for key, fn in runners.items():
                times.setdefault(key, []).append(timed(fn, x))
    print(f"batch {args.batch}, {args.threads} threads, median ms/image over {args.rounds} "
          "interleaved rounds (speed relative to the first graph)")
    for runtime in ("ONNX Runtime", "OpenVINO"):
        base = float(np.median(times[(0, runtime)]))
        for i, g in enumerate(args.graphs):
            ms = float(np.median(times[(i, runtime)]))
            print(f"{runtime:13} {ms:8.3f} ms  {base / ms:5.2f}x  {g}")


if __name__ == "__main__":
    main()
