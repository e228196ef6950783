"""How well `ftedge data check` finds planted data issues, and what the audit costs.

    python benchmarks/plant_data_issues.py /work/data/real/flowers17 /tmp/f17-planted
    python benchmarks/audit_quality.py /tmp/f17-planted --clean /work/data/real/flowers17 \
        --labels --timing-images 10000

Prints:
  * duplicate recall: planted (source, copy) pairs the audit reports, per kind and overall;
  * false pairs on the clean (unplanted) set: pairs the audit reports there that an
    independent pixel check does not confirm as the same picture, divided by the number of
    images (the check: the best Pearson correlation of 64x64 grey thumbnails over the same
    crop/mirror alignments, >= 0.9; unconfirmed pairs are listed so a person can look);
  * label-error precision at k = the number planted, ranked by the cross-validated
    probability of the given label (`--labels`: needs the frozen Lite0 features);
  * the audit of N images (photos of every /work/data/real set, each cut into distinct
    crops until N) against decoding each of them once with Pillow, side by side, same
    thread count (the audit's own: one per core).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ftedge.data.audit import audit_dataset
from ftedge.data.duplicates import CROPS
from ftedge.data.images import load_image

CONFIRM = 0.9


def _thumbs(path: Path) -> list[np.ndarray]:
    img = ImageOps.exif_transpose(Image.open(path)).convert("L")
    w, h = img.size
    out = []
    for l, t, r, b in CROPS:
        a = np.asarray(img.resize((64, 64), Image.Resampling.BOX,
                                  box=(l * w, t * h, r * w, b * h)), np.float64)
        out.append((a - a.mean()) / (a.std() + 1e-9))
    return out


def same_picture(a: Path, b: Path) -> float:
    """Best correlation of one whole image with any crop (or mirrored crop) of the other."""
    ta, tb = _thumbs(a), _thumbs(b)
    best = -1.0
    for whole, crops in ((ta[0], tb), (tb[0], ta)):
        for c in crops:
            best = max(best, float((whole * c).mean()), float((whole * c[:, ::-1]).mean()))
    return best


def duplicate_quality(planted: Path, truth: dict) -> None:
    t0 = time.perf_counter()
    audit = audit_dataset(planted, duplicates=True)
    seconds = time.perf_counter() - t0
    found = {frozenset((str(p.a.relative_to(planted)), str(p.b.relative_to(planted))))
             for p in audit.duplicates}
    by_kind: dict[str, list[bool]] = {}
    for d in truth["duplicates"]:
        by_kind.setdefault(d["kind"], []).append(frozenset((d["a"], d["b"])) in found)
    hits = sum(sum(v) for v in by_kind.values())
    total = sum(len(v) for v in by_kind.values())
    print(f"planted set {planted} ({seconds:.1f} s): {len(audit.duplicates)} pairs reported")
    for kind, v in by_kind.items():
        print(f"  {kind:7s} recall {sum(v)}/{len(v)}")
    print(f"duplicate recall {hits}/{total} = {hits / total:.3f}")
    leaks = len(audit.leaked("val")) + len(audit.leaked("test"))
    print(f"  val/test images leaking from train: {leaks}")


def false_pairs(clean: Path) -> None:
    audit = audit_dataset(clean, duplicates=True)
    n = len(audit.train) + len(audit.val or []) + len(audit.test or [])
    scores = [(same_picture(p.a, p.b), p) for p in audit.duplicates]
    unconfirmed = [(s, p) for s, p in scores if s < CONFIRM]
    print(f"clean set {clean}: {n} images, {len(audit.duplicates)} pairs reported, "
          f"{len(scores) - len(unconfirmed)} confirmed as one picture (pixel correlation >= "
          f"{CONFIRM}); false pairs {len(unconfirmed)}/{n} = {len(unconfirmed) / n:.4f}")
    for s, p in unconfirmed:
        print(f"  unconfirmed ({s:.2f}, {p.bits} bits): {p.a} ~ {p.b}")
    print(f"  of the reported pairs {sum(p.leak for p in audit.duplicates)} cross splits, "
          f"{sum(p.conflict for p in audit.duplicates)} across classes")


def label_precision(planted: Path, truth: dict, model: str) -> None:
    from ftedge.data.features import frozen_features
    from ftedge.data.labels import cross_val_probabilities, find_label_issues, \
        label_quality_ranking

    audit = audit_dataset(planted)
    samples = audit.train + (audit.val or []) + (audit.test or [])
    t0 = time.perf_counter()
    x = frozen_features(samples, model=model)
    t1 = time.perf_counter()
    y = np.array([s.label for s in samples])
    probs = cross_val_probabilities(x, y)
    t2 = time.perf_counter()
    bad = {e["path"] for e in truth["label_errors"]}
    rel = [str(s.path.relative_to(planted)) for s in samples]
    k = len(bad)
    top = label_quality_ranking(y, probs)[:k]
    precision = np.mean([rel[i] in bad for i in top])
    flagged = find_label_issues([s.path for s in samples], y, probs, classes=audit.classes)
    caught = sum(str(i.path.relative_to(planted)) in bad for i in flagged)
    print(f"label errors ({model} features {t1 - t0:.0f} s, {len(samples)} images; "
          f"cross-validated probe {t2 - t1:.1f} s): precision@{k} {precision:.3f}; "
          f"cleanlab flags {len(flagged)}, {caught} of them planted "
          f"(precision {caught / max(len(flagged), 1):.3f}, recall {caught / k:.3f})")


def build_timing_set(out: Path, n: int, seed: int = 0) -> None:
    """`n` JPEGs: every real photo, then distinct random crops of them until `n`."""
    photos = sorted(p for p in Path("/work/data/real").rglob("*.jpg"))
    rng = random.Random(seed)
    (out / "a").mkdir(parents=True)
    (out / "b").mkdir()
    for i in range(n):
        src = photos[i % len(photos)]
        dst = out / "ab"[i % 2] / f"{i:05d}.jpg"
        if i < len(photos):
            shutil.copyfile(src, dst)
            continue
        img = Image.open(src).convert("RGB")
        w, h = img.size
        s = rng.uniform(0.5, 0.8)
        cw, ch = int(w * s), int(h * s)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img.crop((x, y, x + cw, y + ch)).save(dst, quality=90)


def timing(n: int, work: Path) -> None:
    root = work / f"timing-{n}"
    if not root.exists():
        build_timing_set(root, n)
    files = sorted(root.rglob("*.jpg"))
    threads = max(1, os.cpu_count() or 1)
    rows = []
    for _ in range(2):  # alternate, so neither gets a colder page cache
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda f: load_image(f).size, files))
        t1 = time.perf_counter()
        audit = audit_dataset(root, duplicates=True)
        t2 = time.perf_counter()
        rows.append((t1 - t0, t2 - t1))
    decode, aud = min(r[0] for r in rows), min(r[1] for r in rows)
    print(f"{len(files)} images, {threads} threads: decode once {decode:.1f} s, audit with "
          f"duplicates {aud:.1f} s ({len(audit.duplicates)} pairs): ratio {aud / decode:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("planted", type=Path, help="output of plant_data_issues.py")
    ap.add_argument("--clean", type=Path, help="the unplanted original, for false pairs")
    ap.add_argument("--labels", action="store_true", help="also label-error precision")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--timing-images", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ftedge-audit-quality"))
    a = ap.parse_args()
    truth = json.loads(a.planted.with_name(a.planted.name + ".truth.json").read_text())
    duplicate_quality(a.planted, truth)
    if a.clean:
        false_pairs(a.clean)
    if a.labels:
        label_precision(a.planted, truth, a.model)
    if a.timing_images:
        timing(a.timing_images, a.work)


if __name__ == "__main__":
    main()
