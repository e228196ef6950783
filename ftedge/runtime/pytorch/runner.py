"""The PyTorch reference runner, and a run's best model loaded into it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ftedge.errors import RunError
from ftedge.formats.run import BEST, RunFolder
from ftedge.runtime import ClosingRunner, LoadedModel


@dataclass
class TorchRunner(ClosingRunner):
    """The FP32 PyTorch reference: NCHW float batch in, logits out (the Runner protocol)."""

    model: torch.nn.Module
    _held = ("model",)

    @torch.no_grad()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(np.ascontiguousarray(batch))).float().numpy()


def model_from_checkpoint(ckpt: dict, where: Path) -> torch.nn.Module:
    """A fresh model of the recorded architecture with the checkpoint's weights, in eval mode."""
    from ftedge.models import build_model

    built = build_model(ckpt["model_name"], ckpt["num_classes"], weights="none")
    try:
        built.model.load_state_dict(ckpt["model_state"])
    except RuntimeError as e:
        raise RunError(f"{where} does not fit a {ckpt['model_name']} with "
                       f"{ckpt['num_classes']} classes ({str(e).splitlines()[0]})",
                       "the checkpoint was taken from another run or edited: use the run's own "
                       f"{BEST}, or train again") from None
    bad = [k for k, v in ckpt["model_state"].items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise RunError(f"{where} holds non-finite weights ({bad[0]})",
                       "the training diverged before this checkpoint: train again with a lower "
                       "--lr")
    return built.model.eval()


def load_run(run: str | Path, checkpoint: str = BEST) -> LoadedModel:
    """A run's checkpoint (weights_only) in a fresh model of the recorded architecture.

    `run` is a run folder, or a checkpoint file inside one.
    """
    run = Path(run)
    if run.is_file() and run.suffix not in (".pt", ".pth"):
        raise RunError(f"{run} is neither a run folder, an artifact folder nor a checkpoint",
                       "pass a folder written by `ftedge tune` or `ftedge export`")
    if run.is_file():
        folder, name = RunFolder(run.parent), run.name
    else:
        folder, name = RunFolder.open(run), checkpoint
    ckpt = folder.checkpoint(name)
    model = model_from_checkpoint(ckpt, folder.file(name))
    return LoadedModel(folder.path, list(ckpt["classes"]), ckpt["preprocessing"],
                       TorchRunner(model), folder.file(name), ckpt["model_name"])
