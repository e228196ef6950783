"""Classification metrics from logits: top-k, confusion matrix, per-class precision/recall."""

from __future__ import annotations

import numpy as np


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the k highest logits (k capped at #classes)."""
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(1).mean()) if len(labels) else float("nan")


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """cm[true, predicted] counts."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm


def per_class(cm: np.ndarray, classes: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall (= per-class accuracy) and support for each class."""
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(0).astype(float)
    support = cm.sum(1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, float("nan"))
    return {c: {"precision": round(float(p), 6), "recall": round(float(r), 6),
                "support": int(s)}
            for c, p, r, s in zip(classes, precision, recall, support)}


def classification_report(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """The dict `ftedge eval --json` prints: top1, top5, per_class, confusion_matrix."""
    pred = logits.argmax(1)
    cm = confusion_matrix(pred, labels, len(classes))
    return {
        "n": int(len(labels)),
        "top1": topk_accuracy(logits, labels, 1),
        "top5": topk_accuracy(logits, labels, 5),
        "per_class": per_class(cm, classes),
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }
