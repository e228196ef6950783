"""Find images in class folders (DIR/<class>/... or DIR/train + DIR/val) and split them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from ftedge.data.images import IMAGE_EXTENSIONS
from ftedge.errors import DatasetError

SPLIT_DIRS = ("train", "val")


@dataclass(frozen=True)
class Sample:
    """One image file and its class index."""

    path: Path
    label: int


@dataclass
class DatasetLayout:
    """What was found on disk, before any file is decoded."""

    root: Path
    classes: list[str]
    train: list[Sample]
    val: list[Sample] | None  # None: no val folder, a split will be made
    ignored: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)


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


def discover_dataset(root: str | Path) -> DatasetLayout:
    """List class folders and image files under `root`.

    Raises:
        DatasetError: the folder is missing, has fewer than two classes, or its val split
            holds classes the train split lacks.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder not found: {root}",
                           "pass --data DIR with one sub-folder per class (DIR/<class>/*.jpg), "
                           "or try `ftedge demo-data data/digits`")
    ignored: list[tuple[Path, str]] = []
    if all((root / d).is_dir() for d in SPLIT_DIRS):
        train_classes = [p.name for p in _class_dirs(root / "train")]
        val_classes = [p.name for p in _class_dirs(root / "val")]
        extra = sorted(set(val_classes) - set(train_classes))
        if extra:
            raise DatasetError(
                f"the val split has classes the train split lacks: {', '.join(extra)}",
                f"add training images for them under {root / 'train'}/<class>/, "
                "or remove those folders from val",
            )
        classes = train_classes
        train = _scan_split(root / "train", classes, ignored)
        val = _scan_split(root / "val", classes, ignored)
    else:
        classes = [p.name for p in _class_dirs(root)]
        train, val = _scan_split(root, classes, ignored), None
    if len(classes) < 2:
        raise DatasetError(
            f"{root} holds {len(classes)} class folder(s); a classifier needs at least 2",
            "put each class's images in its own sub-folder: DIR/<class>/*.jpg",
        )
    return DatasetLayout(root, classes, train, val, ignored)


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
