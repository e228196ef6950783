"""One Runner per runtime (PyTorch, ONNX Runtime, OpenVINO, TensorRT) behind one protocol.

Each runtime's heavy import happens inside its module's functions, so `import ftedge` works on
a machine without OpenVINO or TensorRT. bench, eval, parity and the gates only talk to Runners.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ftedge.config import DEFAULT_LAYOUT, or_default


class Runner(Protocol):
    """NCHW float32 batch in, logits out; a context manager whose exit releases the session
    or compiled model (ClosingRunner)."""

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


def close_runner(runner) -> None:
    """Release what `runner` holds, when it holds anything (a bare object with only `infer`,
    as tests pass, holds nothing)."""
    close = getattr(runner, "close", None)
    if close is not None:
        close()


@contextmanager
def opened(runner):
    """`with opened(runner) as r:` for any Runner, also one that is no context manager (a
    wrapper a test or a user target passes): closed at the end when it can be."""
    try:
        yield runner
    finally:
        close_runner(runner)


class ClosingRunner:
    """The context-manager half of every ftedge Runner: `with X(...) as runner:` releases the
    session, compiled model or engine at the end, also on an error, instead of whenever the
    garbage collector gets to it (an OpenVINO compiled model holds its threads and memory;
    a TensorRT context its GPU memory). A closed runner cannot infer any more."""

    def close(self) -> None:
        """Drop the runtime objects; subclasses name theirs in `_held`."""
        for name in getattr(self, "_held", ()):
            if hasattr(self, name):
                setattr(self, name, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def infer_batches(runner: Runner, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """Any Runner over many images, `batch` at a time."""
    if len(x) == 0:
        return np.zeros((0, 0), np.float32)
    return np.concatenate([runner.infer(x[i:i + batch]) for i in range(0, len(x), batch)])


def infer_scored(runner: Runner, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits and the graph's unknown score ([N], higher = more unknown), or None when the
    runner's model has none (PyTorch runs, artifacts exported before ftedge had one)."""
    scored = getattr(runner, "infer_scored", None)
    return scored(batch) if scored else (runner.infer(batch), None)


class FixedBatchRunner(ClosingRunner):
    """Feeds a graph with a fixed batch size any number of images: chunks, zero-pads the last."""

    def __init__(self, inner: Runner, batch: int):
        self.inner, self.batch = inner, batch

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.infer_scored(batch)[0]

    def infer_scored(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        logits, scores = [], []
        for i in range(0, len(batch), self.batch):
            chunk = batch[i:i + self.batch]
            n = len(chunk)
            if n < self.batch:
                chunk = np.concatenate([chunk, np.zeros((self.batch - n, *chunk.shape[1:]),
                                                        chunk.dtype)])
            lo, sc = infer_scored(self.inner, chunk)
            logits.append(lo[:n])
            scores.append(None if sc is None else sc[:n])
        return np.concatenate(logits), (None if scores[0] is None else np.concatenate(scores))

    def conv_kernels(self) -> dict[str, int] | None:
        kernels = getattr(self.inner, "conv_kernels", None)
        return kernels() if kernels else None

    def close(self) -> None:
        close_runner(self.inner)


class PixelInputRunner(ClosingRunner):
    """An artifact that normalises in its graph (8-bit RGB input), behind the Runner protocol:
    it takes the contract's normalised float32 NCHW batch like every runner and feeds the
    artifact the pixels that batch was computed from (exactly: graph/normalize.py).

    The pixels of the last batch are kept while the caller passes the same array object again
    (bench's timed loop), so latency is the artifact's own, not this conversion's."""

    def __init__(self, inner: Runner, contract: dict, input_format: str,
                 *, layout: str | None = None):
        self.inner, self.contract = inner, contract
        self.input_format, self.layout = input_format, or_default(layout, DEFAULT_LAYOUT)
        self._last: tuple | None = None

    def native(self, batch: np.ndarray) -> np.ndarray:
        """The artifact's own input for a normalised batch."""
        from ftedge.graph.normalize import pixels_from_normalized

        if self._last is None or self._last[0] is not batch:
            self._last = (batch, pixels_from_normalized(batch, self.contract, self.input_format,
                                                        layout=self.layout))
        return self._last[1]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.inner.infer(self.native(batch))

    def infer_scored(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        # the unknown score sits behind the pixel front too: pass it through
        return infer_scored(self.inner, self.native(batch))

    def conv_kernels(self) -> dict[str, int] | None:
        kernels = getattr(self.inner, "conv_kernels", None)
        return kernels() if kernels else None

    def close(self) -> None:
        close_runner(self.inner)


def artifact_runner(inner: Runner, contract: dict, input_format: str | None,
                    *, layout: str | None = None) -> Runner:
    """`inner` as a Runner of normalised float32 NCHW batches, whatever the artifact's input."""
    if input_format in (None, "normalized"):
        return inner
    return PixelInputRunner(inner, contract, input_format, layout=layout)


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
    # the temperature predict read on its first call, its notes printed (stages/inference.py):
    # a stream passing the open model on every frame neither re-reads nor repeats them
    noted_temperature: float | None = field(default=None, init=False, repr=False,
                                            compare=False)
    _closed: bool = field(default=False, init=False, repr=False, compare=False)

    def close(self) -> None:
        close_runner(self.runner)
        self._closed = True

    @property
    def closed(self) -> bool:
        """Whether close() ran (its `with` ended): it cannot infer any more."""
        return self._closed

    def __enter__(self) -> "LoadedModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
