"""What the deploy kit needs of one runtime, asked of that runtime's own folder.

Each `ftedge/runtime/<name>/deploy.py` defines `PIECES`, a KitPieces: the deploy/templates
runner piece its infer.py uses, the pip line, Triton's backend and the files it serves, the
build step (a TensorRT engine is built on the device) and what its README says of the VNNI
caveat. deploy/ assembles the kit from these and names no runtime, so a new runtime is its
folder (target.py, runner.py, deploy.py) plus a profile in targets/.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import ClassVar

from ftedge.errors import ExportError
from ftedge.formats.artifact import saturation_facts
from ftedge.runtime.base import TARGETS


class KitPieces:
    """One runtime's part of the deploy kit; the defaults suit a runtime that serves its files
    as they are, on the CPU."""

    runtime: ClassVar[str]
    runner: ClassVar[ModuleType]  # deploy/templates/runner_<name>.py (REQUIRES, model_files)
    pip: ClassVar[str]  # the README's install line
    triton_platform: ClassVar[str]  # config.pbtxt's backend/platform line
    triton_kind: ClassVar[str] = "KIND_CPU"
    deepstream: ClassVar[bool] = False  # gst-nvinfer runs this runtime's engines

    def model_files(self, folder: Path, manifest: dict) -> list[str]:
        """The files the runtime loads (relative): what infer.py checks and Triton serves."""
        return self.runner.model_files(manifest)

    def triton_files(self, folder: Path, manifest: dict) -> dict[str, str]:
        """{name in Triton's version folder 1/: source file relative to the artifact folder}."""
        raise NotImplementedError

    def triton_parameters(self, manifest: dict) -> dict[str, str]:
        """config.pbtxt parameters the backend reads, besides ftedge's own."""
        return {}

    def build_step(self, folder: Path, manifest: dict) -> str:
        """README lines that make the model file on the device before infer.py runs."""
        return ""

    def triton_build_step(self, manifest: dict, name: str) -> str:
        """README lines that put a model file made on the device into Triton's repository."""
        return ""

    def triton_caveat(self, manifest: dict) -> str:
        """What the README's Triton section must add about this artifact."""
        return ""

    def vnni_caveat(self, wide: str) -> str:
        """The caveat of an artifact whose INT8 weights may saturate u8 x s8 pair sums."""
        return (f"{wide}, which x86 CPUs without VNNI (no avx512_vnni, avx_vnni or amx_int8 in "
                "/proc/cpuinfo) multiply with saturating 16-bit pair sums: on x86, deploy it "
                "only to CPUs with VNNI, or retrain with qat.weight_bits: 7 (the default)")


def kit_runtimes() -> tuple[str, ...]:
    """The runtimes that have a deploy kit: those whose folder has a deploy.py."""
    return tuple(name for name in TARGETS
                 if importlib.util.find_spec(f"ftedge.runtime.{name}.deploy") is not None)


def kit_pieces(runtime: str) -> KitPieces:
    """The deploy pieces of `runtime`, from ftedge/runtime/<runtime>/deploy.py."""
    if runtime not in kit_runtimes():
        raise ExportError(f"no deploy kit for runtime {runtime!r}",
                          f"valid: {', '.join(kit_runtimes())}")
    return importlib.import_module(f"ftedge.runtime.{runtime}.deploy").PIECES


def vnni_caveat(runtime: str, extra) -> str | None:
    """What a user must know about an INT8 artifact flagged SATURATES_WITHOUT_VNNI (x86 CPUs
    without VNNI multiply u8 x s8 with 16-bit pair sums, which 8-bit weights overflow), in the
    words of its runtime; None when it is not flagged (or `extra` is malformed)."""
    wide = saturation_facts(extra)
    if wide is None:
        return None
    pieces = kit_pieces(runtime) if runtime in kit_runtimes() else KitPieces()
    return pieces.vnni_caveat(wide)
