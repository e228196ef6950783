"""Target profiles: one YAML file per device/runtime, read into frozen dataclasses.

The profile schema (and its defaults) lives here beside its loader rather than in config.py:
a profile is a target's configuration, and config.py holds the tune stage's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path


from ftedge.config import (DEFAULT_INPUT_FORMAT, MAX_BATCH, MIN_OPSET, OPSET, from_dict,
                           load_yaml, to_dict)
from ftedge.errors import ConfigError

RUNTIMES = ("onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
DEVICES = {"onnxruntime": ("cpu",), "openvino": ("CPU", "GPU", "NPU"), "tensorrt": ("gpu", "dla")}


@dataclass(frozen=True)
class Tolerances:
    """Export-time parity: how close an artifact must stay to its reference on the val split."""

    fp32_max_abs_logit: float = 1e-3
    fp32_top1_agreement: float = 1.0
    fp16_top1_agreement: float = 0.995
    int8_top1_agreement: float = 0.99  # flips between classes tied within the INT8 noise pass (parity.py)

    def top1_agreement(self, precision: str) -> float:
        return getattr(self, f"{precision}_top1_agreement")


@dataclass(frozen=True)
class JetsonSpec:
    jetpack: str | None = None
    l4t: str | None = None  # L4T release as in /etc/nv_tegra_release: "36.4"
    module: str | None = None


@dataclass(frozen=True)
class TensorRTSpec:
    min_version: str = "10.0"
    cuda: str | None = None
    compute_capability: str | None = None  # None: any GPU the TensorRT version supports
    workspace_mb: int = 1024
    dla_cores: int = 0
    use_dla_core: int | None = None
    gpu_fallback: bool = True


@dataclass(frozen=True)
class PipelineSpec:
    """The device's own preprocessing, where it is not ftedge's (deploy/infer.py applies the
    run's contract exactly; DeepStream's nvinfer scales frames its own way)."""

    name: str = "deepstream"  # the pipeline an emulation stands for (export/parity.py)
    geometry: str = "stretch"  # crop | stretch | letterbox (nvinfer maintain-aspect-ratio)
    filter: str = "bilinear"  # nvinfer scaling-filter=1: bilinear on the GPU/VIC, ...
    antialias: bool = False  # ... which does not widen its support when shrinking


@dataclass(frozen=True)
class TargetProfile:
    """One device/runtime: what `ftedge export --target NAME` builds for."""

    name: str
    runtime: str
    device: str
    precisions: tuple[str, ...] = PRECISIONS
    default_precision: str = "int8"
    description: str = ""
    opset: int = OPSET
    batch: object = "dynamic"  # "dynamic" or a positive integer
    max_batch: int = 32
    static_shapes: bool = False
    inference_precision: str | None = None
    jetson: JetsonSpec | None = None
    tensorrt: TensorRTSpec | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    pipeline: PipelineSpec | None = None  # None: the device runs ftedge's contract (infer.py)
    input_format: str = DEFAULT_INPUT_FORMAT  # the artifact's input (config.INPUT_FORMATS); float255
    # for TensorRT: nvinfer then passes pixels (net-scale-factor=1, offsets=0)
    source: str = ""  # where the profile was read from

    def to_dict(self) -> dict:
        return {k: v for k, v in to_dict(self).items() if k != "source"}


def _profile_dir():
    return resources.files("ftedge.profiles")


def profile_names() -> list[str]:
    """Names of the profiles that ship with ftedge (targets/ in the repository)."""
    return sorted(p.name[:-5] for p in _profile_dir().iterdir() if p.name.endswith(".yaml"))


def load_profile(spec: str | Path) -> TargetProfile:
    """A shipped profile by name, or the user's own YAML file by path."""
    spec = str(spec)
    if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
        data, source = load_yaml(spec), str(Path(spec).resolve())
    else:
        entry = _profile_dir() / f"{spec}.yaml"
        if not entry.is_file():
            raise ConfigError(f"unknown target {spec!r}",
                              f"pick one of: {', '.join(profile_names())}, or pass a YAML file")
        data, source = load_yaml(entry), f"ftedge/profiles/{spec}.yaml"
    if not isinstance(data, dict):
        raise ConfigError(f"target profile {spec} must hold a mapping")
    for key in ("name", "runtime", "device"):
        if key not in data:
            raise ConfigError(f"target profile {spec} has no {key!r}",
                              "see targets/README.md for the keys a profile needs")
    if isinstance(data.get("precisions"), list):
        data["precisions"] = tuple(data["precisions"])
    profile = from_dict(TargetProfile, {**data, "source": source}, where=f"target {data['name']}")
    validate_profile(profile)
    return profile


def validate_profile(p: TargetProfile) -> None:
    """Values a profile may hold; every error names the valid ones."""
    import re

    where = f"target {p.name}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", p.name):
        raise ConfigError(f"target name {p.name!r} may hold only letters, digits, '.', '_', '-'",
                          "it names the artifact folder")
    if p.runtime not in RUNTIMES:
        raise ConfigError(f"{where}: unknown runtime {p.runtime!r}", f"valid: {', '.join(RUNTIMES)}")
    if p.device not in DEVICES[p.runtime]:
        raise ConfigError(f"{where}: device {p.device!r} is not a {p.runtime} device",
                          f"valid: {', '.join(DEVICES[p.runtime])}")
    bad = [x for x in p.precisions if x not in PRECISIONS]
    if bad or not p.precisions:
        raise ConfigError(f"{where}: unknown precision(s) {', '.join(bad) or '(none)'}",
                          f"valid: {', '.join(PRECISIONS)}")
    if p.default_precision not in p.precisions:
        raise ConfigError(f"{where}: default_precision {p.default_precision!r} is not in "
                          f"its precisions", f"valid: {', '.join(p.precisions)}")
    if p.opset < MIN_OPSET:
        raise ConfigError(f"{where}: opset {p.opset} is too old", f"use {MIN_OPSET} or newer")
    parse_batch(p.batch, p)
    if not 1 <= p.max_batch <= MAX_BATCH:
        raise ConfigError(f"{where}: max_batch must be in 1..{MAX_BATCH}, got {p.max_batch}")
    if p.opset > 99:  # ONNX is at opset ~23: a larger number is a typo, never a real opset
        raise ConfigError(f"{where}: opset {p.opset} does not exist", f"use e.g. opset: {OPSET}")
    t = p.tolerances
    for name in ("fp32_top1_agreement", "fp16_top1_agreement", "int8_top1_agreement"):
        if not 0.0 <= getattr(t, name) <= 1.0:
            raise ConfigError(f"{where}: tolerances.{name} must be a fraction in [0, 1]")
    if t.fp32_max_abs_logit < 0:
        raise ConfigError(f"{where}: tolerances.fp32_max_abs_logit must be >= 0")
    if p.pipeline is not None:
        from ftedge.config import FILTERS, GEOMETRIES

        if p.pipeline.geometry not in GEOMETRIES or p.pipeline.filter not in FILTERS:
            raise ConfigError(f"{where}: pipeline geometry {p.pipeline.geometry!r} / filter "
                              f"{p.pipeline.filter!r} unknown",
                              f"geometry: {', '.join(GEOMETRIES)}; filter: {', '.join(FILTERS)}")
    from ftedge.config import INPUT_FORMATS

    if p.input_format not in INPUT_FORMATS:
        raise ConfigError(f"{where}: input_format {p.input_format!r} unknown",
                          f"valid: {', '.join(INPUT_FORMATS)}")
    if p.runtime == "tensorrt" and p.input_format == "uint8":
        raise ConfigError(f"{where}: TensorRT artifacts take float input here (nvinfer hands "
                          "the network float32)", "use input_format float255")
    if p.runtime == "tensorrt" and p.tensorrt is None:
        raise ConfigError(f"{where}: a tensorrt profile needs a 'tensorrt:' section",
                          "copy one from targets/tensorrt-x86.yaml")
    if p.tensorrt is not None:
        spec = p.tensorrt
        if not 1 <= spec.workspace_mb <= 1 << 20:
            raise ConfigError(f"{where}: tensorrt.workspace_mb must be in 1..{1 << 20} (1 TiB)")
        if spec.use_dla_core is not None and not 0 <= spec.use_dla_core < spec.dla_cores:
            raise ConfigError(f"{where}: tensorrt.use_dla_core {spec.use_dla_core} is not one of "
                              f"the device's {spec.dla_cores} DLA cores",
                              f"valid: {list(range(spec.dla_cores)) or 'none (no DLA)'}")
        if (p.device == "dla") != (spec.use_dla_core is not None):
            raise ConfigError(f"{where}: device 'dla' and tensorrt.use_dla_core go together",
                              "set both (a DLA build) or neither (a GPU build)")


def parse_batch(batch: object, profile: TargetProfile) -> int | None:
    """--batch / profile batch -> an integer, or None for a dynamic batch dimension."""
    if batch is None:
        batch = profile.batch
    if isinstance(batch, str) and batch.strip().lower() == "dynamic":
        if profile.static_shapes:
            raise ConfigError(f"target {profile.name} needs static shapes: a dynamic batch "
                              "cannot be compiled for it", "pass --batch N (e.g. --batch 1)")
        return None
    if isinstance(batch, float) and not batch.is_integer():
        raise ConfigError(f"batch must be 'dynamic' or a positive integer, got {batch!r}",
                          "give e.g. --batch 1, or --batch dynamic")
    try:
        value = int(batch)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"batch must be 'dynamic' or a positive integer, got {batch!r}",
                          "give e.g. --batch 1, or --batch dynamic") from None
    if not 1 <= value <= MAX_BATCH or isinstance(batch, bool):
        raise ConfigError(f"batch must be 'dynamic' or an integer in 1..{MAX_BATCH}, got "
                          f"{batch!r}", "give e.g. --batch 1, or --batch dynamic")
    return value


def check_precision(precision: str | None, profile: TargetProfile) -> str:
    """The precision to build (None: the profile's default), refused when the target lacks it."""
    precision = precision or profile.default_precision
    if precision not in profile.precisions:
        raise ConfigError(f"target {profile.name} does not support precision {precision!r}",
                          f"valid for this target: {', '.join(profile.precisions)}")
    return precision
