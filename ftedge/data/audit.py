"""Dataset audit: decode every file once, count per class, and list every file we cannot use."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ftedge.data.duplicates import (DRAFT_SIZE, MIN_HASH_SIDE, DuplicatePair, Fingerprint,
                                    find_duplicates, fingerprint, leaked_into)
from ftedge.data.folder import MIN_CLASSES, DatasetLayout, Sample, discover_dataset
from ftedge.data.images import WHITE, ImageDecodeError, decode_image, read_image_bytes
from ftedge.deploy.templates.artifact import usable_cores
from ftedge.errors import DatasetError


@dataclass
class DatasetAudit:
    """Usable samples per split, what was skipped and why, and summary statistics."""

    root: Path
    classes: list[str]
    train: list[Sample]
    val: list[Sample] | None
    unusable: list[tuple[Path, str]]  # (file, reason): undecodable files and ignored ones
    sizes: list[tuple[int, int]]  # (width, height) of every usable image
    images: dict[Path, Image.Image] = field(default_factory=dict, repr=False)  # optional cache
    test: list[Sample] | None = None  # a held-out test folder
    duplicates: list[DuplicatePair] | None = None  # None: not searched (duplicates=False)
    outliers: list[tuple[Path, str]] = field(default_factory=list)  # (file, why)
    label_issues: list | None = None  # ftedge.data.labels.LabelIssue; None: not checked
    too_small_to_hash: int = 0  # images under MIN_HASH_SIDE: only identical copies searched

    def leaked(self, split: str = "val") -> set[Path]:
        """Files of `split` that show a picture also in train (what `tune` leaves out of
        its val top-1 "without leaks")."""
        other = {"val": self.val, "test": self.test}[split] or []
        return leaked_into(self.duplicates or [], [s.path for s in self.train],
                           [s.path for s in other])

    def counts(self, split: str = "train") -> list[int]:
        samples = {"train": self.train, "val": self.val, "test": self.test}[split] or []
        c = [0] * len(self.classes)
        for s in samples:
            c[s.label] += 1
        return c

    @property
    def imbalance(self) -> float:
        """Largest over smallest train class (1.0 is balanced)."""
        c = [n for n in self.counts("train")]
        return max(c) / max(min(c), 1)

    def size_summary(self) -> dict[str, list[int]]:
        if not self.sizes:
            return {}
        arr = np.asarray(self.sizes)
        return {"min": arr.min(0).tolist(), "median": np.median(arr, 0).astype(int).tolist(),
                "max": arr.max(0).tolist()}

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "classes": self.classes,
            "train_counts": self.counts("train"),
            "val_counts": self.counts("val") if self.val is not None else None,
            "test_counts": self.counts("test") if self.test is not None else None,
            "imbalance": round(self.imbalance, 3),
            "image_sizes_wh": self.size_summary(),
            "unusable": [[str(p), r] for p, r in self.unusable],
            "duplicates": (None if self.duplicates is None
                           else [p.to_dict() for p in self.duplicates]),
            "leaks": (None if self.duplicates is None else
                      {s: sorted(map(str, self.leaked(s))) for s in ("val", "test")}),
            "near_duplicates_not_searched": (None if self.duplicates is None else {
                "images": self.too_small_to_hash, "short_side_below": MIN_HASH_SIDE}),
            "outliers": [[str(p), r] for p, r in self.outliers],
            "label_issues": (None if self.label_issues is None
                             else [i.to_dict() for i in self.label_issues]),
        }


def _shrink(img: Image.Image, short_side: int | None) -> Image.Image:
    """Downsize so the short side is `short_side` (never upsizes): bounds the cache's memory."""
    if short_side is None or min(img.size) <= short_side:
        return img
    scale = short_side / min(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def _decode_all(samples: list[Sample], background, keep_short_side, cache: bool,
                prints: bool, draft=None):
    """Decode each file once: (sample, full size or None, cached image or error, fingerprint).
    Without a cache a JPEG decodes at reduced scale (`Image.draft`): hashing needs no more,
    and a truncated file still fails."""
    def one(s: Sample):
        try:
            data = read_image_bytes(s.path)
            # cached images are decoded as the contract decodes (its draft mode, if any)
            img = decode_image(data, background, draft if cache else
                               (DRAFT_SIZE if prints else None))
        except ImageDecodeError as e:
            return s, None, str(e), None
        size = img.info.get("full_size", img.size)
        return (s, size, (_shrink(img, keep_short_side) if cache else None),
                fingerprint(img, data) if prints else None)

    with ThreadPoolExecutor(max_workers=usable_cores()) as pool:
        return list(pool.map(one, samples))


# cheap outlier rules: a model sees little of these. Tiny is relative to the set (a digits
# set of 32-pixel images is not full of outliers); aspect and contrast are absolute.
TINY_FRACTION = 0.25  # short side under a quarter of the set's median short side
MAX_ASPECT = 4.0
MIN_CONTRAST = 2.0  # grey-level standard deviation of the 32x32 thumbnail (0..255)


def _outlier_reason(size: tuple[int, int], fp: Fingerprint | None,
                    median_short: float) -> str | None:
    w, h = size
    if min(w, h) < TINY_FRACTION * median_short:
        return f"tiny ({w}x{h} pixels; the median short side is {median_short:.0f})"
    if max(w, h) / max(min(w, h), 1) > MAX_ASPECT:
        return f"extreme aspect ratio ({w}x{h})"
    if fp is not None and fp.contrast < MIN_CONTRAST:
        return "blank (one flat colour)"
    return None


def audit_dataset(root: str | Path, *, background: tuple[int, int, int] = WHITE,
                  cache_short_side: int | None = None, cache: bool = False,
                  min_classes: int = MIN_CLASSES, duplicates: bool = False,
                  draft=None) -> DatasetAudit:
    """Decode every image under `root` once and report what is usable.

    Args:
        root: class-folder dataset, optionally with train/ and val/ splits.
        background: RGB colour transparent pixels are composited onto.
        cache_short_side: when caching, shrink images to this short side.
        cache: keep the decoded images in `DatasetAudit.images` for training.
        min_classes: 2 to train a classifier; 1 to evaluate one on a subset of its classes.
        duplicates: also find identical files and near-duplicate pictures within and
            across splits (a perceptual hash from the same decode), and blank images.
        draft: the contract's JPEG draft request (deploy/templates/preprocess.draft_request): cached
            images are decoded as the device decodes them.
    Raises:
        DatasetError: a class has no usable training image.
    """
    layout: DatasetLayout = discover_dataset(root, min_classes)
    unusable = list(layout.ignored)
    sizes: list[tuple[int, int]] = []
    images: dict[Path, Image.Image] = {}
    kept: dict[str, list[Sample]] = {}
    outliers: list[tuple[Path, str]] = []
    items: list[tuple[Path, str, str]] = []
    prints: list[Fingerprint] = []
    shapes: list[tuple[Path, tuple[int, int], Fingerprint]] = []
    for split, samples in (("train", layout.train), ("val", layout.val), ("test", layout.test)):
        if samples is None:
            continue
        keep = cache and split != "test"  # test images are never trained on
        kept[split] = []
        for s, size, extra, fp in _decode_all(samples, background, cache_short_side, keep,
                                              duplicates, draft):
            if size is None:
                unusable.append((s.path, extra))
                continue
            kept[split].append(s)
            sizes.append(size)
            if keep:
                images[s.path] = extra
            if fp is not None:
                shapes.append((s.path, size, fp))
                items.append((s.path, split, layout.classes[s.label]))
                prints.append(fp)
    if shapes:
        median_short = float(np.median([min(size) for _, size, _ in shapes]))
        for path, size, fp in shapes:
            why = _outlier_reason(size, fp, median_short)
            if why:
                outliers.append((path, why))
    audit = DatasetAudit(layout.root, layout.classes, kept["train"], kept.get("val"),
                         sorted(unusable, key=lambda x: str(x[0])), sizes, images,
                         kept.get("test"), find_duplicates(items, prints) if duplicates else None,
                         outliers, too_small_to_hash=sum(not p.hashable for p in prints))
    empty = [c for c, n in zip(audit.classes, audit.counts("train")) if n == 0]
    if empty:
        where = layout.root / "train" if layout.val is not None else layout.root
        raise DatasetError(
            f"class folder(s) with no usable image: {', '.join(empty)}"
            + (f" ({len(unusable)} unusable file(s) found; run `ftedge data check {root}`)"
               if unusable else ""),
            f"add images to {where}/<class>/ or remove the empty folder(s)",
        )
    return audit
