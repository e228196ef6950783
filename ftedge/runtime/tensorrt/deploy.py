"""TensorRT's pieces of the deploy kit (runtime/kit.py says what deploy/ asks of them).

The engine is built on the device, after the export: the kit lists it, serves it and copies
it only once it exists, and its README says how to build it first. DeepStream (gst-nvinfer)
runs TensorRT engines, so this runtime's kit also gets deploy/deepstream/.
"""

from __future__ import annotations

from pathlib import Path

from ftedge.deploy.templates import runner_tensorrt
from ftedge.deploy.templates.runner_tensorrt import engine_name
from ftedge.errors import DeployError
from ftedge.runtime.kit import KitPieces


def onnx_name(folder: Path, manifest: dict) -> str:
    """The ONNX a TensorRT engine is built from (the export's extra.onnx, else the one .onnx)."""
    named = (manifest.get("extra") or {}).get("onnx")
    if named:
        return named
    if manifest["artifact"].endswith(".onnx"):
        return manifest["artifact"]
    found = sorted(p.name for p in Path(folder).glob("*.onnx"))
    if len(found) != 1:
        raise DeployError(f"cannot tell which ONNX the TensorRT engine is built from "
                          f"(found {found or 'none'})", "the export names it in extra.onnx")
    return found[0]


class TensorRTKit(KitPieces):
    runtime = "tensorrt"
    runner = runner_tensorrt
    pip = ("pip install cuda-python numpy pillow   # TensorRT itself: JetPack, or "
           "pip install tensorrt on x86")
    triton_platform = 'platform: "tensorrt_plan"'
    triton_kind = "KIND_GPU"
    deepstream = True

    def model_files(self, folder: Path, manifest: dict) -> list[str]:
        name = engine_name(manifest)
        return [name] if (Path(folder) / name).is_file() else []

    def triton_files(self, folder: Path, manifest: dict) -> dict[str, str]:
        return {"model.plan": name for name in self.model_files(folder, manifest)}

    def build_step(self, folder: Path, manifest: dict) -> str:
        return (f"# TensorRT engines are built on the device: once, in the artifact folder\n"
                f"sh trtexec.sh        # writes {engine_name(manifest)} from "
                f"{onnx_name(folder, manifest)} (or: ftedge export ... there)\n")

    def triton_build_step(self, manifest: dict, name: str) -> str:
        return (f"# the engine is built on the device (section 1); Triton's TensorRT must be the "
                f"version that built it\nmkdir -p deploy/triton/{name}/1 && cp "
                f"{engine_name(manifest)} deploy/triton/{name}/1/model.plan\n")


PIECES = TensorRTKit()
