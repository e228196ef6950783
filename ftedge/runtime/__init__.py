"""One Runner per runtime (PyTorch, ONNX Runtime, OpenVINO, TensorRT) behind one protocol.

Each runtime's heavy import happens inside its module's functions, so `import ftedge` works on
a machine without OpenVINO or TensorRT. bench, eval, parity and the gates only talk to Runners.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class Runner(Protocol):
    """NCHW float32 batch in, logits out."""

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


def infer_batches(runner: Runner, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """Any Runner over many images, `batch` at a time."""
    if len(x) == 0:
        return np.zeros((0, 0), np.float32)
    return np.concatenate([runner.infer(x[i:i + batch]) for i in range(0, len(x), batch)])


class FixedBatchRunner:
    """Feeds a graph with a fixed batch size any number of images: chunks, zero-pads the last."""

    def __init__(self, inner: Runner, batch: int):
        self.inner, self.batch = inner, batch

    def infer(self, batch: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(0, len(batch), self.batch):
            chunk = batch[i:i + self.batch]
            n = len(chunk)
            if n < self.batch:
                pad = np.zeros((self.batch - n, *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            outs.append(self.inner.infer(chunk)[:n])
        return np.concatenate(outs)

    def conv_kernels(self) -> dict[str, int] | None:
        kernels = getattr(self.inner, "conv_kernels", None)
        return kernels() if kernels else None


@dataclass
class LoadedModel:
    """A model ready to run, from a run (PyTorch) or an artifact (its runtime), with the
    classes and preprocessing contract that go with it."""

    path: Path  # the run or artifact folder
    classes: list[str]
    contract: dict
    runner: Runner
    checkpoint: Path  # the file the weights came from
    model_name: str  # the registry name
    kind: str = "run"  # "run" | "artifact"
    manifest: object = None  # formats.artifact.Manifest for artifacts
