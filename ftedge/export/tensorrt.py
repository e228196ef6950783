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


def build_engine(onnx_path: Path, plan: trt_plan.BuildPlan, timing_cache: Path) -> bytes:
    """Parse the ONNX and build a serialized engine as `plan` says (TensorRT 10 API)."""
    trt = _trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
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
    shapes = {k: tuple(int(x) for x in v.split(":")[1].split("x")) for k, v in plan.shapes().items()}
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(trt_plan.INPUT, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(opt_profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine (see the log above)",
                          f"try the same build with: {trt_plan.shell_line(trt_plan.trtexec_command(plan))}")
    atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


class TrtRunner:
    """A deserialized engine with device buffers from PyTorch's CUDA allocator."""

    def __init__(self, engine_bytes: bytes):
        import torch

        trt = _trt()
        self.torch = torch
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise ExportError("TensorRT could not deserialize the engine",
                              "rebuild it on this device: ftedge export RUN --target NAME")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.stream = torch.cuda.Stream()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).cuda()
        self.context.set_input_shape(self.input, tuple(x.shape))
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
        plan = trt_plan.BuildPlan(**read_json(artifact.folder / PLAN))
        plan = trt_plan.BuildPlan(**{**plan.to_dict(), "input_shape": tuple(plan.input_shape)})
        cache = artifact.folder / trt_plan.timing_cache_name(dev.tensorrt, dev.compute_capability)
        engine = build_engine(artifact.folder / plan.onnx, plan, cache)
        atomic_write_bytes(artifact.folder / ENGINE, engine)
        key = trt_plan.engine_key(plan, dev.tensorrt, dev.compute_capability)
        atomic_write_json(artifact.folder / "engine.json", {
            "key": key, "tensorrt": dev.tensorrt, "compute_capability": dev.compute_capability,
            "gpu": dev.gpu, "l4t": dev.l4t, "engine_sha256": sha256_file(artifact.folder / ENGINE)})
        artifact.built = True

    def check_engine(self, artifact: Artifact, dev: trt_plan.DeviceInfo) -> bytes:
        """The engine bytes, refused when built for another ONNX/TensorRT/GPU/flags."""
        rebuild = f"ftedge export {artifact.extra.get('run', 'RUN')} --target {artifact.target} " \
                  f"--precision {artifact.precision} --force"
        info_file = artifact.folder / "engine.json"
        if not (artifact.folder / ENGINE).is_file() or not info_file.is_file():
            raise ExportError(f"{artifact.folder} holds no engine yet", f"build it: {rebuild}")
        info = read_json(info_file)
        plan = trt_plan.BuildPlan(**read_json(artifact.folder / PLAN))
        plan = trt_plan.BuildPlan(**{**plan.to_dict(), "input_shape": tuple(plan.input_shape)})
        want = trt_plan.engine_key(plan, dev.tensorrt or "?", dev.compute_capability or "?")
        if info["key"] != want or sha256_file(artifact.folder / plan.onnx) != plan.onnx_sha256:
            raise ExportError(f"the engine in {artifact.folder} was built for TensorRT "
                              f"{info['tensorrt']} on sm {info['compute_capability']}; this device "
                              f"has TensorRT {dev.tensorrt} on sm {dev.compute_capability}",
                              f"rebuild it here: {rebuild}")
        return (artifact.folder / ENGINE).read_bytes()

    def runner(self, artifact: Artifact, profile: TargetProfile, threads: int | None = None):
        dev = trt_plan.read_device()
        if not artifact.built and not (artifact.folder / ENGINE).is_file():
            if not (dev.tensorrt and dev.compute_capability):
                raise ExportError(f"{artifact.folder} holds the build plan, not an engine: "
                                  "TensorRT engines are built on the device",
                                  f"copy the folder to the device and run `ftedge eval "
                                  f"{artifact.folder.name}` there (it builds the engine first), "
                                  f"or its trtexec.sh")
            self.build(artifact, dev)
        inner = TrtRunner(self.check_engine(artifact, dev))
        return inner if artifact.batch is None else FixedBatchRunner(inner, artifact.batch)

    def versions(self) -> dict[str, str]:
        dev = trt_plan.read_device()
        return {"tensorrt": dev.tensorrt or "not installed (engine built on the device)",
                "cuda": dev.cuda or "none"}

