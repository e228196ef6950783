"""INT8 latency and accuracy, side by side in one run: torch eager FP32, ONNX Runtime FP32/INT8
(our Q/DQ), OpenVINO FP32/INT8 (our Q/DQ) and OpenVINO INT8 from NNCF's own post-training
quantization of the same network (the peer).

Latency uses the run's weights re-exported at --size (default 224 px); accuracy uses the run's
own resolution on its val split. Needs a run made with `ftedge tune --qat` and the openvino
extra (plus nncf for the peer).

Usage: python benchmarks/int8_latency.py runs/qat-demo [--size 224] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np
import torch

from ftedge.stages.bench.latency import latency_percentiles, time_calls
from ftedge.data.transforms import preprocess_samples
from ftedge.formats.run import RunFolder
from ftedge.quant.gate import onnx_logits
from ftedge.quant.onnx_export import export_onnx
from ftedge.quant.reference import qat_reference
from ftedge.runtime.onnxruntime.runner import OrtRunner
from ftedge.runtime.pytorch.runner import load_run


def timed(fn, x, seconds: float = 3.0) -> float:
    """Median ms per image after 3 warm-up calls (ftedge bench's own timer)."""
    times = time_calls(lambda: fn(x), warmup=3, seconds=seconds)
    return latency_percentiles(times, len(x))["p50_ms_per_image"]


def export_pair(run: Path, size: int, out: Path) -> tuple[Path, Path]:
    """FP32 (best.pt) and INT8 (qat_best.pt) ONNX of the run's weights at `size` px."""
    loaded = load_run(run)
    example = torch.zeros(1, 3, size, size)
    fp32 = out / "fp32.onnx"
    export_onnx(copy.deepcopy(loaded.runner.model), example, fp32, opset=17, metadata={})
    int8 = out / "int8.onnx"
    export_onnx(qat_reference(loaded).model, example, int8, opset=17, metadata={})
    return fp32, int8


def ort_layout(int8: Path, out: Path, runtime: str = "onnxruntime") -> Path:
    """The INT8 graph as the onnxruntime-cpu / openvino-cpu target exports it (qdq_layout.py)."""
    import onnx

    from ftedge.graph.layout import to_openvino_layout, to_ort_layout

    model = onnx.load(str(int8))
    (to_ort_layout if runtime == "onnxruntime" else to_openvino_layout)(model)
    onnx.save(model, str(out))
    return out


def ov_compile(core, model, threads: int):
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                             "INFERENCE_NUM_THREADS": threads})


def nncf_int8(core, fp32_onnx: Path, calib: np.ndarray):
    import nncf

    model = core.read_model(str(fp32_onnx))
    data = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    return nncf.quantize(model, method=data, subset_size=len(calib))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    import openvino as ov

    torch.set_num_threads(a.threads)
    core = ov.Core()
    loaded = load_run(a.run)
    run = RunFolder(a.run)
    val = run.samples("val", loaded.classes)
    train = run.samples("train", loaded.classes)[:300]
    x_val, y_val = preprocess_samples(val, loaded.contract), np.array([s.label for s in val])
    calib = preprocess_samples(train, loaded.contract)

    # accuracy at the run's own resolution
    ov_ours = ov_compile(core, core.read_model(str(ort_layout(
        a.run / "model.int8.onnx", Path(tempfile.mkdtemp()) / "ov.onnx", "openvino"))), a.threads)
    ov_nncf_native = ov_compile(core, nncf_int8(core, a.run / "model.fp32.onnx", calib), a.threads)
    acc = {
        "FP32 (ONNX Runtime)": onnx_logits(a.run / "model.fp32.onnx", x_val),
        "INT8 ours, shared graph (ORT)": onnx_logits(a.run / "model.int8.onnx", x_val),
        "INT8 ours, ORT layout (ORT)": onnx_logits(
            ort_layout(a.run / "model.int8.onnx", Path(tempfile.mkdtemp()) / "ort.onnx"), x_val),
        "INT8 ours (OpenVINO)": np.concatenate([ov_ours(x_val[i:i + 32])[0]
                                                for i in range(0, len(x_val), 32)]),
        "INT8 NNCF PTQ (OpenVINO)": np.concatenate([ov_nncf_native(x_val[i:i + 32])[0]
                                                    for i in range(0, len(x_val), 32)]),
    }
    print(f"\nTop-1 on {len(y_val)} val images at {loaded.contract['input_size'][-1]} px:")
    for name, logits in acc.items():
        print(f"  {name:28} {(logits.argmax(1) == y_val).mean():.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = export_pair(a.run, a.size, Path(tmp))
        big_calib = torch.nn.functional.interpolate(torch.from_numpy(calib[:64]), size=a.size,
                                                    mode="bilinear").numpy()
        runners = {
            "torch eager FP32": loaded.runner,
            "ORT FP32": _ort(fp32, a.threads),
            "ORT INT8 (ours, shared graph S8S8)": _ort(int8, a.threads),
            "ORT INT8 (ours)": _ort(ort_layout(int8, Path(tmp) / "ort.onnx"), a.threads),
            "OpenVINO FP32": _ov(ov_compile(core, core.read_model(str(fp32)), a.threads)),
            "OpenVINO INT8 (ours)": _ov(ov_compile(core, core.read_model(
                str(ort_layout(int8, Path(tmp) / "ov.onnx", "openvino"))), a.threads)),
            "OpenVINO INT8 (NNCF)": _ov(ov_compile(core, nncf_int8(core, fp32, big_calib),
                                                   a.threads)),
        }
        print(f"\nconvolutions as executed at {a.size} px:")
        for name, runner in runners.items():
            kernels = getattr(runner, "conv_kernels", None)
            if kernels:
                print(f"  {name:34} " + ", ".join(f"{k} {v}" for k, v in kernels().items()))
        batches = [int(b) for b in a.batches.split(",")]
        print(f"\n{loaded.model_name}, {a.size} px, {a.threads} threads, ms/img (median):")
        print(f"{'runtime':36}" + "".join(f"{'batch ' + str(b):>12}" for b in batches))
        res = {name: [float("inf")] * len(batches) for name in runners}
        for _ in range(a.rounds):  # rounds interleave the runtimes; the best round counts
            for name, runner in runners.items():
                res[name] = [min(old, timed(runner.infer, np.random.default_rng(0).normal(
                    size=(b, 3, a.size, a.size)).astype(np.float32)))
                    for old, b in zip(res[name], batches)]
        for name in runners:
            print(f"{name:36}" + "".join(f"{v:12.2f}" for v in res[name]))
        for b_i, b in enumerate(batches):
            print(f"batch {b}: ours/NNCF speed ratio (OpenVINO) "
                  f"{res['OpenVINO INT8 (NNCF)'][b_i] / res['OpenVINO INT8 (ours)'][b_i]:.2f}, "
                  f"ORT INT8/ORT FP32 speed ratio {res['ORT FP32'][b_i] / res['ORT INT8 (ours)'][b_i]:.2f}")


def _ort(path, threads):
    return OrtRunner(path, threads)


class _OvCompiled:
    """A compiled OpenVINO model behind the Runner protocol that can say how it runs
    convolutions."""

    def __init__(self, compiled):
        self.compiled = compiled

    def infer(self, x):
        return self.compiled(x)

    def conv_kernels(self):
        from ftedge.runtime.openvino.runner import conv_precisions

        return conv_precisions(self.compiled)


def _ov(compiled):
    return _OvCompiled(compiled)


if __name__ == "__main__":
    main()
