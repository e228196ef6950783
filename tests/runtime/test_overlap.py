"""runtime/overlap.py: threaded preparation gives the sequential results, in input order."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ftedge.errors import ConfigError
from ftedge.runtime.overlap import overlapped_infer


class SumRunner:
    """Logits = per-image sums (so a row tells which input it came from); records batches."""

    def __init__(self):
        self.batches = []

    def infer(self, batch):
        self.batches.append(len(batch))
        return batch.reshape(len(batch), -1).sum(1, keepdims=True) * np.ones((1, 2))


class Unreadable(Exception):
    pass


def prepare(i):
    time.sleep(0.002 * ((i * 7) % 5))  # out-of-order completion across threads
    if i % 11 == 3:
        raise Unreadable(f"input {i}")
    return np.full((1, 2, 2), i, np.float32)


@pytest.mark.parametrize("batch, workers", [(1, 1), (4, 3), (5, 8), (32, 2)])
def test_same_results_in_input_order_as_sequential(batch, workers):
    runner = SumRunner()
    out = list(overlapped_infer(runner, range(40), prepare, batch=batch, workers=workers,
                                item_errors=(Unreadable,)))
    assert [i for i, _ in out] == list(range(40))
    for i, r in out:
        if i % 11 == 3:
            assert isinstance(r, Unreadable) and str(r) == f"input {i}"
        else:  # the row of input i: its 4 pixels of value i
            np.testing.assert_array_equal(r, [4 * i, 4 * i])
    assert sum(runner.batches) == 40 - 4 and max(runner.batches) <= batch


def test_other_errors_stop_the_run_and_the_queue_is_bounded():
    live, peak, lock = [0], [0], threading.Lock()

    def counted(i):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.001)
        return np.zeros((1, 1, 1), np.float32) + i

    class Draining(SumRunner):
        def infer(self, batch):
            with lock:
                live[0] -= len(batch)
            return super().infer(batch)

    gen = overlapped_infer(Draining(), iter(range(10**6)), counted, batch=4, workers=2)
    got = [next(gen)[0] for _ in range(200)]  # an endless source, consumed lazily
    gen.close()
    assert got == list(range(200)) and peak[0] <= 2 * 4 + 2 + 4  # window + the batch in hand

    def broken(i):
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        list(overlapped_infer(SumRunner(), range(5), broken, batch=2, workers=2))


@pytest.mark.parametrize("kw", [dict(batch=0), dict(batch=2, workers=0), dict(batch=1.5)])
def test_bad_batch_or_workers_are_refused(kw):
    with pytest.raises(ConfigError):
        list(overlapped_infer(SumRunner(), range(3), prepare, **kw))


def test_empty_input_runs_nothing():
    runner = SumRunner()
    assert list(overlapped_infer(runner, [], prepare, batch=4)) == [] and runner.batches == []


def test_decode_threads_follow_the_cores_this_process_may_use(monkeypatch):
    """A container or `taskset` may allow fewer cores than the machine has: one decode thread
    per allowed core, in ftedge and in the kit alike, and DataLoader workers by the same count
    (os.cpu_count() counts them all)."""
    import os

    from ftedge.config import resolve_workers
    from ftedge.deploy.templates.artifact import usable_cores
    from ftedge.runtime.overlap import default_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert usable_cores() == default_workers() == 1
    assert resolve_workers(None) == 0  # DataLoader workers: 1 usable core, none
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # not Linux: the machine's
    assert usable_cores() == default_workers() == 64
    assert resolve_workers(None) == 8
