"""Learning-rate schedule: constant for the head warm-up, then linear warm-up + cosine."""

from __future__ import annotations

import math


def lr_factor(step: int, total_steps: int, warmup_steps: int, *, min_ratio: float) -> float:
    """Multiplier of the base LR at full-fine-tuning `step` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizer, factor: float) -> float:
    """Scale every param group's `base_lr`; returns the head group's LR for logging."""
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor
    return optimizer.param_groups[0]["lr"]
