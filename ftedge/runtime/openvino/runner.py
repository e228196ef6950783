"""OpenVINO: a compiled model behind the Runner protocol, and what its execution graph ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftedge.config import EVAL_BATCH, disable_telemetry, or_default
# Whether OpenVINO's CPU plugin here multiplies u8 x s8 without VNNI: deploy/infer.py's own
# check, imported (not copied), so ftedge and the standalone script decide alike
from ftedge.deploy.templates.runner_openvino import CompiledModel
from ftedge.deploy.templates.runner_openvino import cpu_int8_without_vnni  # noqa: F401
from ftedge.errors import ExportError
from ftedge.runtime import ClosingRunner

# Every ftedge use of OpenVINO comes through here (export/openvino.py imports this module):
# its usage telemetry is off before openvino is first imported (config.disable_telemetry)
disable_telemetry()


def device_available(device: str, available: list[str]) -> bool:
    """'GPU' is there when OpenVINO lists 'GPU', 'GPU.0' or 'GPU.1'."""
    return any(d.split(".")[0] == device.split(".")[0] for d in available)


class OpenVinoRunner(ClosingRunner):
    """A compiled OpenVINO model (IR or ONNX file) behind the Runner protocol: deploy/infer.py's
    own CompiledModel (imported, not copied), so bench times the call the kit makes.

    A model with a dynamic batch is compiled once more for each batch size it is called with
    (the `static_shapes` most recent ones are kept): OpenVINO's CPU plugin runs a static
    shape with its memory planned once and its kernels chosen for it, a dynamic one infers
    every node's shape on each call (measured 2x at batch 1 on a 96 px EfficientNet-Lite0;
    benchmarks/bench_vs_benchmark_app.py). Same graph, same results.
    """

    _held = ("_net", "_core")

    def __init__(self, model: Path, *, device: str = "CPU", config: dict | None = None,
                 static_shapes: int = 4):
        import openvino as ov

        core = ov.Core()
        if not device_available(device, core.available_devices):
            raise ExportError(f"OpenVINO device {device} is not available here "
                              f"(found: {', '.join(core.available_devices)})",
                              "run on the device the profile is for, or pick another --target")
        self._core = core
        self._net = CompiledModel(ov, core, model, device=device, config=config or {},
                                  keep=static_shapes)
        self.compiled = self._net.compiled
        # graphs exported with an unknown score have it as a second output (graph/unknown.py)
        self.unknown, self.logits = self._net.unknown, self._net.logits

    def close(self) -> None:
        self.compiled = None
        super().close()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._net.infer_scored(batch)[0]

    def infer_scored(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and the unknown score ([N], higher = more unknown; None without one)."""
        return self._net.infer_scored(batch)

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
