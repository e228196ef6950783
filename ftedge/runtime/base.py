"""The Target interface every runtime implements, its registry, and what export hands around.

A target is one folder ftedge/runtime/<runtime>/ (its target.py and runner.py, heavy runtime
imports inside their functions, so `import ftedge` works without them) plus a profile in
targets/. bench and eval only talk to Runners.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ftedge.config import INPUT_FORMATS, INPUT_LAYOUTS
from ftedge.errors import ExportError
from ftedge.runtime.profiles import TargetProfile
from ftedge.runtime import FixedBatchRunner, Runner

__all__ = ["Artifact", "ExportError", "FixedBatchRunner", "Problem", "Runner", "SourceModel",
           "Target", "get_target"]


@dataclass(frozen=True)
class Problem:
    """A preflight finding: `error` stops the export, `warning` is reported."""

    severity: str  # "error" | "warning"
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}" + (f" ({self.hint})" if self.hint else "")


@dataclass(frozen=True)
class SourceModel:
    """The ONNX a target starts from: the run's FP32 graph or its INT8 Q/DQ graph."""

    path: Path
    precision: str  # precision asked for the artifact
    kind: str  # "fp32" | "qat" | "ptq"
    batch: int | None  # None: dynamic
    input_size: tuple[int, int, int]
    float_layers: tuple[str, ...] = ()  # INT8 graph layers the fallback kept in float
    gate: dict | None = None  # the INT8 graph's accuracy gate, as the manifest records it


@dataclass
class Artifact:
    """An artifact folder: its main file, the other files, and what the manifest says."""

    folder: Path
    file: str  # main artifact, relative to folder
    target: str
    runtime: str
    precision: str
    batch: int | None
    built: bool = True  # False: only the build plan exists (TensorRT off the device)
    extra: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.folder / self.file


class Target(ABC):
    """Turns the run's ONNX into one runtime's artifact and opens runners on it."""

    name: ClassVar[str]
    built_later: ClassVar[tuple[str, ...]] = ()  # name patterns of files the device adds later
    # what the artifact's input may be (export --input-format / --input-layout), and why not
    # more where a runtime takes less than config.INPUT_FORMATS x INPUT_LAYOUTS
    input_formats: ClassVar[tuple[str, ...]] = INPUT_FORMATS
    input_layouts: ClassVar[tuple[str, ...]] = INPUT_LAYOUTS
    input_note: ClassVar[str] = ""
    input_hint: ClassVar[str] = ""

    @abstractmethod
    def preflight(self, profile: TargetProfile) -> list[Problem]:
        """What in this environment keeps the profile from being built or run."""

    @abstractmethod
    def export(self, source: SourceModel, profile: TargetProfile, out: Path) -> Artifact:
        """Write the artifact into the (empty, temporary) folder `out`."""

    @abstractmethod
    def runner(self, artifact: Artifact, profile: TargetProfile, threads: int | None = None) -> Runner:
        """A runner on a built artifact."""

    def versions(self) -> dict[str, str]:
        """Versions of the runtime this target uses, for the manifest."""
        return {}


TARGETS = {"onnxruntime": "ftedge.runtime.onnxruntime.target:OnnxRuntimeTarget",
           "openvino": "ftedge.runtime.openvino.target:OpenVinoTarget",
           "tensorrt": "ftedge.runtime.tensorrt.target:TensorRTTarget"}


def get_target(runtime: str) -> Target:
    """The Target for a profile's runtime, imported only when asked for."""
    if runtime not in TARGETS:
        raise ExportError(f"no target for runtime {runtime!r}", f"valid: {', '.join(TARGETS)}")
    module, cls = TARGETS[runtime].split(":")
    return getattr(importlib.import_module(module), cls)()
