"""Checkpoints that load with torch.load(weights_only=True) and carry the model's contract."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ftedge import __version__
from ftedge.errors import RunError
from ftedge.io import atomic_torch_save, safe_torch_load

FORMAT = "ftedge-checkpoint/1"


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP."""
    return model.module if hasattr(model, "module") else model


def model_record(model: nn.Module, meta: dict) -> dict:
    """Weights + contract: model name, classes, preprocessing, config. Everything else plain."""
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    return {"format": FORMAT, "ftedge_version": __version__, **meta, "model_state": state}


def save_best(path: Path, model: nn.Module, meta: dict) -> Path:
    return atomic_torch_save(model_record(model, meta), path)


def save_last(path: Path, model: nn.Module, meta: dict, train_state: dict) -> Path:
    """last.pt: everything --resume needs to continue exactly where the run stopped."""
    return atomic_torch_save({**model_record(model, meta), "train_state": train_state}, path)


def load_checkpoint(path: Path) -> dict:
    """Load and check an ftedge checkpoint."""
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise RunError(f"{path} is not an ftedge checkpoint",
                       "point at a run folder written by `ftedge tune`")
    return ckpt


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state
