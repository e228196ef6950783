"""Checkpoints (best.pt, last.pt, qat_best.pt): weights plus the model's contract.

They load with torch.load(weights_only=True) and are checked key by key, so a foreign or
damaged file is refused with what is wrong instead of failing later inside a model.
"""

from __future__ import annotations

from pathlib import Path

from ftedge import __version__
from ftedge.errors import RunError
from ftedge.formats.contract import REQUIRED, check_contract
from ftedge.io import atomic_torch_save, safe_torch_load

FORMAT = "ftedge-checkpoint/1"
CONTRACT_KEYS = REQUIRED  # what every runtime needs of the preprocessing contract


def state_dict_of(model) -> dict:
    """CPU copies of a model's (or its DDP wrapper's) weights."""
    bare = model.module if hasattr(model, "module") else model
    return {k: v.detach().cpu().contiguous() for k, v in bare.state_dict().items()}


def model_record(model, meta: dict) -> dict:
    """Weights + contract: model name, classes, preprocessing, config. Everything else plain."""
    return {"format": FORMAT, "ftedge_version": __version__, **meta,
            "model_state": state_dict_of(model)}


def save_checkpoint(path: Path, model, meta: dict, *, train_state: dict | None = None) -> Path:
    """Write a checkpoint atomically; `train_state` (last.pt) is what --resume needs."""
    record = model_record(model, meta)
    if train_state is not None:
        record["train_state"] = train_state
    return atomic_torch_save(record, path)


def check_classes(classes, where: str) -> list[str]:
    if (not isinstance(classes, list) or len(classes) < 2
            or not all(isinstance(c, str) and c for c in classes)
            or len(set(classes)) != len(classes)):
        raise RunError(f"{where}: the class list is missing, has fewer than 2 names, or "
                       "repeats one", "re-create it with the ftedge command that wrote it")
    return classes


def load_checkpoint(path: Path) -> dict:
    """Load and check an ftedge checkpoint."""
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise RunError(f"{path} is not an ftedge checkpoint",
                       "point at a run folder written by `ftedge tune`")
    if not isinstance(ckpt.get("model_name"), str) or not isinstance(ckpt.get("model_state"),
                                                                     dict):
        raise RunError(f"{path}: the model name or weights are missing",
                       "use the run's own checkpoint, or train again")
    check_classes(ckpt.get("classes"), str(path))
    if ckpt.get("num_classes") != len(ckpt["classes"]):
        raise RunError(f"{path}: num_classes {ckpt.get('num_classes')} does not match its "
                       f"{len(ckpt['classes'])} classes", "use the run's own checkpoint")
    check_contract(ckpt.get("preprocessing"), str(path))
    return ckpt
