"""One training epoch and batched inference; the hot path, kept free of bookkeeping."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn


@dataclass
class StepSettings:
    """How each step runs on this device."""

    device: str
    channels_last: bool
    amp_dtype: torch.dtype | None  # None: full precision
    scaler: torch.amp.GradScaler | None
    grad_clip: float | None


@dataclass
class EpochStats:
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    compute_s: float = 0.0  # time inside the step (forward/backward/update)
    wait_s: float = 0.0  # time waiting for the loader: high means data loading starves the model


def to_device(x: torch.Tensor, s: StepSettings) -> torch.Tensor:
    x = x.to(s.device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if s.channels_last else x


def autocast(s: StepSettings):
    if s.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=s.device.split(":")[0], dtype=s.amp_dtype)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, optimizer,
               criterion, s: StepSettings) -> tuple[float, int]:
    """Forward, backward, update; returns (summed loss, correct predictions)."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(s):
        logits = model(x)
        # a distillation loss also needs the batch, for its teacher
        loss = criterion(logits, y, x) if getattr(criterion, "needs_input", False) \
            else criterion(logits, y)
    if s.scaler is not None:
        s.scaler.scale(loss).backward()
        if s.grad_clip:
            s.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        s.scaler.step(optimizer)
        s.scaler.update()
    else:
        loss.backward()
        if s.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        optimizer.step()
    n = y.shape[0]
    return loss.detach().item() * n, int((logits.detach().argmax(1) == y).sum())


def train_one_epoch(model, loader, optimizer, *, criterion, s: StepSettings,
                    before_step: Callable[[], None], after_step: Callable[[EpochStats], None]
                    ) -> EpochStats:
    """Run every batch of `loader` through `train_step`, timing compute and data waits."""
    stats = EpochStats()
    t_wait = time.perf_counter()
    for x, y in loader:
        t0 = time.perf_counter()
        stats.wait_s += t0 - t_wait
        before_step()
        loss_sum, correct = train_step(model, to_device(x, s), y.to(s.device), optimizer=optimizer,
                                       criterion=criterion, s=s)
        stats.loss_sum += loss_sum
        stats.correct += correct
        stats.seen += y.shape[0]
        t_wait = time.perf_counter()
        stats.compute_s += t_wait - t0
        after_step(stats)
    return stats


@torch.no_grad()
def predict_logits(model: nn.Module, loader, s: StepSettings) -> tuple[np.ndarray, np.ndarray]:
    """Logits (float32) and labels for every batch of `loader`, in order."""
    model.eval()
    outs, labels = [], []
    for x, y in loader:
        with autocast(s):
            outs.append(model(to_device(x, s)).float().cpu())
        labels.append(y)
    if not outs:
        return np.zeros((0, 0), np.float32), np.zeros((0,), np.int64)
    return torch.cat(outs).numpy(), torch.cat(labels).numpy()
