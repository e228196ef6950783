"""`ftedge eval` and `ftedge predict`: a run or an artifact folder (runtime/artifact.py opens
either) evaluated on images, or classes predicted for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftedge.console import console, literal
from ftedge.data.images import ImageDecodeError
from ftedge.data.transforms import preprocess_image, preprocess_samples
from ftedge.errors import DatasetError
from ftedge.metrics import classification_report
from ftedge.runtime import LoadedModel
from ftedge.runtime.artifact import host_note, open_model
from ftedge.stages.common import eval_samples

__all__ = ["evaluate", "open_model", "predict", "warn_host_note"]


def warn_host_note(loaded: LoadedModel) -> str | None:
    """An artifact's caveat for this host (runtime/artifact.py host_note), printed as a warning
    on stderr; None for runs and for artifacts this host computes as exported."""
    if loaded.kind != "artifact":
        return None
    note = host_note(loaded.manifest.runtime, dict(loaded.manifest.extra))
    if note:
        console.print(f"warning: {literal(loaded.path.name)}: {note}", style="yellow",
                      markup=False, highlight=False, soft_wrap=True)
    return note


def evaluate(run: str | Path, data: str | Path | None = None, batch_size: int = 32,
             split: str = "val") -> dict:
    """Top-1, top-5, per-class precision/recall and confusion matrix of a run or artifact.

    Args:
        run: run folder, checkpoint file, or artifact folder.
        data: class-folder dataset; None uses the run's own recorded `split`.
        split: val (default), test (a held-out test/ folder), or train.
    Returns:
        dict with keys n, top1, top5, per_class, confusion_matrix, classes, and cpu_note
        when this host computes the artifact differently from where it was exported
        (runtime/artifact.py host_note; also printed as a warning).
    """
    loaded = open_model(run)
    note = warn_host_note(loaded)
    samples = eval_samples(loaded, data, split)
    if not samples:
        raise DatasetError(f"no images to evaluate in the {split} split",
                           "pass --data DIR with images in the model's class folders")
    # batch by batch: decoded images of a large test set need not all sit in memory at once
    logits = [loaded.runner.infer(preprocess_samples(samples[i:i + batch_size], loaded.contract))
              for i in range(0, len(samples), batch_size)]
    rep = classification_report(np.concatenate(logits), np.array([s.label for s in samples]),
                                loaded.classes)
    return {**rep, "cpu_note": note} if note else rep


def predict(run: str | Path, images: list[str | Path], topk: int = 5) -> list[dict]:
    """Top-k classes with probabilities for each image file; unreadable files get an error entry."""
    if topk < 1:
        raise DatasetError(f"--topk {topk} must be at least 1")
    loaded = open_model(run)
    warn_host_note(loaded)
    results = []
    for path in images:
        try:
            x = preprocess_image(path, loaded.contract)
        except (ImageDecodeError, OSError) as e:
            results.append({"image": str(path), "error": str(e)})
            continue
        logits = loaded.runner.infer(x)[0]
        prob = np.exp(logits - logits.max())
        prob /= prob.sum()
        order = np.argsort(-prob)[: min(topk, len(prob))]
        results.append({"image": str(path), "top": [
            {"class": loaded.classes[i], "prob": round(float(prob[i]), 6)} for i in order]})
    return results
