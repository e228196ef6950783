"""OpenVINO target: IR (.xml/.bin) in FP32, FP16 (compressed weights) or INT8 (from the Q/DQ ONNX).

OpenVINO reads each QuantizeLinear/DequantizeLinear pair of the INT8 graph as a FakeQuantize
and its low-precision transformations run those convolutions in INT8: the graph's own scales,
no re-quantization.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftedge.export.base import (Artifact, ExportError, FixedBatchRunner, Problem, SourceModel,
                                Target)
from ftedge.export.profiles import TargetProfile


def device_available(device: str, available: list[str]) -> bool:
    """'GPU' is there when OpenVINO lists 'GPU', 'GPU.0' or 'GPU.1'."""
    return any(d.split(".")[0] == device.split(".")[0] for d in available)


def compile_config(profile: TargetProfile, threads: int | None) -> dict:
    config = {}
    if profile.inference_precision:
        config["INFERENCE_PRECISION_HINT"] = profile.inference_precision
    if threads and profile.device == "CPU":
        config["INFERENCE_NUM_THREADS"] = threads
    return config


class OpenVinoRunner:
    """A compiled OpenVINO model behind the Runner protocol."""

    def __init__(self, xml: Path, profile: TargetProfile, threads: int | None = None):
        import openvino as ov

        core = ov.Core()
        if not device_available(profile.device, core.available_devices):
            raise ExportError(f"OpenVINO device {profile.device} is not available here "
                              f"(found: {', '.join(core.available_devices)})",
                              "run on the device the profile is for, or pick another --target")
        self.compiled = core.compile_model(core.read_model(str(xml)), profile.device,
                                           compile_config(profile, threads))
        self.request = self.compiled.create_infer_request()
        self._ov = ov
        self._input_shape = None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        # As OpenVINO's own benchmark_app does: one input tensor per shape, filled in place,
        # and a plain infer(); a new tensor on every call costs a dynamic-shape model its
        # memory plan each time.
        if batch.shape != self._input_shape:
            self.request.set_input_tensor(self._ov.Tensor(self._ov.Type.f32, self._ov.Shape(list(batch.shape))))
            self._input_shape = batch.shape
        np.copyto(self.request.get_input_tensor().data, batch, casting="same_kind")
        self.request.infer()
        return self.request.get_output_tensor(0).data.copy()  # the request reuses its buffer


def conv_precisions(compiled) -> dict[str, int]:
    """How many convolutions OpenVINO's execution graph runs at each precision: {"u8": 49}."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            p = info["runtimePrecision"].astype(str)
            counts[p] = counts.get(p, 0) + 1
    return counts


class OpenVinoTarget(Target):
    name = "openvino"

    def preflight(self, profile: TargetProfile) -> list[Problem]:
        try:
            import openvino as ov
        except ImportError:
            return [Problem("error", "openvino is not installed", "pip install 'ftedge[openvino]'")]
        devices = ov.Core().available_devices
        if not device_available(profile.device, devices):
            # IR is portable: it can be written here and compiled on the device later
            return [Problem("warning", f"OpenVINO device {profile.device} is not on this machine "
                                       f"(found: {', '.join(devices)}); the IR is written but "
                                       "the parity check cannot run here",
                            "copy the artifact folder to the device and run ftedge eval there")]
        return []

    def export(self, source: SourceModel, profile: TargetProfile, out: Path) -> Artifact:
        import onnx
        import openvino as ov

        facts: dict = {}
        if source.precision != "int8":
            model = ov.convert_model(str(source.path))
        else:
            from ftedge.export.qdq_layout import to_openvino_layout

            onnx_model = onnx.load(str(source.path))
            facts = to_openvino_layout(onnx_model)  # same scales; see qdq_layout.py
            staged = out / ".source.onnx"  # convert_model reads files; removed before the rename
            onnx.save(onnx_model, str(staged))
            try:
                model = ov.convert_model(str(staged))
            finally:
                staged.unlink(missing_ok=True)
        shape = [source.batch if source.batch is not None else -1, *source.input_size]
        model.reshape({model.input(0): ov.PartialShape(shape)})
        ov.save_model(model, str(out / "model.xml"), compress_to_fp16=source.precision == "fp16")
        return Artifact(out, "model.xml", profile.name, self.name, source.precision, source.batch,
                        extra={"graph": facts} if facts else {})

    def runner(self, artifact: Artifact, profile: TargetProfile, threads: int | None = None):
        inner = OpenVinoRunner(artifact.path, profile, threads)
        return inner if artifact.batch is None else FixedBatchRunner(inner, artifact.batch)

    def versions(self) -> dict[str, str]:
        import openvino

        return {"openvino": openvino.__version__}
