"""OpenVINO target: IR (.xml/.bin) in FP32, FP16 (compressed weights) or INT8 (from the Q/DQ ONNX).

OpenVINO reads each QuantizeLinear/DequantizeLinear pair of the INT8 graph as a FakeQuantize
and its low-precision transformations run those convolutions in INT8: the graph's own scales,
no re-quantization.
"""

from __future__ import annotations

from pathlib import Path

from ftedge.runtime.base import Artifact, FixedBatchRunner, Problem, SourceModel, Target
from ftedge.runtime.profiles import TargetProfile
from ftedge.formats.artifact import SATURATES_WITHOUT_VNNI
from ftedge.runtime.openvino.runner import OpenVinoRunner, device_available


def compile_config(profile: TargetProfile, threads: int | None) -> dict:
    config = {}
    if profile.inference_precision:
        config["INFERENCE_PRECISION_HINT"] = profile.inference_precision
    if threads and profile.device == "CPU":
        config["INFERENCE_NUM_THREADS"] = threads
    return config


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

        from ftedge.formats.run import load_onnx

        facts: dict = {}
        if source.precision != "int8":
            model = ov.convert_model(str(source.path))
        else:
            from ftedge.graph.layout import pair_sums_may_saturate, to_openvino_layout

            onnx_model = load_onnx(source.path)
            facts = to_openvino_layout(onnx_model)  # same scales; see qdq_layout.py
            if profile.device.upper() == "CPU" and pair_sums_may_saturate(facts):
                # oneDNN multiplies u8 x s8 with 16-bit pair sums on x86 without VNNI: 8-bit
                # weights saturate there (OpenVINO limited to AVX2 agreed on 77-85% of images
                # with such MobileNetV2 graphs); quant/qat.py NarrowWeightObserver
                facts[SATURATES_WITHOUT_VNNI] = True
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
        inner = OpenVinoRunner(artifact.path, device=profile.device,
                               config=compile_config(profile, threads))
        return inner if artifact.batch is None else FixedBatchRunner(inner, artifact.batch)

    def versions(self) -> dict[str, str]:
        import openvino

        return {"openvino": openvino.__version__}
