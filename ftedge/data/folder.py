"""Find images in class folders (DIR/<class>/..., or split folders DIR/train + DIR/val (or
valid/validation) + optional DIR/test) and split them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from ftedge.data.images import IMAGE_EXTENSIONS
from ftedge.errors import DatasetError
from ftedge.formats.run import Sample  # the split record's element: formats/ owns it

__all__ = ["DatasetLayout", "Sample", "discover_dataset", "stratified_split"]

VAL_DIRS = ("val", "valid", "validation")
SPLIT_NAMES = ("train", "test", *VAL_DIRS)  # top-level folders never taken as classes


@dataclass
class DatasetLayout:
    """What was found on disk, before any file is decoded."""

    root: Path
    classes: list[str]
    train: list[Sample]
    val: list[Sample] | None  # None: no val folder, a split will be made
    ignored: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
    test: list[Sample] | None = None  # a held-out test folder, never trained or selected on
    split_dirs: dict[str, str] = field(default_factory=dict)  # split -> folder name used


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_class_dir(folder: Path, label: int, ignored: list) -> list[Sample]:
    samples = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            samples.append(Sample(p, label))
        else:
            ignored.append((p, f"extension {p.suffix or '(none)'!s} is not an image type "
                               f"({', '.join(IMAGE_EXTENSIONS)})"))
    return samples


def _scan_split(root: Path, classes: list[str], ignored: list) -> list[Sample]:
    samples = []
    for label, name in enumerate(classes):
        folder = root / name
        if folder.is_dir():
            samples += _scan_class_dir(folder, label, ignored)
    for p in root.iterdir():
        if p.is_file() and not p.name.startswith("."):
            ignored.append((p, "file is not inside a class folder"))
    return samples


MIN_CLASSES = 2  # a classifier needs two classes to train (eval may ask for fewer)


def discover_dataset(root: str | Path, min_classes: int = MIN_CLASSES) -> DatasetLayout:
    """List class folders and image files under `root`.

    `min_classes`: 2 for training a classifier; 1 for evaluating one on some of its classes.
    Raises:
        DatasetError: the folder is missing, has fewer than `min_classes` classes, or its val
            split holds classes the train split lacks.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder not found: {root}",
                           "pass --data DIR with one sub-folder per class (DIR/<class>/*.jpg), "
                           "or try `ftedge demo-data data/digits`")
    ignored: list[tuple[Path, str]] = []
    split_dirs = _split_dirs(root)
    if split_dirs:
        classes = [p.name for p in _class_dirs(root / split_dirs["train"])]
        for split in ("val", "test"):
            if split in split_dirs:
                _check_split_classes(root, split_dirs, split, classes)
        train = _scan_split(root / split_dirs["train"], classes, ignored)
        val, test = (_scan_split(root / split_dirs[k], classes, ignored) if k in split_dirs
                     else None for k in ("val", "test"))
    else:
        classes = [p.name for p in _class_dirs(root)]
        train, val, test = _scan_split(root, classes, ignored), None, None
    if len(classes) < min_classes:
        need = "a classifier needs at least 2" if min_classes > 1 else "there is nothing to read"
        raise DatasetError(
            f"{root} holds {len(classes)} class folder(s); {need}",
            "put each class's images in its own sub-folder: DIR/<class>/*.jpg",
        )
    return DatasetLayout(root, classes, train, val, ignored, test, split_dirs)


def _split_dirs(root: Path) -> dict[str, str]:
    """{"train": ..., "val"?: ..., "test"?: ...} when the top level is split folders, else {}.

    A tree whose top-level folders look like split names is never read as classes: a
    classifier of "train" and "test" is always a mistake.
    """
    tops = _class_dirs(root)
    named = {p.name.lower(): p.name for p in tops if p.name.lower() in SPLIT_NAMES}
    if not named:
        return {}
    others = sorted(p.name for p in tops if p.name.lower() not in SPLIT_NAMES)
    if "train" not in named or others:
        raise DatasetError(
            f"{root} mixes split folders ({', '.join(sorted(named.values()))}) with "
            + (f"class folders ({', '.join(others[:5])})" if others else "no train/ folder"),
            "use either DIR/<class>/*.jpg, or DIR/train/<class>/ with DIR/val/<class>/ (or "
            "valid/, validation/) and an optional DIR/test/<class>/")
    vals = [named[v] for v in VAL_DIRS if v in named]
    if len(vals) > 1:
        raise DatasetError(f"{root} has more than one validation folder: {', '.join(vals)}",
                           "keep one of val/, valid/ or validation/")
    dirs = {"train": named["train"]}
    if vals:
        dirs["val"] = vals[0]
    if "test" in named:
        dirs["test"] = named["test"]
    return dirs


def _check_split_classes(root: Path, dirs: dict[str, str], split: str, classes: list[str]):
    extra = sorted({p.name for p in _class_dirs(root / dirs[split])} - set(classes))
    if extra:
        raise DatasetError(
            f"the {dirs[split]} split has classes the train split lacks: {', '.join(extra)}",
            f"add training images for them under {root / dirs['train']}/<class>/, "
            f"or remove those folders from {dirs[split]}")


def stratified_split(samples: list[Sample], val_fraction: float, seed: int
                     ) -> tuple[list[Sample], list[Sample]]:
    """Split per class with a fixed seed; every class keeps >= 1 train image and, when it has
    two or more, gets >= 1 val image. Written by hand because sklearn's stratified split
    refuses classes with a single image."""
    rng = random.Random(seed)
    by_class: dict[int, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    train, val = [], []
    for label in sorted(by_class):
        items = sorted(by_class[label], key=lambda s: str(s.path))
        rng.shuffle(items)
        n_val = min(max(round(len(items) * val_fraction), 1 if len(items) >= 2 else 0),
                    len(items) - 1)
        val += items[:n_val]
        train += items[n_val:]
    return train, val
