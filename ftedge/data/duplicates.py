"""Exact and near-duplicate images: a perceptual hash per image, compared as a bit matrix.

Each image gets a 64-bit pHash (DCT of a 32x32 grey thumbnail, low 8x8 coefficients against
their median, as in the `imagehash` package) of the whole picture, of its mirror image, and
of nine 95% crops (a 3x3 grid of offsets). Two stages keep 10,000 images fast:

1. whole-image hashes of every pair, mirror included, by numpy popcount over row blocks;
   pairs within `CANDIDATE_BITS` go on;
2. the smaller of (any crop of one image vs the other whole) and its mirror: a copy cropped
   by up to ~5% lines up with one of the crops, so its distance drops to what re-encoding
   costs.

Thresholds, measured on flowers17 (1,360 photos) and 200 planted copies of each kind
(benchmarks/audit_quality.py): whole-image distance of a 5% crop reaches 16 bits (so stage 1
keeps <= 18); after alignment crops reach 6 bits (199/200; one at 8), re-encodes 2, 50%
resizes 4, mirror copies 4, while distinct flowers17 photos start at 8 bits (6 of the 8 pairs
at 8 are different photos) -- so `MATCH_BITS` is 6.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

THUMB = 32  # pHash thumbnail side
# (left, top, right, bottom) as fractions: the whole image, then 95% crops on a 3x3 grid
_OFFSETS = (0.0, 0.025, 0.05)
CROPS = ((0.0, 0.0, 1.0, 1.0),) + tuple((x, y, x + 0.95, y + 0.95)
                                         for x in _OFFSETS for y in _OFFSETS)
CANDIDATE_BITS = 18  # stage 1: whole-image distance (5% crops measured up to 16)
MATCH_BITS = 6  # stage 2: aligned distance (distinct photos measured from 8)
DRAFT_SIZE = (2 * THUMB, 2 * THUMB)  # JPEGs decode at reduced scale, no smaller than this
# Near-duplicates are only looked for between images whose short side is at least this: below
# the hash's own thumbnail the 64 bits describe the whole image at about its own resolution, so
# two look-alikes cannot be told from a copy. sklearn's 8x8 digits (the demo) gave 1,607 pairs,
# 177 of tune's 359 val images "near copies" of train; now 0 (no two files are identical).
# Photos are not what it is for: 400 flowers12 photos shrunk to 8-64 px gave no pair of
# distinct photos at any size (tiny digits pair up because one digit's strokes look alike at
# 8x8). Identical files are still found at any size.
MIN_HASH_SIDE = THUMB

_DCT = np.cos(np.pi * (2 * np.arange(THUMB) + 1)[None, :] * np.arange(8)[:, None] / (2 * THUMB))
_BITS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


@dataclass(frozen=True)
class Fingerprint:
    """What the duplicate search keeps of one image."""

    digest: str  # blake2b of the file's bytes: identical files
    hashes: np.ndarray  # (len(CROPS),) uint64: pHash of the whole image, then each crop
    mirrored: np.ndarray  # (len(CROPS),) uint64: the same of the mirror image
    contrast: float  # standard deviation of the grey thumbnail: ~0 for a blank image
    side: int | None = None  # the source's short side in pixels (None: unknown, hashed)

    @property
    def hashable(self) -> bool:
        """Large enough for the near-duplicate search (see MIN_HASH_SIDE)."""
        return self.side is None or self.side >= MIN_HASH_SIDE


def file_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _phash(thumbs: np.ndarray) -> np.ndarray:
    """(k, THUMB, THUMB) float -> (k,) uint64 pHashes."""
    coeffs = (_DCT @ thumbs @ _DCT.T).reshape(len(thumbs), 64)
    bits = coeffs > np.median(coeffs, axis=1, keepdims=True)
    return (bits.astype(np.uint64) * _BITS).sum(axis=1, dtype=np.uint64)


def fingerprint(img: Image.Image, data: bytes) -> Fingerprint:
    """Hash an RGB image (any size; a drafted JPEG is fine: its `info["full_size"]` is the
    source's size) decoded from `data`."""
    side = min(img.info.get("full_size", img.size))
    grey = img.convert("L")
    if min(grey.size) > 4 * THUMB:  # one cheap reduction, then the ten small resizes
        grey = grey.reduce(max(1, min(grey.size) // (2 * THUMB)))
    w, h = grey.size
    thumbs = np.stack([np.asarray(grey.resize((THUMB, THUMB), Image.Resampling.BOX,
                                              box=(l * w, t * h, r * w, b * h)), np.float32)
                       for l, t, r, b in CROPS])
    return Fingerprint(file_digest(data), _phash(thumbs), _phash(thumbs[:, :, ::-1]),
                       float(thumbs[0].std()), int(side))


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def _candidates(whole: np.ndarray, mirrored: np.ndarray, limit: int,
                block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j whose whole-image hashes (one side mirrored or not) are within
    `limit` bits; numpy over row blocks, so 10,000 images are 10^8 popcounts, not a loop."""
    n = len(whole)
    rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start in range(0, n, block):
        a = whole[start:start + block, None]
        rest = whole[None, start:]
        d = np.minimum(_popcount(a ^ rest), _popcount(a ^ mirrored[None, start:]))
        i, j = np.nonzero(d <= limit)
        keep = j > i  # upper triangle: j counts from `start`, i from the block's first row
        rows.append(i[keep] + start)
        cols.append(j[keep] + start)
    return np.concatenate(rows), np.concatenate(cols)


def aligned_distance(a: Fingerprint, b: Fingerprint) -> tuple[int, bool]:
    """Fewest differing bits between one image whole and any crop of the other, either way
    round, mirror included; and whether the mirror matched better."""
    d, flipped = _aligned(a.hashes[None], a.mirrored[None], b.hashes[None], b.mirrored[None])
    return int(d[0]), bool(flipped[0])


def _aligned(ha, ma, hb, mb):
    """Vectorised `aligned_distance` over pairs: each argument (pairs, len(CROPS))."""
    straight = np.minimum(_popcount(ha ^ hb[:, :1]).min(1), _popcount(hb ^ ha[:, :1]).min(1))
    mirror = np.minimum(_popcount(ma ^ hb[:, :1]).min(1), _popcount(mb ^ ha[:, :1]).min(1))
    return np.minimum(straight, mirror), mirror < straight


def near_pairs(prints: list[Fingerprint], *, candidate_bits: int | None = None,
               match_bits: int | None = None) -> list[tuple[int, int, int, bool]]:
    """(i, j, bits, mirrored) for every pair of identical files or near-duplicate images
    (near-duplicates only between images of at least MIN_HASH_SIDE pixels)."""
    if len(prints) < 2:
        return []
    cand = CANDIDATE_BITS if candidate_bits is None else candidate_bits
    match = MATCH_BITS if match_bits is None else match_bits
    hashes = np.stack([p.hashes for p in prints])
    mirrored = np.stack([p.mirrored for p in prints])
    idx = np.flatnonzero([p.hashable for p in prints])  # ascending: i < j stays true
    i, j = (idx[k] for k in _candidates(hashes[idx, 0], mirrored[idx, 0], cand))
    d, flip = _aligned(hashes[i], mirrored[i], hashes[j], mirrored[j])
    keep = d <= match
    found = {(int(a), int(b)): (int(x), bool(f))
             for a, b, x, f in zip(i[keep], j[keep], d[keep], flip[keep])}
    by_digest: dict[str, list[int]] = {}
    for k, p in enumerate(prints):  # identical bytes are duplicates whatever the decode says
        by_digest.setdefault(p.digest, []).append(k)
    for same in by_digest.values():
        for x in range(len(same)):
            for y in range(x + 1, len(same)):
                found.setdefault((same[x], same[y]), (0, False))
    return sorted((a, b, x, f) for (a, b), (x, f) in found.items())


@dataclass(frozen=True)
class DuplicatePair:
    """Two files that show the same picture."""

    a: Path
    b: Path
    split_a: str
    split_b: str
    class_a: str
    class_b: str
    kind: str  # "identical file" | "near-duplicate" (re-encoded, resized, cropped) | "mirrored"
    bits: int  # pHash distance after alignment (0 for identical files)

    @property
    def leak(self) -> bool:
        """The same picture in two splits (train in val or test inflates every score)."""
        return self.split_a != self.split_b

    @property
    def conflict(self) -> bool:
        """The same picture under two classes: at least one label is wrong."""
        return self.class_a != self.class_b

    def to_dict(self) -> dict:
        return {"a": str(self.a), "b": str(self.b), "split_a": self.split_a,
                "split_b": self.split_b, "class_a": self.class_a, "class_b": self.class_b,
                "kind": self.kind, "bits": self.bits, "leak": self.leak,
                "label_conflict": self.conflict}


def find_duplicates(items: list[tuple[Path, str, str]], prints: list[Fingerprint], *,
                    candidate_bits: int | None = None,
                    match_bits: int | None = None) -> list[DuplicatePair]:
    """Pair up duplicates among `items` ((path, split, class) per fingerprint)."""
    pairs = []
    for i, j, bits, flipped in near_pairs(prints, candidate_bits=candidate_bits,
                                          match_bits=match_bits):
        (pa, sa, ca), (pb, sb, cb) = items[i], items[j]
        kind = ("identical file" if prints[i].digest == prints[j].digest
                else "mirrored" if flipped else "near-duplicate")
        pairs.append(DuplicatePair(pa, pb, sa, sb, ca, cb, kind, bits))
    return pairs


def leaked_into(pairs: list[DuplicatePair], train, held_out) -> set[Path]:
    """The files of `held_out` that show a picture also in `train` (paths of the actual
    split, which may be a stratified one cut from a single folder)."""
    train, held_out = {Path(p) for p in train}, {Path(p) for p in held_out}
    out = set()
    for p in pairs:
        for x, y in ((p.a, p.b), (p.b, p.a)):
            if x in held_out and y in train:
                out.add(x)
    return out
