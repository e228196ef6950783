"""OpenVINO's pieces of the deploy kit (runtime/kit.py says what deploy/ asks of them)."""

from __future__ import annotations

from pathlib import Path

from ftedge.deploy.templates import runner_openvino
from ftedge.runtime.kit import KitPieces


class OpenVinoKit(KitPieces):
    runtime = "openvino"
    runner = runner_openvino
    pip = "pip install openvino numpy pillow"
    triton_platform = 'backend: "openvino"'

    def triton_files(self, folder: Path, manifest: dict) -> dict[str, str]:
        xml, binary = self.model_files(folder, manifest)
        return {"model.xml": xml, "model.bin": binary}

    def triton_parameters(self, manifest: dict) -> dict[str, str]:
        return {"TARGET_DEVICE": manifest["device"]}


PIECES = OpenVinoKit()
