"""TensorRT 10: a deserialized engine behind the Runner protocol (imported only when used)."""

from __future__ import annotations

import numpy as np

from ftedge.errors import ExportError
from ftedge.runtime import ClosingRunner


def tensorrt_module():
    """`import tensorrt`, or a clear error saying where TensorRT comes from."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise ExportError("TensorRT is not installed here",
                          "build on the device: JetPack ships it (see Dockerfile.jetson); on x86 "
                          "pip install 'ftedge[tensorrt]' from NVIDIA's index") from e
    return trt


_LOGGER = None


def trt_logger():
    """One TensorRT logger per process (TensorRT warns when builder and runtime differ)."""
    global _LOGGER
    if _LOGGER is None:
        trt = tensorrt_module()
        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


class TrtRunner(ClosingRunner):
    """A deserialized engine with device buffers from PyTorch's CUDA allocator."""

    _held = ("context", "engine", "runtime", "stream")  # in TensorRT's teardown order

    def __init__(self, engine_bytes: bytes, dla_core: int | None = None):
        import torch

        trt = tensorrt_module()
        self.torch = torch
        self.runtime = trt.Runtime(trt_logger())
        if dla_core is not None:
            self.runtime.DLA_core = dla_core  # else a DLA engine runs on core 0
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise ExportError("TensorRT could not deserialize the engine",
                              "rebuild it on this device: ftedge export RUN --target NAME")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        self.input = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        outputs = [n for n in names if modes[n] == trt.TensorIOMode.OUTPUT]
        # graphs exported with an unknown score have it as a second output (graph/unknown.py);
        # every output needs an address, so both are bound
        self.unknown = "unknown_score" if "unknown_score" in outputs else None
        self.output = next(n for n in outputs if n != self.unknown)
        self.outputs = outputs
        # the optimization profile's (min, opt, max) shapes: larger batches are split
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.input, 0)[2][0])
        self.stream = torch.cuda.Stream()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.infer_scored(batch)[0]

    def infer_scored(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and the unknown score ([N], higher = more unknown; None without one)."""
        if len(batch) > self.max_batch:
            parts = [self.infer_scored(batch[i:i + self.max_batch])
                     for i in range(0, len(batch), self.max_batch)]
            return (np.concatenate([p[0] for p in parts]),
                    None if self.unknown is None else np.concatenate([p[1] for p in parts]))
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).cuda()
        if not self.context.set_input_shape(self.input, tuple(x.shape)):
            raise ExportError(f"the engine does not take input shape {tuple(x.shape)}",
                              "export with a --batch / max_batch that covers it")
        self.context.set_tensor_address(self.input, x.data_ptr())
        ys = {}
        for name in self.outputs:
            ys[name] = torch.empty(tuple(self.context.get_tensor_shape(name)),
                                   dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, ys[name].data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ExportError("TensorRT inference failed (see the log above)")
        self.stream.synchronize()
        logits = ys[self.output].cpu().numpy()
        return logits, (None if self.unknown is None else ys[self.unknown].cpu().numpy()[:, 0])
