"""Activation ranges for post-training quantization: max, percentile and entropy (KL) calibration.

A histogram of |x| per quantizer, collected over the calibration images, then one amax per
tensor. Entropy calibration is TensorRT's: the amax whose 128-level quantization of the
histogram loses the least information (KL divergence). Written by hand because PyTorch's
observers offer min/max and an L2 histogram search but neither percentile nor KL, and the
maintained implementations (NVIDIA modelopt, NNCF) bring their own quantization graphs.
"""

from __future__ import annotations

import numpy as np
import torch

from ftedge.config import CALIB_PERCENTILE, or_default

METHODS = ("minmax", "percentile", "entropy")
QUANT_LEVELS = 128  # symmetric INT8: 0..127 on each side


class AbsHistogram:
    """Histogram of |x| whose range grows as larger values arrive (bins re-used, never lost)."""

    def __init__(self, bins: int = 2048):
        self.bins = bins
        self.counts = np.zeros(bins, dtype=np.float64)
        self.edge = 0.0  # upper edge of the last bin
        self.max = 0.0

    def add(self, x: torch.Tensor) -> None:
        a = x.detach().abs().float().flatten()
        top = float(a.max()) if a.numel() else 0.0
        self.max = max(self.max, top)
        if top > self.edge:
            self._grow(top)
        if self.edge == 0.0:
            self.counts[0] += a.numel()
            return
        h = torch.histc(a, bins=self.bins, min=0.0, max=self.edge)
        self.counts += h.cpu().numpy()

    def _grow(self, top: float) -> None:
        if self.edge == 0.0 or not self.counts.any():
            self.edge = top
            return
        factor = int(np.ceil(top / self.edge))
        merged = np.add.reduceat(np.concatenate([self.counts, np.zeros(self.bins * (factor - 1))]),
                                 np.arange(0, self.bins * factor, factor))
        self.counts = merged
        self.edge *= factor

    def amax(self, method: str, percentile: float | None = None) -> float:
        """The range `method` keeps; `percentile` (None: CALIB_PERCENTILE) for "percentile"."""
        if method == "minmax" or self.edge == 0.0:
            return self.max
        if method == "percentile":
            cdf = np.cumsum(self.counts) / self.counts.sum()
            share = or_default(percentile, CALIB_PERCENTILE) / 100.0
            idx = int(np.searchsorted(cdf, share))
            return min(self.max, (idx + 1) * self.edge / self.bins)
        if method == "entropy":
            return entropy_amax(self.counts, self.edge)
        raise ValueError(f"unknown calibration method {method!r}; use one of {', '.join(METHODS)}")


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))


def entropy_amax(counts: np.ndarray, edge: float, start: int = QUANT_LEVELS) -> float:
    """TensorRT's KL calibration over a histogram of |x| (bins of width edge/len(counts))."""
    counts = counts.astype(np.float64).copy()
    counts[0] = counts[1]  # the zero bin (ReLU outputs) would otherwise dominate the search
    bins = len(counts)
    best_kl, best_i = np.inf, bins
    stride = max(1, (bins - start) // 256)  # 256 candidates are plenty; keeps it fast
    for i in range(start, bins + 1, stride):
        ref = counts[:i].copy()
        ref[-1] += counts[i:].sum()  # clip the outliers into the last bin
        if ref.sum() == 0:
            continue
        # quantize the first i bins into 128 levels, then spread each level's mass evenly over
        # its non-empty bins
        starts = (np.arange(QUANT_LEVELS) * i) // QUANT_LEVELS
        part = counts[:i]
        sums = np.add.reduceat(part, starts)
        nonzero = np.add.reduceat((part > 0).astype(np.float64), starts)
        level = np.repeat(np.arange(QUANT_LEVELS), np.diff(np.append(starts, i)))
        q = np.where(part > 0, (sums / np.maximum(nonzero, 1))[level], 0.0)
        kl = _kl(ref / ref.sum(), q / max(q.sum(), 1e-12))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i * edge / bins
