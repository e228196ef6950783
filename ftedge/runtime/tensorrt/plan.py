"""What a TensorRT engine build needs, checkable without TensorRT or a GPU.

The device facts (L4T release, TensorRT/CUDA versions, compute capability), the preflight
comparison with a profile, the build plan (shapes, flags, DLA), the equivalent `trtexec`
command line and the cache keys that tie an engine to exactly one ONNX + TensorRT + GPU.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

from ftedge.runtime.base import Problem
from ftedge.runtime.profiles import TargetProfile

TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_MODEL = Path("/proc/device-tree/model")
INPUT = "input"


@dataclass(frozen=True)
class DeviceInfo:
    """What this machine offers a TensorRT build; None where it cannot be read."""

    l4t: str | None = None  # "36.4"
    jetson_model: str | None = None  # "NVIDIA Jetson AGX Orin Developer Kit"
    tensorrt: str | None = None
    cuda: str | None = None
    compute_capability: str | None = None  # "8.7"
    gpu: str | None = None


def parse_tegra_release(text: str) -> str | None:
    """'# R36 (release), REVISION: 4.0, ...' -> '36.4'."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)(?:\.(\d+))?", text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def read_device(tegra_release: Path = TEGRA_RELEASE, model_file: Path = DEVICE_MODEL) -> DeviceInfo:
    """Read the device: Jetson files where present, TensorRT and CUDA through their modules."""
    l4t = parse_tegra_release(tegra_release.read_text()) if tegra_release.is_file() else None
    model = model_file.read_bytes().rstrip(b"\0").decode(errors="replace") if model_file.is_file() else None
    trt_version = cuda = cc = gpu = None
    try:
        import tensorrt as trt

        trt_version = trt.__version__
    except ImportError:
        pass
    try:
        import torch

        cuda = torch.version.cuda
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            cc, gpu = f"{major}.{minor}", torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return DeviceInfo(l4t, model, trt_version, cuda, cc, gpu)


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def compare_device(profile: TargetProfile, dev: DeviceInfo) -> list[Problem]:
    """Preflight: this device against the profile. Errors block a build; warnings are reported."""
    spec, problems = profile.tensorrt, []
    if dev.tensorrt is None:
        problems.append(Problem("warning", "TensorRT is not installed here: the engine is built "
                                "on the device (first `ftedge export` or `ftedge bench` there)",
                                "on a Jetson use the ftedge image (Dockerfile.jetson)"))
    elif _version_tuple(dev.tensorrt) < _version_tuple(spec.min_version):
        problems.append(Problem("error", f"TensorRT {dev.tensorrt} is older than the "
                                f"{spec.min_version} the profile needs",
                                "upgrade JetPack/TensorRT or pick a profile for this device"))
    if dev.tensorrt is not None and dev.compute_capability is None:
        problems.append(Problem("error", "no CUDA GPU is visible",
                                "on a Jetson run the container with --runtime nvidia"))
    if (spec.compute_capability and dev.compute_capability
            and dev.compute_capability != spec.compute_capability):
        problems.append(Problem("error", f"GPU compute capability {dev.compute_capability} "
                                f"({dev.gpu}) is not the profile's {spec.compute_capability}",
                                "pick the profile of this device (ftedge targets)"))
    if profile.jetson and profile.jetson.l4t:
        if dev.l4t is None and dev.tensorrt is not None:
            problems.append(Problem("warning", f"{profile.name} is a Jetson profile but this "
                                    "machine has no /etc/nv_tegra_release"))
        elif dev.l4t and dev.l4t.split(".")[0] != profile.jetson.l4t.split(".")[0]:
            problems.append(Problem("error", f"L4T R{dev.l4t} is not the profile's "
                                    f"R{profile.jetson.l4t} (JetPack {profile.jetson.jetpack})",
                                    "flash the JetPack the profile names, or use a profile for R"
                                    f"{dev.l4t}"))
    if spec.cuda and dev.cuda and dev.tensorrt and dev.cuda.split(".")[0] != spec.cuda.split(".")[0]:
        problems.append(Problem("warning", f"CUDA {dev.cuda} differs from the profile's {spec.cuda}"))
    return problems


@dataclass(frozen=True)
class BuildPlan:
    """Everything an engine build decides, written as build_plan.json beside the ONNX."""

    onnx: str
    onnx_sha256: str
    precision: str
    input_shape: tuple[int, int, int]
    min_batch: int
    opt_batch: int
    max_batch: int
    dynamic_batch: bool  # False: the ONNX has a fixed batch (trtexec then takes no shape flags)
    strongly_typed: bool  # INT8 Q/DQ: the graph's types decide, no precision flags
    fp16: bool
    int8: bool
    tf32: bool
    workspace_mb: int
    dla_core: int | None
    gpu_fallback: bool

    def profile_shapes(self) -> dict[str, tuple[int, ...]]:
        """The optimization profile: min / opt / max input shapes."""
        return {k: (b, *self.input_shape) for k, b in
                (("min", self.min_batch), ("opt", self.opt_batch), ("max", self.max_batch))}

    def shapes(self) -> dict[str, str]:
        """The same shapes as trtexec spells them: input:NxCxHxW."""
        return {k: f"{INPUT}:" + "x".join(map(str, s)) for k, s in self.profile_shapes().items()}

    def to_dict(self) -> dict:
        return asdict(self)


def load_plan(path: Path) -> BuildPlan:
    from ftedge.io import read_json

    data = read_json(path)
    return BuildPlan(**{**data, "input_shape": tuple(data["input_shape"])})


def make_plan(onnx: Path, onnx_sha256: str, precision: str, *, batch: int | None,
              input_shape: tuple[int, int, int], profile: TargetProfile,
              float_layers: bool = False) -> BuildPlan:
    spec = profile.tensorrt
    lo, hi = (batch, batch) if batch is not None else (1, profile.max_batch)
    dla = spec.use_dla_core
    # INT8 Q/DQ graphs build strongly typed (TensorRT >= 10); DLA engines and TensorRT 8.x
    # (Xavier) take the weakly typed INT8 + FP16 flags, which read the same Q/DQ scales. A
    # graph with layers kept in float (the fallback) builds weakly typed too: strongly typed,
    # those layers would run in the graph's FP32; with FP16 + INT8 allowed they run in FP16,
    # as NVIDIA's ModelOpt arranges for its mixed graphs.
    strongly = (precision == "int8" and dla is None and not float_layers
                and _version_tuple(spec.min_version) >= (10,))
    return BuildPlan(onnx.name, onnx_sha256, precision, tuple(input_shape), lo, min(max(lo, 8), hi), hi,
                     dynamic_batch=batch is None, strongly_typed=strongly,
                     fp16=precision == "fp16" or (precision == "int8" and not strongly),
                     int8=precision == "int8" and not strongly, tf32=False,
                     workspace_mb=spec.workspace_mb, dla_core=dla,
                     gpu_fallback=bool(dla is not None and spec.gpu_fallback))


def trtexec_command(plan: BuildPlan, engine: str = "model.engine",
                    timing_cache: str = "timing.cache") -> list[str]:
    """The trtexec call that builds the same engine (for users who prefer NVIDIA's own tool)."""
    s = plan.shapes()
    cmd = ["trtexec", f"--onnx={plan.onnx}", f"--saveEngine={engine}"]
    if plan.dynamic_batch:  # trtexec refuses shape flags for a static ONNX
        cmd += [f"--minShapes={s['min']}", f"--optShapes={s['opt']}", f"--maxShapes={s['max']}"]
    cmd += [f"--memPoolSize=workspace:{plan.workspace_mb}M", f"--timingCacheFile={timing_cache}"]
    if plan.strongly_typed:
        cmd.append("--stronglyTyped")
    if plan.fp16:
        cmd.append("--fp16")
    if plan.int8:
        cmd.append("--int8")
    if not plan.tf32:
        cmd.append("--noTF32")
    if plan.dla_core is not None:
        cmd.append(f"--useDLACore={plan.dla_core}")
        if plan.gpu_fallback:
            cmd.append("--allowGPUFallback")
    return cmd


def shell_line(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def engine_key(plan: BuildPlan, tensorrt: str, compute_capability: str) -> str:
    """An engine is valid for exactly one ONNX, TensorRT version, GPU architecture and flag set."""
    facts = {"plan": plan.to_dict(), "tensorrt": tensorrt, "compute_capability": compute_capability}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def timing_cache_name(tensorrt: str, compute_capability: str) -> str:
    """Timing caches hold per-GPU kernel timings: one per TensorRT version and architecture."""
    return f"timing-trt{tensorrt}-sm{compute_capability.replace('.', '')}.cache"
