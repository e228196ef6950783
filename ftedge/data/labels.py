"""Suspected label errors: confident learning (cleanlab) on cross-validated probabilities of
a linear probe over frozen pretrained features.

Every image's class probabilities come from a logistic regression that never saw it
(stratified K-fold), so a wrong label cannot teach the model to agree with itself. cleanlab
then flags the images whose given class is unlikely under those probabilities (its
"prune by noise rate" confident-joint filter) and ranks them, worst first, by the
probability of the given label (self-confidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftedge.config import DEFAULT_WEIGHTS
from ftedge.errors import DatasetError

FOLDS = 5
PROBE_C = 0.1  # logistic-regression C (features standardised); see cross_val_probabilities


@dataclass(frozen=True)
class LabelIssue:
    """One image whose folder (label) the features disagree with."""

    path: Path
    given: str
    suggested: str
    quality: float  # cross-validated probability of the given label (low: likely wrong)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "given": self.given, "suggested": self.suggested,
                "label_quality": round(self.quality, 4)}


def cross_val_probabilities(features: np.ndarray, labels: np.ndarray, *, folds: int = FOLDS,
                            c: float = PROBE_C, seed: int = 0) -> np.ndarray:
    """(n, classes) probabilities, each from a probe fitted without that image.

    C is fixed rather than cross-validated inside every fold (13x the cost): on flowers17
    with 68 planted label errors (benchmarks/audit_quality.py, Lite0 features) C 0.01 and
    0.1 both rank 64 of the 68 first.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fewest = int(np.bincount(labels).min())
    if fewest < 2:
        raise DatasetError("the label check needs at least 2 images per class "
                           f"(a class has {fewest})", "add images, or leave out --labels")
    cv = StratifiedKFold(int(min(folds, fewest)), shuffle=True, random_state=seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    return cross_val_predict(clf, features, labels, cv=cv, method="predict_proba")


def find_label_issues(paths: list[Path], labels: np.ndarray, probs: np.ndarray,
                      *, classes: list[str]) -> list[LabelIssue]:
    """The images cleanlab flags, worst (lowest given-label probability) first."""
    from cleanlab.filter import find_label_issues as _find

    # n_jobs=1: cleanlab's default forks a multiprocessing pool, and a fork from a process
    # whose other threads hold locks (PyTorch's, DDP's gloo: tune's label check) can leave the
    # child waiting forever on a lock no thread will release (seen: a torchrun tune hung);
    # results are the same for any n_jobs, and one core handles thousands of images in ms
    order = _find(labels, probs, filter_by="prune_by_noise_rate",
                  return_indices_ranked_by="self_confidence", n_jobs=1)
    return [LabelIssue(Path(paths[i]), classes[labels[i]], classes[int(probs[i].argmax())],
                       float(probs[i, labels[i]])) for i in order]


def label_quality_ranking(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Every index, least likely label first (for precision at k on planted errors)."""
    return np.argsort(probs[np.arange(len(labels)), labels], kind="stable")


def check_labels(audit, *, model: str, weights: str = DEFAULT_WEIGHTS,
                 img_size: int | None = None) -> list[LabelIssue]:
    """Suspected label errors among all of `audit`'s usable images (every split at once:
    a wrong label in val misleads as much as one in train)."""
    from ftedge.data.features import frozen_features

    samples = audit.train + (audit.val or []) + (audit.test or [])
    x = frozen_features(samples, model=model, weights=weights, img_size=img_size)
    return issues_from_features(samples, x, classes=audit.classes)


def issues_from_features(samples, features: np.ndarray, *,
                         classes: list[str]) -> list[LabelIssue]:
    """Suspected label errors among `samples` from their frozen features (row per sample):
    the probe's cross-validated probabilities, filtered and ranked by cleanlab."""
    y = np.array([s.label for s in samples])
    probs = cross_val_probabilities(features, y)
    return find_label_issues([s.path for s in samples], y, probs, classes=classes)
