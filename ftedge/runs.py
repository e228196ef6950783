"""Open a finished run, evaluate it on images, predict classes: `ftedge eval` and `ftedge predict`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ftedge.data.audit import audit_dataset
from ftedge.data.folder import Sample
from ftedge.data.images import ImageDecodeError, load_image
from ftedge.data.transforms import eval_transform
from ftedge.errors import DatasetError, RunError
from ftedge.io import read_json
from ftedge.metrics import classification_report
from ftedge.models import build_model
from ftedge.training.checkpoint import load_checkpoint
from ftedge.training.data_setup import samples_from_record


@dataclass
class TorchRunner:
    """The FP32 PyTorch reference: NCHW float batch in, logits out (the Runner protocol)."""

    model: torch.nn.Module

    @torch.no_grad()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(np.ascontiguousarray(batch))).float().numpy()


def infer_batches(runner, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """Any Runner over many images, `batch` at a time."""
    return np.concatenate([runner.infer(x[i:i + batch]) for i in range(0, len(x), batch)])


@dataclass
class LoadedRun:
    """A run's best model with its classes and preprocessing contract."""

    path: Path
    classes: list[str]
    contract: dict
    runner: TorchRunner
    checkpoint: Path
    model_name: str  # the registry name



def load_run(run: str | Path, checkpoint: str = "best.pt") -> LoadedRun:
    """Load `run`/best.pt (weights_only) into a fresh model of the recorded architecture.

    An artifact folder from `ftedge export` (it has a manifest.json) loads through its target's
    runner instead, so eval and predict work the same on runs and artifacts.
    """
    run = Path(run)
    if run.is_dir() and (run / "manifest.json").is_file():
        from ftedge.export.exporter import load_artifact

        return load_artifact(run)
    path = run / checkpoint if run.is_dir() else run
    if run.is_dir() and not path.is_file():
        raise RunError(f"{run} has no {checkpoint}", "finish `ftedge tune` first, or --resume it")
    ckpt = load_checkpoint(path)
    built = build_model(ckpt["model_name"], ckpt["num_classes"], weights="none")
    built.model.load_state_dict(ckpt["model_state"])
    built.model.eval()
    return LoadedRun(path.parent, list(ckpt["classes"]), ckpt["preprocessing"],
                     TorchRunner(built.model), path, ckpt["model_name"])


def _eval_samples(loaded: LoadedRun, data: str | Path | None) -> list[Sample]:
    if data is None:
        split = loaded.path / "split.json"
        manifest = loaded.path / "manifest.json"
        if not split.is_file() and manifest.is_file():  # an artifact: its source run's split
            split = Path(read_json(manifest)["source"]["run"]) / "split.json"
        if not split.is_file():
            raise RunError(f"{loaded.path} has no split.json", "pass --data DIR to evaluate on")
        return samples_from_record(read_json(split), loaded.classes, "val")
    audit = audit_dataset(data)
    samples = audit.val if audit.val is not None else audit.train
    unknown = sorted(set(audit.classes) - set(loaded.classes))
    if unknown:
        raise DatasetError(f"{data} has classes the model was not trained on: {', '.join(unknown)}",
                           f"the model knows: {', '.join(loaded.classes)}")
    remap = [loaded.classes.index(c) for c in audit.classes]
    return [Sample(s.path, remap[s.label]) for s in samples]


def preprocess_samples(samples: list[Sample], contract: dict) -> np.ndarray:
    """Decode and preprocess image files exactly as every runtime must: NCHW float32."""
    background = tuple(contract.get("background", (255, 255, 255)))
    transform = eval_transform(contract)
    if not samples:
        return np.zeros((0, *contract["input_size"]), np.float32)
    return torch.stack([transform(load_image(s.path, background)) for s in samples]).numpy()


def evaluate(run: str | Path, data: str | Path | None = None, batch_size: int = 32) -> dict:
    """Top-1, top-5, per-class precision/recall and confusion matrix of a run's best model.

    Args:
        run: run folder (or checkpoint file).
        data: class-folder dataset; None uses the run's own val split.
    Returns:
        dict with keys n, top1, top5, per_class, confusion_matrix, classes.
    """
    loaded = load_run(run)
    samples = _eval_samples(loaded, data)
    # batch by batch: decoded images of a large test set need not all sit in memory at once
    logits = [loaded.runner.infer(preprocess_samples(samples[i:i + batch_size], loaded.contract))
              for i in range(0, len(samples), batch_size)]
    logits = np.concatenate(logits) if logits else np.zeros((0, len(loaded.classes)), np.float32)
    return classification_report(logits, np.array([s.label for s in samples]), loaded.classes)


def predict(run: str | Path, images: list[str | Path], topk: int = 5) -> list[dict]:
    """Top-k classes with probabilities for each image file; unreadable files get an error entry."""
    loaded = load_run(run)
    background = tuple(loaded.contract.get("background", (255, 255, 255)))
    transform = eval_transform(loaded.contract)
    results = []
    for path in images:
        try:
            img = load_image(path, background)
        except (ImageDecodeError, FileNotFoundError) as e:
            results.append({"image": str(path), "error": str(e)})
            continue
        logits = loaded.runner.infer(transform(img)[None].numpy())[0]
        prob = np.exp(logits - logits.max())
        prob /= prob.sum()
        order = np.argsort(-prob)[: min(topk, len(prob))]
        results.append({"image": str(path), "top": [
            {"class": loaded.classes[i], "prob": round(float(prob[i]), 6)} for i in order]})
    return results
