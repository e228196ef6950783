"""TensorRT target (Jetson and discrete GPUs), written against TensorRT 10's Python API.

Engines are device-specific, so they are built ON the device: off it, export writes the ONNX,
build_plan.json and the equivalent trtexec command; the first `ftedge export` or `ftedge
bench` on the device builds the engine into the same folder. INT8 comes from the graph's own
Q/DQ pairs (explicit quantization, no calibrator). An engine is bound by a key (ONNX sha256 +
TensorRT version + compute capability + build flags) and refused at load when it no longer
matches, with the command that rebuilds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftedge.export import trt_plan
from ftedge.export.base import (Artifact, ExportError, FixedBatchRunner, Problem, SourceModel,
                                Target)
from ftedge.export.profiles import TargetProfile
from ftedge.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, sha256_file

ENGINE, PLAN = "model.engine", "build_plan.json"


def _trt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise ExportError("TensorRT is not installed here",
                          "build on the device: JetPack ships it (see Dockerfile.jetson); on x86 "
                          "pip install 'ftedge[tensorrt]' from NVIDIA's index") from e
    return trt


_LOGGER = None


def _logger():
    """One TensorRT logger per process (TensorRT warns when builder and runtime differ)."""
    global _LOGGER
    if _LOGGER is None:
        trt = _trt()
        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


def build_engine(onnx_path: Path, plan: trt_plan.BuildPlan, timing_cache: Path) -> bytes:
    """Parse the ONNX and build a serialized engine as `plan` says (TensorRT 10 API)."""
    trt = _trt()
    logger = _logger()
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # 8.x: implicit batch unless asked (10: always explicit)
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if plan.strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path.name}: {errors}",
                          "check the opset against the profile and the TensorRT version")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mb << 20)
    if not plan.tf32:
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 engines stay FP32 (parity 1e-3)
    if plan.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.int8:
        config.set_flag(trt.BuilderFlag.INT8)  # weakly typed (DLA): Q/DQ scales, no calibrator
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
        if plan.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    shapes = plan.profile_shapes()
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(trt_plan.INPUT, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(opt_profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        print(f"warning: TensorRT did not accept the timing cache {timing_cache.name}; "
              "building without it (it is rewritten after the build)")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine (see the log above)",
                          f"try the same build with: {trt_plan.shell_line(trt_plan.trtexec_command(plan))}")
    atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


class TrtRunner:
    """A deserialized engine with device buffers from PyTorch's CUDA allocator."""

    def __init__(self, engine_bytes: bytes, dla_core: int | None = None):
        import torch

        trt = _trt()
        self.torch = torch
        self.runtime = trt.Runtime(_logger())
        if dla_core is not None:
            self.runtime.DLA_core = dla_core  # else a DLA engine runs on core 0
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise ExportError("TensorRT could not deserialize the engine",
                              "rebuild it on this device: ftedge export RUN --target NAME")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        # the optimization profile's (min, opt, max) shapes: larger batches are split
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.input, 0)[2][0])
        self.stream = torch.cuda.Stream()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) > self.max_batch:
            return np.concatenate([self.infer(batch[i:i + self.max_batch])
                                   for i in range(0, len(batch), self.max_batch)])
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).cuda()
        if not self.context.set_input_shape(self.input, tuple(x.shape)):
            raise ExportError(f"the engine does not take input shape {tuple(x.shape)}",
                              "export with a --batch / max_batch that covers it")
        y = torch.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=torch.float32,
                        device="cuda")
        self.context.set_tensor_address(self.input, x.data_ptr())
        self.context.set_tensor_address(self.output, y.data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ExportError("TensorRT inference failed (see the log above)")
        self.stream.synchronize()
        return y.cpu().numpy()


class TensorRTTarget(Target):
    name = "tensorrt"

    def preflight(self, profile: TargetProfile) -> list[Problem]:
        return trt_plan.compare_device(profile, trt_plan.read_device())

    def export(self, source: SourceModel, profile: TargetProfile, out: Path) -> Artifact:
        import onnx

        from ftedge.export import onnx_graph

        model = onnx.load(str(source.path))
        onnx_graph.set_batch(model, source.batch)
        model = onnx_graph.clean(model)
        onnx_name = f"model.{source.precision}.onnx"
        onnx_graph.save(model, out / onnx_name)
        plan = trt_plan.make_plan(out / onnx_name, sha256_file(out / onnx_name), source.precision,
                                  source.batch, source.input_size, profile)
        atomic_write_json(out / PLAN, plan.to_dict())
        command = trt_plan.shell_line(trt_plan.trtexec_command(plan))
        script = atomic_write_text(out / "trtexec.sh", "#!/bin/sh\n# the same engine with NVIDIA's "
                                   f"trtexec\ncd \"$(dirname \"$0\")\" && {command}\n")
        script.chmod(0o755)
        artifact = Artifact(out, ENGINE, profile.name, self.name, source.precision, source.batch,
                            built=False, extra={"onnx": onnx_name, "trtexec": command})
        dev = trt_plan.read_device()
        if dev.tensorrt and dev.compute_capability:
            self.build(artifact, dev)
        return artifact

    def build(self, artifact: Artifact, dev: trt_plan.DeviceInfo | None = None) -> None:
        """Build the engine on this device into the artifact folder (and record its key)."""
        dev = dev or trt_plan.read_device()
        plan = trt_plan.load_plan(artifact.folder / PLAN)
        cache = artifact.folder / trt_plan.timing_cache_name(dev.tensorrt, dev.compute_capability)
        engine = build_engine(artifact.folder / plan.onnx, plan, cache)
        atomic_write_bytes(artifact.folder / ENGINE, engine)
        key = trt_plan.engine_key(plan, dev.tensorrt, dev.compute_capability)
        atomic_write_json(artifact.folder / "engine.json", {
            "key": key, "tensorrt": dev.tensorrt, "compute_capability": dev.compute_capability,
            "gpu": dev.gpu, "l4t": dev.l4t, "engine_sha256": sha256_file(artifact.folder / ENGINE)})
        artifact.built = True

    def check_engine(self, artifact: Artifact, plan: trt_plan.BuildPlan,
                     dev: trt_plan.DeviceInfo) -> bytes:
        """The engine bytes, refused when built for another ONNX/TensorRT/GPU/flags."""
        _trt()  # a clear error first when TensorRT itself is missing
        batch = "" if artifact.batch is None else f" --batch {artifact.batch}"
        rebuild = (f"ftedge export {artifact.extra.get('run', 'RUN')} --target {artifact.target} "
                   f"--precision {artifact.precision}{batch} --force")
        info_file, engine_file = artifact.folder / "engine.json", artifact.folder / ENGINE
        if not engine_file.is_file() or not info_file.is_file():
            raise ExportError(f"{artifact.folder} holds no engine yet", f"build it: {rebuild}")
        info = read_json(info_file)
        differs = []
        if sha256_file(artifact.folder / plan.onnx) != plan.onnx_sha256:
            differs.append(f"{plan.onnx} changed since the plan was written")
        if sha256_file(engine_file) != info.get("engine_sha256"):
            differs.append(f"{ENGINE} is not the file that was built (sha256 differs)")
        if info["tensorrt"] != dev.tensorrt:
            differs.append(f"built by TensorRT {info['tensorrt']}, this device has {dev.tensorrt}")
        if info["compute_capability"] != dev.compute_capability:
            differs.append(f"built for sm {info['compute_capability']}, this GPU is sm "
                           f"{dev.compute_capability}")
        if not differs and info["key"] != trt_plan.engine_key(plan, dev.tensorrt,
                                                              dev.compute_capability):
            differs.append("built with other flags or shapes than build_plan.json says")
        if differs:
            raise ExportError(f"refusing the engine in {artifact.folder}: " + "; ".join(differs),
                              f"rebuild it here: {rebuild}")
        return engine_file.read_bytes()

    def runner(self, artifact: Artifact, profile: TargetProfile, threads: int | None = None):
        dev = trt_plan.read_device()
        if not (artifact.folder / ENGINE).is_file():  # plan only (or engine deleted): build here
            if not (dev.tensorrt and dev.compute_capability):
                raise ExportError(f"{artifact.folder} holds the build plan, not an engine: "
                                  "TensorRT engines are built on the device",
                                  f"copy the folder to the device and run `ftedge eval "
                                  f"{artifact.folder.name}` there (it builds the engine first), "
                                  f"or its trtexec.sh")
            self.build(artifact, dev)
        plan = trt_plan.load_plan(artifact.folder / PLAN)
        inner = TrtRunner(self.check_engine(artifact, plan, dev), plan.dla_core)
        return inner if artifact.batch is None else FixedBatchRunner(inner, artifact.batch)

    def versions(self) -> dict[str, str]:
        dev = trt_plan.read_device()
        return {"tensorrt": dev.tensorrt or "not installed (engine built on the device)",
                "cuda": dev.cuda or "none"}

