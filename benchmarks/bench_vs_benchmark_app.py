"""ftedge bench's model-only p50 against each runtime's own tool, side by side in one run.

For every artifact folder given (onnxruntime-cpu and openvino-cpu, FP32 and INT8) and every
batch size: ftedge's figure is bench's own `_latency` on the artifact's runner (what
`ftedge bench` reports); the runtime's figure is
- OpenVINO: `benchmark_app` on the same IR, `-shape` static at that batch, one synchronous
  request, `-nstreams 1 -hint none -nthreads T`, and `-infer_precision` as the artifact's
  profile compiles it (f32: the CPU plugin would otherwise run the float parts in bf16 on CPUs
  that have it, which is not what the artifact was verified with; `--app-default-precision`
  adds the tool's default beside it);
- ONNX Runtime (no perf tool ships in its wheel): a bare `session.run` loop in a separate
  process that imports nothing but onnxruntime and numpy, same file, same thread count, its
  threads never spinning, as the kit's (and ftedge's) sessions; a second row gives the loop
  with ONNX Runtime's defaults (threads spin, also between runs), a third spinning only while
  a run lasts (session.force_spinning_stop): what spinning would buy a lone model.
benchmark_app's Median is of `InferRequest.latency`, timed inside OpenVINO's C++ call (the
Python binding's call and return fall outside it); its Duration/Count, the wall time per call,
is printed beside it ("tool wall/call"), the figure comparable to a timer around the call.
Rounds alternate between the two so the drift of a shared machine hits both; the ratio
(ftedge / tool) of the medians over rounds should be within 1.00 +- 0.10. A third figure, a
bare call timed in ftedge's own process (OpenVINO: a request compiled for that static shape,
its own input tensor filled once, infer(); ONNX Runtime: session.run on the runner's
session), tells the runner's own overhead apart from what differs between processes.

Usage: python benchmarks/bench_vs_benchmark_app.py ARTIFACT_DIR [ARTIFACT_DIR ...]
           [--threads 2] [--seconds 2] [--rounds 3] [--batches 1,32] [--app-default-precision]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

BARE_ORT = r"""
import sys, time, numpy as np, onnxruntime as ort
path, name, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
shape = tuple(int(v) for v in sys.argv[5].split(","))
so = ort.SessionOptions()
so.intra_op_num_threads = threads
if sys.argv[6] == "kit":
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
elif sys.argv[6] == "in-run":
    so.add_session_config_entry("session.force_spinning_stop", "1")
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
x = (rng.integers(0, 256, shape).astype(np.uint8) if sys.argv[7] == "u8"
     else rng.standard_normal(shape).astype(np.float32))
for _ in range(10):
    s.run(None, {name: x})
t, end = [], time.perf_counter() + seconds
while time.perf_counter() < end or len(t) < 5:
    t0 = time.perf_counter(); s.run(None, {name: x}); t.append(time.perf_counter() - t0)
print(1000 * float(np.median(t)))
"""


def benchmark_app(xml: Path, shape: str, threads: int, seconds: float,
                  precision: str | None, input_type: str = "f32") -> float:
    app = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    cmd = [app, "-m", str(xml), "-d", "CPU", "-api", "sync", "-nireq", "1", "-nstreams", "1",
           "-nthreads", str(threads), "-t", str(max(1, round(seconds))), "-shape", shape,
           "-hint", "none", "-ip", input_type] + (
               ["-infer_precision", precision] if precision else [])
    # -ip: the artifact's own input type; left out, benchmark_app feeds an image-shaped input
    # as u8 and converts it inside the graph, which is not the call the artifact is made for
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    # its Median is of InferRequest.latency, timed inside OpenVINO's C++ call; the Python
    # binding's call and return are outside it. Duration / Count is the wall time per call
    # as a caller sees it, which is what ftedge's perf_counter around runner.infer times.
    median = float(re.search(r"Median:\s+([\d.]+) ms", out).group(1))
    count = int(re.search(r"Count:\s+(\d+) iterations", out).group(1))
    duration = float(re.search(r"Duration:\s+([\d.]+) ms", out).group(1))
    return median, duration / count


def bare_ort(model: Path, name: str, shape: tuple, threads: int, seconds: float,
             spinning: str = "kit", input_type: str = "f32") -> float:
    out = subprocess.run([sys.executable, "-c", BARE_ORT, str(model), name, str(threads),
                          str(seconds), ",".join(map(str, shape)), spinning,
                          input_type],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1]), None  # timed around session.run: wall already


def in_process_bare(folder: Path, m: dict, runner, b: int, threads: int, seconds: float):
    """A timer for the runtime's bare call in this process (see the module docstring)."""
    from ftedge.stages.bench.latency import time_calls

    chw = tuple(m["input_shape"][1:])
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (b, *chw)).astype(np.uint8) if m.get("input_format") == "uint8"
         else rng.standard_normal((b, *chw)).astype(np.float32))
    if m["runtime"] == "openvino":
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(folder / m["artifact"]))
        model.reshape({model.input(0): ov.PartialShape([b, *chw])})
        config = {"INFERENCE_NUM_THREADS": threads}
        hint = (m.get("profile") or {}).get("inference_precision")
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        request = core.compile_model(model, "CPU", config).create_infer_request()
        request.get_input_tensor().data[:] = x
        call = request.infer
    else:
        session = getattr(runner, "session", None) or runner.inner.session
        name = session.get_inputs()[0].name
        call = lambda: session.run(None, {name: x})  # noqa: E731
    return lambda: 1000 * float(np.median(time_calls(call, warmup=20, seconds=seconds)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", type=Path, nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--app-default-precision", action="store_true",
                    help="also run benchmark_app with its default precision (bf16 on AMX CPUs)")
    a = ap.parse_args()

    from ftedge.runtime.artifact import load_artifact
    from ftedge.stages.bench.bench import BenchOptions, _latency
    from ftedge.stages.bench.system import environment
    from ftedge.io import read_json

    batches = [int(b) for b in a.batches.split(",")]
    opts = BenchOptions(batches=(1,), warmup=20, seconds=a.seconds)
    rows = []  # (label, our fn, their fn, tool, in-process bare fn)
    for folder in a.artifacts:
        m = read_json(folder / "manifest.json")
        loaded = load_artifact(folder, a.threads)
        chw = tuple(m["input_shape"][1:])
        precision = (m.get("profile") or {}).get("inference_precision")
        input_type = "u8" if m.get("input_format") == "uint8" else "f32"
        for b in batches:
            label = f"{m['runtime']:11} {m['precision']:4} b{b:<3}"

            def ours(b=b, runner=loaded.runner, chw=chw):
                return _latency(runner, chw, (b,), opts)[0]["p50_ms"]

            if m["runtime"] == "openvino":
                shape = f"[{b},{','.join(map(str, chw))}]"
                xml = folder / m["artifact"]
                theirs = (lambda shape=shape, xml=xml, p=precision:
                          benchmark_app(xml, shape, a.threads, a.seconds, p, input_type))
                tool = f"benchmark_app -infer_precision {precision}"
                bare = in_process_bare(folder, m, loaded.runner, b, a.threads, a.seconds)
                rows.append((label, ours, theirs, tool, bare))
                if a.app_default_precision:
                    rows.append((label, ours, lambda shape=shape, xml=xml: benchmark_app(
                        xml, shape, a.threads, a.seconds, None, input_type),
                        "benchmark_app (its default precision)", None))
            else:
                model = folder / m["artifact"]
                bare = in_process_bare(folder, m, loaded.runner, b, a.threads, a.seconds)
                for spin, what in (("kit", ""), ("default", ", ORT's default spinning"),
                                   ("in-run", ", spinning within runs")):
                    theirs = (lambda b=b, model=model, chw=chw, name=m["input_name"], spin=spin:
                              bare_ort(model, name, (b, *chw), a.threads, a.seconds, spin,
                                       input_type))
                    rows.append((label, ours, theirs, "bare session.run loop" + what,
                                 bare if spin == "kit" else None))

    env = environment(a.threads)
    print(f"CPU: {env.get('cpu')} ({env.get('cpu_count')} CPUs), {a.threads} threads; "
          f"{a.rounds} alternating rounds of {a.seconds:g} s each")
    results = {i: ([], [], [], []) for i in range(len(rows))}
    for r in range(a.rounds):
        for i, (_, ours, theirs, _, bare) in enumerate(rows):
            results[i][0].append(ours())
            p50, wall = theirs()
            results[i][1].append(p50)
            results[i][3].append(p50 if wall is None else wall)
            if bare:
                results[i][2].append(bare())
    print(f"{'artifact, batch':24} {'ftedge p50 ms':>14} {'tool p50 ms':>12} {'ratio':>6} "
          f"{'tool wall/call':>15} {'ratio':>6} {'bare in-process':>16} {'ratio':>6}  tool")
    for i, (label, _, _, tool, _) in enumerate(rows):
        ours, theirs = np.median(results[i][0]), np.median(results[i][1])
        wall = np.median(results[i][3])
        ratios = np.array(results[i][0]) / np.array(results[i][1])
        bare = np.median(results[i][2]) if results[i][2] else float("nan")
        print(f"{label:24} {ours:14.3f} {theirs:12.3f} {ours / theirs:6.3f} {wall:15.3f} "
              f"{ours / wall:6.3f} {bare:16.3f} {ours / bare:6.3f}  {tool} "
              f"(p50 ratio per round {' '.join(f'{v:.2f}' for v in ratios)})")


if __name__ == "__main__":
    main()
