"""Cross-check ftedge bench's timer against OpenVINO's own benchmark_app, in one run.

Same OpenVINO IR, same thread count, batch 1, one synchronous request: ftedge's model-only p50
against benchmark_app's median latency; the ratio should be within 1.00 +- 0.10. Also prints
the measurement overhead per call of ftedge's timer.

Usage: python benchmarks/bench_vs_benchmark_app.py ARTIFACT_DIR [--threads 2] [--seconds 3] [--rounds 8]
(ARTIFACT_DIR: an openvino-cpu artifact folder from `ftedge export`)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np


def benchmark_app_median(xml: Path, threads: int, seconds: int, shape: str) -> float:
    app = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    # -data_shape keeps the IR's dynamic batch, as ftedge's runner compiles it
    cmd = [app, "-m", str(xml), "-d", "CPU", "-api", "sync", "-nireq", "1", "-nstreams", "1",
           "-nthreads", str(threads), "-t", str(seconds), "-data_shape", shape, "-hint", "none",
           "-infer_precision", "f32"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Median:\s+([\d.]+) ms", out).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=8)
    a = ap.parse_args()

    from ftedge.stages.bench.bench import BenchOptions, _latency
    from ftedge.stages.bench.latency import timer_overhead_us
    from ftedge.runtime.artifact import load_artifact
    from ftedge.io import read_json

    manifest = read_json(a.artifact / "manifest.json")
    c, h, w = manifest["input_shape"][1:]
    loaded = load_artifact(a.artifact, a.threads)
    opts = BenchOptions(batches=(1,), warmup=20, seconds=a.seconds)
    print(f"{a.artifact} ({manifest['precision']}), batch 1, {a.threads} threads, sync, 1 request")
    print(f"{'round':>5} {'ftedge p50 ms':>14} {'benchmark_app median ms':>24} {'ratio':>7}")
    ratios = []
    for i in range(a.rounds):  # short interleaved rounds: drift of a shared machine hits both
        ours = _latency(loaded.runner, (c, h, w), (1,), opts)[0]["p50_ms"]
        theirs = benchmark_app_median(a.artifact / "model.xml", a.threads, a.seconds,
                                      f"[1,{c},{h},{w}]")
        ratios.append(ours / theirs)
        print(f"{i + 1:>5} {ours:14.3f} {theirs:24.3f} {ours / theirs:7.3f}")
    print(f"median ratio ftedge/benchmark_app over {a.rounds} rounds: {np.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"ftedge timer overhead: {timer_overhead_us():.3f} us per call")


if __name__ == "__main__":
    main()
