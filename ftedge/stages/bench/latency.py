"""Latency measurement: warm-up, timed runs (a count or a time budget), percentiles."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ftedge.config import BENCH_WARMUP, or_default


def latency_percentiles(seconds: list[float] | np.ndarray, batch: int) -> dict:
    """p50/p90/p99/mean/std in milliseconds per call, and images per second."""
    t = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"batch": batch, "runs": int(t.size),
            "p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)),
            "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()),
            "std_ms": float(t.std(ddof=1)) if t.size > 1 else 0.0,
            "min_ms": float(t.min()), "max_ms": float(t.max()),
            "images_per_s": float(batch * 1000.0 / t.mean()),
            "p50_ms_per_image": float(np.percentile(t, 50) / batch)}


def time_calls(fn: Callable[[], object], *, warmup: int | None = None, runs: int | None = None,
               seconds: float | None = None, max_runs: int = 100_000) -> list[float]:
    """Call `fn` `warmup` times untimed, then `runs` times (or for `seconds`); per-call seconds.

    perf_counter around each call: the overhead is one clock read pair (timer_overhead_us).
    """
    if runs is None and seconds is None:
        runs = 100
    for _ in range(or_default(warmup, BENCH_WARMUP)):
        fn()
    times: list[float] = []
    clock = time.perf_counter
    deadline = clock() + seconds if seconds is not None else None
    while True:
        t0 = clock()
        fn()
        times.append(clock() - t0)
        if runs is not None and len(times) >= runs:
            break
        if deadline is not None and (clock() >= deadline and len(times) >= 5):
            break
        if len(times) >= max_runs:
            break
    return times


def timer_overhead_us(calls: int = 20_000) -> float:
    """Median cost of timing one call of a function that does nothing, in microseconds."""
    times = time_calls(lambda: None, warmup=100, runs=calls)
    return float(np.median(times) * 1e6)
