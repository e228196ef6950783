"""Decode and preprocess on a thread pool while the runtime infers the previous batch.

On a camera-size JPEG the model is a few percent of the time (issue 22: 2.6 ms of ~90 ms per
1080p image); done one after the other, every core but the runtime's waits. Pillow releases
the GIL while it decodes and resizes, and ONNX Runtime and OpenVINO release it while they
infer, so plain threads overlap them: a pool prepares the next images while this thread runs
the current batch. At most `window` prepared images wait at any time, so memory stays bounded
however many inputs come (a video stream too).
"""

from __future__ import annotations

from contextlib import closing
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ftedge.deploy.templates.artifact import usable_cores
from ftedge.deploy.templates.cli import prepared_batches
from ftedge.errors import ConfigError


def default_workers() -> int:
    """Decode threads: one per core (the runtime's threads sleep while they wait for a batch)."""
    return usable_cores()


def check_batch_workers(batch: int, workers: int | None) -> int:
    """The worker count to use; refuses counts that would run nothing."""
    if not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be an integer >= 1, got {batch!r}",
                          "give the images per inference, e.g. 8")
    if workers is None:
        return default_workers()
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}",
                          "give the decode threads, e.g. the number of CPU cores")
    return workers


def overlapped_infer(runner, inputs: Iterable, prepare: Callable[[Any], np.ndarray], *,
                     batch: int, workers: int | None = None,
                     item_errors: tuple[type[BaseException], ...] = (),
                     window: int | None = None) -> Iterator[tuple[Any, Any]]:
    """Yield (input, logits row) for every input, in input order; prepare runs on threads.

    The threads, the window and the order are deploy/infer.py's own generator
    (deploy/templates/cli.prepared_batches), so ftedge and the kit overlap alike.

    Args:
        runner: anything with infer(NCHW float32) -> logits; called from this thread only.
        inputs: what `prepare` takes (file paths, frames); any iterable, consumed lazily.
        prepare: one input -> one CHW float32 array.
        batch: images per runner.infer call (the last one may be smaller).
        workers: preparing threads (default: one per core).
        item_errors: exceptions of `prepare` that belong to one input: yielded as
            (input, exception) in its place; any other exception stops the whole run.
        window: prepared-or-preparing inputs at most (default: two batches plus one per
            worker, so the pool never idles while a batch infers).
    """
    workers = check_batch_workers(batch, workers)
    with closing(prepared_batches(inputs, prepare, batch=batch, workers=workers,
                                  item_errors=item_errors, window=window)) as batches:
        for group, arrays in batches:
            logits = runner.infer(np.stack(arrays)) if arrays else None
            for item, slot in group:
                yield item, (slot if isinstance(slot, BaseException) else logits[slot])
