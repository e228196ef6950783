"""Checkpoints during training: best/last through the checkpoint format, the top-k keeper,
and RNG state."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ftedge.formats.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["CheckpointKeeper", "load_checkpoint", "rank_later", "rank_strict", "rng_state",
           "save_best", "save_last", "unwrap"]


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


def rank_strict(entry: dict) -> tuple:
    """Better only when its val top-1 is higher: ties keep the earlier epoch."""
    return (entry["val_top1"],)


def rank_later(entry: dict) -> tuple:
    """Ties go to the later epoch (trained at a lower LR)."""
    return entry["val_top1"], entry["epoch"]


@dataclass
class CheckpointKeeper:
    """The k best epochs' checkpoints, the one place a run keeps top-k (timm's CheckpointSaver
    is the model): best.pt / qat_best.pt are a keeper of 1 under a fixed name, the QAT
    candidates one of `qat.candidates` in their folder. `kept` (best first, entries
    {"epoch", "val_top1", "file"}) is saved with the training state so a resume goes on
    keeping the same set."""

    k: int
    path_of: Callable[[int], Path]  # epoch -> where its checkpoint goes
    rank: Callable[[dict], tuple] = rank_strict
    kept: list[dict] = field(default_factory=list)

    def admits(self, entry: dict) -> bool:
        return self.k >= 1 and (len(self.kept) < self.k
                                or self.rank(entry) > self.rank(self.kept[-1]))

    def offer(self, entry: dict, save: Callable[[Path], object]) -> bool:
        """Save `entry` (an epoch and its val_top1) through `save(path)` when it is among the k
        best so far, and delete the checkpoint it pushes out; True when it was kept."""
        if not self.admits(entry):
            return False
        path = self.path_of(entry["epoch"])
        path.parent.mkdir(exist_ok=True)
        save(path)
        # in place: `kept` may be the caller's own list (the training state's)
        self.kept[:] = [c for c in self.kept if c["file"] != path.name]  # a fixed name: replaced
        self.kept.append({"epoch": entry["epoch"], "val_top1": entry["val_top1"],
                          "file": path.name})
        self.kept.sort(key=self.rank, reverse=True)  # stable: an equal rank keeps its place
        for c in self.kept[self.k:]:
            (path.parent / c["file"]).unlink(missing_ok=True)
        del self.kept[self.k:]
        return True
