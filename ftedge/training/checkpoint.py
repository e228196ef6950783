"""Checkpoints during training: best/last through the checkpoint format, and RNG state."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ftedge.formats.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["load_checkpoint", "rng_state", "save_best", "save_last", "unwrap"]


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP."""
    return model.module if hasattr(model, "module") else model


def save_best(path: Path, model: nn.Module, meta: dict) -> Path:
    return save_checkpoint(path, model, meta)


def save_last(path: Path, model: nn.Module, meta: dict, *, train_state: dict) -> Path:
    """last.pt: everything --resume needs to continue exactly where the run stopped."""
    return save_checkpoint(path, model, meta, train_state=train_state)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state
