"""OpenVINO: a compiled model behind the Runner protocol, and what its execution graph ran."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ftedge.config import EVAL_BATCH, disable_telemetry, or_default
from ftedge.errors import ExportError
from ftedge.runtime import ClosingRunner
from ftedge.runtime.onnxruntime.runner import vnni_state

# Every ftedge use of OpenVINO comes through here (export/openvino.py imports this module):
# its usage telemetry is off before openvino is first imported (config.disable_telemetry)
disable_telemetry()


def cpu_int8_without_vnni() -> str | None:
    """Whether OpenVINO's CPU plugin here multiplies u8 x s8 without VNNI (16-bit pair sums):
    "no-vnni" (the CPU lacks it, or ONEDNN_MAX_CPU_ISA limits oneDNN below it), "unknown"
    (an x86 CPU that cannot be told), None (VNNI, or not x86)."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    state = vnni_state()
    if state == "no-vnni" or (state != "not-x86" and isa and isa != "ALL"
                              and "VNNI" not in isa and "AMX" not in isa):
        return "no-vnni"
    return "unknown" if state == "unknown" else None


def device_available(device: str, available: list[str]) -> bool:
    """'GPU' is there when OpenVINO lists 'GPU', 'GPU.0' or 'GPU.1'."""
    return any(d.split(".")[0] == device.split(".")[0] for d in available)


class OpenVinoRunner(ClosingRunner):
    """A compiled OpenVINO model (IR or ONNX file) behind the Runner protocol.

    A model with a dynamic batch is compiled once more for each batch size it is called with
    (the `static_shapes` most recent ones are kept): OpenVINO's CPU plugin runs a static
    shape with its memory planned once and its kernels chosen for it, a dynamic one infers
    every node's shape on each call (measured 2x at batch 1 on a 96 px EfficientNet-Lite0;
    benchmarks/bench_vs_benchmark_app.py). Same graph, same results.
    """

    _held = ("_default", "compiled", "_model", "_core")

    def close(self) -> None:
        self._requests = {}  # the per-shape compiled models' requests first
        super().close()

    def __init__(self, model: Path, *, device: str = "CPU", config: dict | None = None,
                 static_shapes: int = 4):
        import openvino as ov

        core = ov.Core()
        if not device_available(device, core.available_devices):
            raise ExportError(f"OpenVINO device {device} is not available here "
                              f"(found: {', '.join(core.available_devices)})",
                              "run on the device the profile is for, or pick another --target")
        self._ov, self._core, self._device, self._config = ov, core, device, config or {}
        self._model = core.read_model(str(model))
        self.compiled = core.compile_model(self._model, device, self._config)
        self._dynamic = self._model.input(0).get_partial_shape().is_dynamic
        self._keep = static_shapes if self._dynamic else 0
        self._requests: dict[tuple, object] = {}  # shape -> InferRequest, oldest first
        self._default = self.compiled.create_infer_request()
        names = [o.get_names() for o in self.compiled.outputs]
        # graphs exported with an unknown score have it as a second output (graph/unknown.py)
        self.unknown = next((i for i, n in enumerate(names) if "unknown_score" in n), None)
        self.logits = next(i for i in range(len(names)) if i != self.unknown)

    def _request(self, shape: tuple):
        """The request for `shape`: its own static compile while fewer than `static_shapes`
        are kept, else the dynamic one's."""
        if not self._keep:
            return self._default
        request = self._requests.pop(shape, None)
        if request is None:
            if len(self._requests) >= self._keep:
                self._requests.pop(next(iter(self._requests)))
            static = self._model.clone()
            static.reshape({static.input(0): self._ov.PartialShape(list(shape))})
            request = self._core.compile_model(static, self._device,
                                               self._config).create_infer_request()
        self._requests[shape] = request  # most recent last
        return request

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.infer_scored(batch)[0]

    def infer_scored(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and the unknown score ([N], higher = more unknown; None without one)."""
        # no copy when it already is; 8-bit pixel input (in-graph normalisation) stays uint8
        batch = np.ascontiguousarray(batch, np.uint8 if batch.dtype == np.uint8 else np.float32)
        request = self._request(batch.shape)
        # the request reads the caller's array in place (no copy per call), and start_async/
        # wait skips infer()'s input dict and its copied result dict: together ~0.1 ms a call,
        # 5% of Lite0 INT8 at batch 1 against benchmark_app (benchmarks/bench_vs_benchmark_app.py)
        request.set_input_tensor(self._ov.Tensor(batch, shared_memory=True))
        request.start_async()
        request.wait()
        # copies: the request reuses its buffers
        logits = request.get_output_tensor(self.logits).data.copy()
        if self.unknown is None:
            return logits, None
        return logits, request.get_output_tensor(self.unknown).data[:, 0].copy()

    def conv_kernels(self) -> dict[str, int]:
        return conv_precisions(self.compiled)


def openvino_logits(path: str | Path, x: np.ndarray,
                    batch_size: int | None = None) -> np.ndarray | None:
    """Run an ONNX model in OpenVINO on the CPU at f32 inference precision (`batch_size` None:
    config.EVAL_BATCH); None without OpenVINO installed."""
    import importlib.util

    from ftedge.runtime import infer_batches

    if importlib.util.find_spec("openvino") is None:
        return None
    with OpenVinoRunner(Path(path), device="CPU",
                        config={"INFERENCE_PRECISION_HINT": "f32"}) as runner:
        return infer_batches(runner, x, or_default(batch_size, EVAL_BATCH))


def conv_precisions(compiled) -> dict[str, int]:
    """How many convolutions OpenVINO's execution graph runs at each precision: {"u8": 49}."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            p = info["runtimePrecision"].astype(str)
            counts[p] = counts.get(p, 0) + 1
    return counts
