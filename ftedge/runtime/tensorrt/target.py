"""TensorRT target (Jetson and discrete GPUs), written against TensorRT 10's Python API.

Engines are device-specific, so they are built ON the device: off it, export writes the ONNX,
build_plan.json and the equivalent trtexec command; the first `ftedge export` or `ftedge
bench` on the device builds the engine into the same folder. INT8 comes from the graph's own
Q/DQ pairs (explicit quantization, no calibrator). An engine is bound by a key (ONNX sha256 +
TensorRT version + compute capability + build flags) and refused at load when it no longer
matches, with the command that rebuilds it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ftedge.errors import ExportError
from ftedge.runtime.base import Artifact, FixedBatchRunner, Problem, SourceModel, Target
from ftedge.runtime.profiles import TargetProfile
from ftedge.runtime.tensorrt import plan as trt_plan
from ftedge.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, sha256_file
from ftedge.runtime.tensorrt.runner import TrtRunner, tensorrt_module, trt_logger

ENGINE, PLAN = "model.engine", "build_plan.json"
ENGINE_FILES = (ENGINE, "engine.json", "timing-*")  # written on the device, checked by key


def build_engine(onnx_path: Path, plan: trt_plan.BuildPlan, timing_cache: Path) -> bytes:
    """Parse the ONNX and build a serialized engine as `plan` says (TensorRT 10 API)."""
    trt = tensorrt_module()
    logger = trt_logger()
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
        # a library does not print: Python's warnings reach stderr once, as print did
        warnings.warn(f"TensorRT did not accept the timing cache {timing_cache.name}; building "
                      "without it (it is rewritten after the build)", RuntimeWarning, stacklevel=2)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine (see the log above)",
                          f"try the same build with: {trt_plan.shell_line(trt_plan.trtexec_command(plan))}")
    atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


class TensorRTTarget(Target):
    name = "tensorrt"
    built_later = ENGINE_FILES

    def preflight(self, profile: TargetProfile) -> list[Problem]:
        return trt_plan.compare_device(profile, trt_plan.read_device())

    def export(self, source: SourceModel, profile: TargetProfile, out: Path) -> Artifact:
        from ftedge.formats.run import load_onnx
        from ftedge.graph import edit as onnx_graph

        model = load_onnx(source.path)
        onnx_graph.set_batch(model, source.batch)
        model = onnx_graph.clean(model)
        onnx_name = f"model.{source.precision}.onnx"
        onnx_graph.save(model, out / onnx_name)
        plan = trt_plan.make_plan(out / onnx_name, sha256_file(out / onnx_name), source.precision,
                                  batch=source.batch, input_shape=source.input_size,
                                  profile=profile,
                                  float_layers=bool(source.float_layers))
        atomic_write_json(out / PLAN, plan.to_dict())
        command = trt_plan.shell_line(trt_plan.trtexec_command(plan))
        script = atomic_write_text(out / "trtexec.sh", "#!/bin/sh\n# the same engine with NVIDIA's "
                                   f"trtexec\ncd \"$(dirname \"$0\")\" && {command}\n")
        script.chmod(0o755)
        # the shipped, hashed file is the ONNX; the engine is built from it on the device and
        # checked by its own key (engine.json), never by the manifest
        artifact = Artifact(out, onnx_name, profile.name, self.name, source.precision,
                            source.batch, built=False,
                            extra={"onnx": onnx_name, "engine": ENGINE, "trtexec": command})
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
        tensorrt_module()  # a clear error first when TensorRT itself is missing
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

