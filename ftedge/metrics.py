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
    """Precision, recall (= per-class accuracy), F1 and support for each class (recall and F1
    are NaN for a class with no image)."""
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(0).astype(float)
    support = cm.sum(1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, float("nan"))
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall),
                      np.where(np.isnan(recall), float("nan"), 0.0))
    return {c: {"precision": round(float(p), 6), "recall": round(float(r), 6),
                "f1": round(float(f), 6), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support)}


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


ECE_BINS = 15  # equal-width confidence bins, as Guo et al. (2017) and most papers report


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax(logits / temperature) in float64, stable for large logits."""
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / temperature)."""
    from scipy.special import logsumexp

    z = np.asarray(logits, np.float64) / float(temperature)
    if not len(z):
        return float("nan")
    return float((logsumexp(z, axis=1) - z[np.arange(len(z)), labels]).mean())


def reliability_bins(logits: np.ndarray, labels: np.ndarray, *, temperature: float = 1.0,
                     bins: int = ECE_BINS) -> list[dict]:
    """Top-1 confidence in `bins` equal-width bins (lo, hi]: per bin the image count, mean
    confidence and accuracy (None where empty). The numbers behind ECE and the diagram."""
    prob = softmax(logits, temperature)
    conf, correct = prob.max(1), prob.argmax(1) == labels
    index = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        out.append({"lo": b / bins, "hi": (b + 1) / bins, "n": n,
                    "confidence": float(conf[mask].mean()) if n else None,
                    "accuracy": float(correct[mask].mean()) if n else None})
    return out


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray,
                               *, temperature: float = 1.0, bins: int = ECE_BINS) -> float:
    """ECE: sum over equal-width top-1 confidence bins of (bin share) * |accuracy - confidence|."""
    table = reliability_bins(logits, labels, temperature=temperature, bins=bins)
    total = sum(b["n"] for b in table)
    if not total:
        return float("nan")
    return float(sum(b["n"] / total * abs(b["accuracy"] - b["confidence"])
                     for b in table if b["n"]))


def ood_rates(known_scores: np.ndarray, unknown_scores: np.ndarray, *, target_tpr: float = 0.95,
              threshold: float | None = None) -> dict:
    """How well an unknown score (higher = more unknown) separates in-distribution images
    (`known_scores`) from images of none of the classes: AUROC, and the fraction of unknowns
    accepted (FPR) at the first threshold that accepts `target_tpr` of the knowns; with
    `threshold`, the rates a fixed threshold gives (accepted: score <= threshold)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    known = np.asarray(known_scores, np.float64).ravel()
    unknown = np.asarray(unknown_scores, np.float64).ravel()
    if not len(known) or not len(unknown):
        raise ValueError("ood_rates needs both known and unknown scores")
    # "positive" = known, ranked by -score: TPR = knowns accepted, FPR = unknowns accepted
    truth = np.r_[np.ones(len(known)), np.zeros(len(unknown))]
    rank = -np.r_[known, unknown]
    fpr, tpr, _ = roc_curve(truth, rank)
    out = {"auroc": float(roc_auc_score(truth, rank)), "target_tpr": float(target_tpr),
           "fpr_at_tpr": float(fpr[np.searchsorted(tpr, target_tpr - 1e-12)]),
           "n_known": int(len(known)), "n_unknown": int(len(unknown))}
    if threshold is not None:
        out["at_threshold"] = {"threshold": float(threshold),
                               "tpr": float((known <= threshold).mean()),
                               "fpr": float((unknown <= threshold).mean())}
    return out


def accuracy_coverage(scores: np.ndarray, correct: np.ndarray,
                      coverages=(1.0, 0.95, 0.9, 0.8, 0.7, 0.5)) -> list[dict]:
    """Top-1 of the in-distribution images kept when only the `coverage` fraction with the
    lowest unknown scores is accepted (selective classification: accuracy against coverage)."""
    order = np.argsort(np.asarray(scores, np.float64).ravel(), kind="stable")
    hit = np.asarray(correct, bool).ravel()[order]
    points = []
    for c in coverages:
        n = max(1, int(round(c * len(hit))))
        points.append({"coverage": float(c), "n": n, "top1": float(hit[:n].mean())
                       if len(hit) else float("nan")})
    return points
