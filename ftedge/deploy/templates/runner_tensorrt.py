"""TensorRT engine for deploy/infer.py: TensorRT 10 Python API, buffers through cuda-python.

Template piece; needs the tensorrt package (JetPack ships it) and cuda-python (`cuda.cudart`,
or `cuda.bindings.runtime` in cuda-python 12.8+), both imported when the model is opened.
The engine is built on the device (trtexec.sh or `ftedge export` there), after the export,
so it is usually not in the manifest: it is then checked against engine.json when present.
"""

import json
import sys
from pathlib import Path

import numpy as np

from ftedge.deploy.templates.artifact import ArtifactError, plain_name, sha256_file

# ---- ftedge template body ----

RUNTIME = "tensorrt"
REQUIRES = "tensorrt and cuda-python"  # besides numpy and Pillow


def engine_name(manifest):
    artifact = manifest["artifact"]
    if artifact.endswith((".engine", ".plan")):
        return artifact
    return (manifest.get("extra") or {}).get("engine", "model.engine")


def model_files(manifest):
    """The engine when the export built it (then it is in the manifest); else nothing yet."""
    name = engine_name(manifest)
    return [name] if name in (manifest.get("files") or {}) else []


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.8
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise ArtifactError("cuda-python is not installed",
                                "pip install cuda-python (the version matching your CUDA)") from None
    return cudart


def _check(result):
    """cuda-python returns (error, *values): raise on error, return the values."""
    err, values = result[0], result[1:]
    if int(err) != 0:
        raise ArtifactError(f"CUDA call failed: {err}", "check the GPU with nvidia-smi / tegrastats")
    return values[0] if len(values) == 1 else values


def _check_unlisted_engine(path, manifest):
    """An engine built after the export: compare with engine.json (written by ftedge's build)."""
    record = path.parent / "engine.json"
    if not record.is_file():
        print(f"warning: {path.name} is not covered by the manifest and has no engine.json; "
              "it is used unchecked", file=sys.stderr)
        return
    want = json.loads(record.read_text(encoding="utf-8")).get("engine_sha256")
    if want != sha256_file(path):
        raise ArtifactError(f"{path} is not the engine recorded in engine.json (sha256 differs)",
                            "rebuild it on this device: sh trtexec.sh in the artifact folder")


class Model:
    """A deserialized TensorRT engine: NCHW float32 batch in, logits out."""

    def __init__(self, folder, manifest):
        try:
            import tensorrt as trt
        except ImportError:
            raise ArtifactError("TensorRT is not installed here",
                                "on a Jetson it comes with JetPack (python3-libnvinfer); on x86 "
                                "pip install tensorrt; then pip install cuda-python") from None
        self.cudart = _cudart()
        if not plain_name(engine_name(manifest)):
            raise ArtifactError(f"the engine name {engine_name(manifest)!r} is not a plain path "
                                "in the artifact folder", "export the artifact again")
        path = Path(folder) / engine_name(manifest)
        if not path.is_file():
            raise ArtifactError(f"{path} does not exist: TensorRT engines are built on the device",
                                "build it here: sh trtexec.sh (in the artifact folder), or run "
                                "ftedge export for this target on this device")
        if path.name not in (manifest.get("files") or {}):
            _check_unlisted_engine(path, manifest)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        dla = ((manifest.get("profile") or {}).get("tensorrt") or {}).get("use_dla_core")
        if dla is not None:
            self.runtime.DLA_core = int(dla)
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ArtifactError(f"TensorRT could not load {path} (built by another TensorRT "
                                "version or for another GPU)", "rebuild it on this device: sh "
                                "trtexec.sh in the artifact folder")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input, self.output = manifest["input_name"], manifest["output_name"]
        if self.input not in names or self.output not in names:
            raise ArtifactError(f"the engine's tensors are {names}, not {self.input!r} -> "
                                f"{self.output!r}", "rebuild the engine from this artifact's ONNX")
        # the unknown score is the graph's second output; every output needs an address
        self.unknown = (manifest.get("unknown") or {}).get("output")
        if self.unknown is not None and self.unknown not in names:
            raise ArtifactError(f"the engine has no {self.unknown!r} output",
                                "rebuild the engine from this artifact's ONNX")
        self.outputs = [self.output] + ([self.unknown] if self.unknown else [])
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.input, 0)[2][0])
        self.context = self.engine.create_execution_context()
        self.stream = _check(self.cudart.cudaStreamCreate())
        self.buffers = {}  # name -> (device pointer, bytes)

    def _device(self, name, nbytes):
        ptr, size = self.buffers.get(name, (None, 0))
        if size < nbytes:
            if ptr is not None:
                _check(self.cudart.cudaFree(ptr))
            ptr = _check(self.cudart.cudaMalloc(nbytes))
            self.buffers[name] = (ptr, nbytes)
        return ptr

    def infer(self, batch):
        return self.infer_scored(batch)[0]

    def infer_scored(self, batch):
        """Logits, and the unknown score per image (None when the graph has none)."""
        if len(batch) > self.max_batch:
            parts = [self.infer_scored(batch[i:i + self.max_batch])
                     for i in range(0, len(batch), self.max_batch)]
            return (np.concatenate([p[0] for p in parts]), None if self.unknown is None
                    else np.concatenate([p[1] for p in parts]))
        cudart, x = self.cudart, np.ascontiguousarray(batch, dtype=np.float32)
        if not self.context.set_input_shape(self.input, tuple(x.shape)):
            raise ArtifactError(f"the engine does not take input shape {tuple(x.shape)}",
                                "pass a --batch the engine was built for")
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        d_in = self._device(self.input, x.nbytes)
        _check(cudart.cudaMemcpyAsync(d_in, x.ctypes.data, x.nbytes, h2d, self.stream))
        self.context.set_tensor_address(self.input, int(d_in))
        ys = {}
        for name in self.outputs:
            ys[name] = np.empty(tuple(self.context.get_tensor_shape(name)), dtype=np.float32)
            self.context.set_tensor_address(name, int(self._device(name, ys[name].nbytes)))
        if not self.context.execute_async_v3(stream_handle=int(self.stream)):
            raise ArtifactError("TensorRT inference failed (see the log above)")
        for name, y in ys.items():
            _check(cudart.cudaMemcpyAsync(y.ctypes.data, self.buffers[name][0], y.nbytes, d2h,
                                          self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return ys[self.output], (ys[self.unknown][:, 0] if self.unknown else None)
