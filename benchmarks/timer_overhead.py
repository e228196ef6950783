"""What ftedge bench's measurement itself costs per call, in microseconds.

1. the timer alone: time_calls around a function that does nothing;
2. a trivial model: an Identity ONNX graph (1x3x8x8) through ftedge's ONNX Runtime runner, and
   the same session called directly, so the runner's own Python overhead shows too.

Usage: python benchmarks/timer_overhead.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from ftedge.stages.bench.latency import latency_percentiles, time_calls, timer_overhead_us
from ftedge.runtime.onnxruntime.runner import OrtRunner


def identity_model(path: Path) -> Path:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "id", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20_000, help="timed calls per row")
    a = ap.parse_args()
    x = np.zeros((1, 3, 8, 8), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        runner = OrtRunner(identity_model(Path(tmp) / "id.onnx"), threads=1)
        direct = lambda: runner.session.run(None, {"input": x})  # noqa: E731
        rows = {"timer alone (empty call)": None,
                "ONNX Runtime session.run, Identity": direct,
                "ftedge OrtRunner.infer, Identity": lambda: runner.infer(x)}
        print(f"{'what':40} {'p50 us':>9} {'p99 us':>9}")
        for name, fn in rows.items():
            if fn is None:
                print(f"{name:40} {timer_overhead_us():9.2f} {'':>9}")
                continue
            s = latency_percentiles(time_calls(fn, warmup=200, runs=a.runs), 1)
            print(f"{name:40} {1000 * s['p50_ms']:9.2f} {1000 * s['p99_ms']:9.2f}")


if __name__ == "__main__":
    main()
