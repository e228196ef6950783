"""The training plots: loss/top-1 curves and the confusion matrix (their file names are the
run folder's, formats/run.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftedge.io import atomic_save_figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(path: Path, history: list[dict]) -> Path:
    """Loss and top-1 per epoch, train vs val."""
    plt = _pyplot()
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(ep, [h["val_loss"] for h in history], "o-", label="val")
    a.set(xlabel="epoch", ylabel="loss", title="Loss")
    b.plot(ep, [h["train_top1"] for h in history], "o-", label="train (augmented)")
    b.plot(ep, [h["val_top1"] for h in history], "o-", label="val")
    b.set(xlabel="epoch", ylabel="top-1", title="Accuracy", ylim=(0, 1.01))
    heads = [h["epoch"] for h in history if h["phase"] == "head"]
    for ax in (a, b):
        if heads:
            ax.axvspan(min(heads) - 0.5, max(heads) + 0.5, color="0.9", label="head only")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def plot_confusion(path: Path, cm: np.ndarray, classes: list[str], *, title: str) -> Path:
    """Row-normalised confusion matrix with counts in the cells."""
    plt = _pyplot()
    n = len(classes)
    size = min(0.5 * n + 2.5, 24)
    fig, ax = plt.subplots(figsize=(size, size))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90 if n > 8 else 0)
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    out = atomic_save_figure(fig, path)
    plt.close(fig)
    return out
