"""ONNX Runtime's pieces of the deploy kit (runtime/kit.py says what deploy/ asks of them)."""

from __future__ import annotations

from pathlib import Path

from ftedge.deploy.templates import runner_onnxruntime
from ftedge.runtime.kit import KitPieces, vnni_caveat


class OnnxRuntimeKit(KitPieces):
    runtime = "onnxruntime"
    runner = runner_onnxruntime
    pip = "pip install onnxruntime numpy pillow"
    triton_platform = 'backend: "onnxruntime"'

    def triton_files(self, folder: Path, manifest: dict) -> dict[str, str]:
        return {"model.onnx": manifest["artifact"]}

    def triton_caveat(self, manifest: dict) -> str:
        if not vnni_caveat(self.runtime, manifest.get("extra")):
            return ""
        return ("\ninfer.py (like ftedge) turns off ONNX Runtime's QDQS8ToU8Transformer on "
                "x86 CPUs without\nVNNI, whose u8 x s8 kernels saturate on this model's "
                "8-bit weights. Triton's onnxruntime\nbackend cannot turn off one optimizer: "
                "do not serve this model with it on such CPUs\n(ftedge bench uses ftedge's "
                "own session and cannot show it).\n")

    def vnni_caveat(self, wide: str) -> str:
        return (f"{wide}: on x86 CPUs without VNNI ONNX Runtime computes it exactly only with its "
                "QDQS8ToU8Transformer turned off, as ftedge and deploy/infer.py do; a default "
                "InferenceSession or Triton's onnxruntime backend saturates there")


PIECES = OnnxRuntimeKit()
