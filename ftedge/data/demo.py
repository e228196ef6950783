"""Built-in demo data: scikit-learn's 1,797 real handwritten digits as a class-folder dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _split_dir(label: int, index: int, train_ids: set[int] | None) -> str:
    if train_ids is None:
        return str(label)
    return f"{'train' if index in train_ids else 'val'}/{label}"


def _pick_train(labels: np.ndarray, per_class: int, seed: int) -> set[int]:
    rng = np.random.default_rng(seed)
    picked: set[int] = set()
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        picked |= set(rng.choice(idx, size=min(per_class, len(idx) - 1), replace=False).tolist())
    return picked


def write_demo_data(out: str | Path, *, overwrite: bool = False, train_per_class: int | None = None,
                    seed: int = 0) -> Path:
    """Write the digits (8x8, 16 grey levels) as PNGs in out/<digit>/<index>.png.

    With `train_per_class` N, write out/train/<digit>/ with N seeded picks per class and
    out/val/<digit>/ with all the others: the small-data setting fine-tuning is for.
    The folder appears complete or not at all (written beside it, then renamed).

    Raises:
        RunError: `out` exists and is not empty, and `overwrite` is False or `out` is not a
            demo-data folder ftedge wrote (only those are ever replaced).
    """
    from sklearn.datasets import load_digits

    from ftedge.formats.owned import staged_folder

    out = Path(out)
    if train_per_class is not None and train_per_class < 1:
        from ftedge.errors import DatasetError

        raise DatasetError(f"--train-per-class {train_per_class} must be at least 1")
    digits = load_digits()
    train_ids = None if train_per_class is None else _pick_train(digits.target, train_per_class, seed)
    with staged_folder(out, "demo-data", force=overwrite) as tmp:
        for i, (img, label) in enumerate(zip(digits.images, digits.target)):
            folder = tmp / _split_dir(int(label), i, train_ids)
            folder.mkdir(parents=True, exist_ok=True)
            pixels = np.round(img / 16.0 * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{i:04d}.png")
    return out
