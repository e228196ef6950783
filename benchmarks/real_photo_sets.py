#!/usr/bin/env python3
"""Build small real-photo image-classification sets that work fully offline.

The images come from public GitHub repositories that commit the photos
themselves (no download step at run time).  Fetch a repository snapshot with
the search tool's ``fetch`` verb (``fetch github:<owner>/<repo>``); it lands as
a git directory under ``/work/.mirror/<owner>+<repo>/`` (bare ``repo`` or
``repo/.git``).  This script reads the photos straight out of that git
directory (via the ``git`` command) or out of an ordinary checked-out folder,
checks that every file decodes with Pillow, and writes::

    OUT/<set-name>/train/<class>/*.jpg
    OUT/<set-name>/val/<class>/*.jpg
    OUT/<set-name>/MANIFEST.json        (source repo, commit, counts)

Sets (``--set``):

``flowers17``
    Oxford 17 Category Flower Dataset (Nilsback & Zisserman, VGG Oxford),
    1360 photos, 17 species x 80, re-split by the repo owner into
    ``train`` (64/class = 1088) and ``test`` (16/class = 272); the source split
    is kept (``test`` -> ``val``).  Shorter side ~500 px (median 537x500, up to
    ~1100 px).
    Repository: ``995114879/17flowers`` (commit
    876e29c6941fa22981238f99fa5fe704f70e379f), folder
    ``17flowers_traintest/{train,test}/c1..c17``.  Class folders ``cK`` are
    renamed to species names following the dataset's published order
    (images (K-1)*80+1 .. K*80 belong to class K; the script checks this).
    License: the repository has no LICENSE file; the VGG page states none for
    this set (the photos were gathered from the web) -- treat as research use.

``monkeys10``
    "10 Monkey Species" (Kaggle), 10 fine-grained primate species, the source
    ``training`` / ``validation`` split is kept (~110 / ~27 per class, 1097 /
    272 in all).  The repo holds downsized copies: almost all 250x250 px (a
    few up to 580x409); one file is a PNG (re-encoded to JPEG here) and one
    lacks its dot (``n9151jpg``).  Some photos carry stock-photo watermarks.
    Repository:
    ``nikhildutta333/Monkey-Species-Classification`` (commit
    cb62130b182246b59ed74614734320e61eb6aacc), folders
    ``training/n0..n9`` and ``validation/n0..n9``; folder ids are renamed to the
    common names listed in the repo's ``monkey_labels.txt``.  License: the
    repository has no LICENSE file and states none.

``folder``
    Any class-per-folder tree without a split: ``--prefix PATH`` names the
    folder (inside the repo / checkout) whose sub-folders are the classes.  A
    fixed, seeded, stratified split is made (``--val-fraction``, ``--seed``).

Rebuild (paths as the fetch verb returned them)::

    python benchmarks/real_photo_sets.py --set flowers17 \
        --source /work/.mirror/995114879+17flowers/repo --out /work/data/real/
    python benchmarks/real_photo_sets.py --set monkeys10 \
        --source /work/.mirror/nikhildutta333+Monkey-Species-Classification/repo/.git \
        --out /work/data/real/

``--shots K`` keeps only K seeded-random training photos per class (a few-shot
variant, e.g. ``--shots 10``; the set is then written as ``<set>-<K>shot``);
``val`` is left whole; ``--rest-to-val`` adds the training photos left out to ``val``
(written as ``<set>-<K>shot-bigval``: flowers17 with 10 shots gets 1,190 val photos
instead of 272, one image 0.08 points instead of 0.37, the same 170 training photos).

Output is written atomically: everything goes into a temporary folder inside
OUT, which is then renamed onto ``OUT/<set-name>``.  An existing non-empty
``OUT/<set-name>`` is refused unless ``--force``.

Only the standard library, Pillow and numpy are used (plus the ``git``
command when the source is a git directory).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image

# File endings treated as images.  Some sources have odd names (a missing dot,
# ``.png`` among ``.jpg``); anything else is decoded by Pillow, not trusted by
# its name.
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


# --------------------------------------------------------------------------
# Reading files out of a git directory or a checked-out folder
# --------------------------------------------------------------------------


class Source:
    """Read-only view of a repository snapshot: list paths, read bytes."""

    def list_files(self) -> List[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def read_many(self, paths: List[str]) -> Iterator[Tuple[str, bytes]]:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> Dict[str, str]:  # pragma: no cover
        raise NotImplementedError


def _is_git_dir(path: str) -> bool:
    """True for a bare repository or a ``.git`` folder."""
    return os.path.isfile(os.path.join(path, "HEAD")) and os.path.isdir(
        os.path.join(path, "objects")
    )


class GitSource(Source):
    """Files of ``HEAD`` in a (bare) git directory, read with ``git cat-file``."""

    def __init__(self, git_dir: str, rev: str = "HEAD"):
        self.git_dir = git_dir
        self.rev = rev
        self.commit = self._git("rev-parse", rev).strip()
        self._blobs: Dict[str, str] = {}

    def _git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", "--git-dir", self.git_dir, *args],
            check=True,
            capture_output=True,
        )
        return out.stdout.decode("utf-8", "surrogateescape")

    def list_files(self) -> List[str]:
        # -z keeps unusual file names intact (no quoting).
        raw = subprocess.run(
            ["git", "--git-dir", self.git_dir, "ls-tree", "-r", "-z", "--full-tree", self.commit],
            check=True,
            capture_output=True,
        ).stdout
        paths = []
        for entry in raw.split(b"\0"):
            if not entry:
                continue
            meta, name = entry.split(b"\t", 1)
            mode, kind, sha = meta.split()
            if kind != b"blob":
                continue  # submodules etc.
            path = name.decode("utf-8", "surrogateescape")
            self._blobs[path] = sha.decode()
            paths.append(path)
        return paths

    def read_many(self, paths: List[str]) -> Iterator[Tuple[str, bytes]]:
        """Stream blobs through one ``git cat-file --batch`` process."""
        if not self._blobs:
            self.list_files()
        proc = subprocess.Popen(
            ["git", "--git-dir", self.git_dir, "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            for path in paths:
                proc.stdin.write(self._blobs[path].encode() + b"\n")
                proc.stdin.flush()
                header = proc.stdout.readline().split()
                if len(header) < 2 or header[1] == b"missing":
                    # Snapshots leave out files >= 4 MiB: say so, don't crash.
                    yield path, b""
                    continue
                size = int(header[2])
                data = proc.stdout.read(size)
                proc.stdout.read(1)  # trailing newline
                yield path, data
        finally:
            proc.stdin.close()
            proc.wait()

    def describe(self) -> Dict[str, str]:
        return {"kind": "git", "git_dir": os.path.abspath(self.git_dir), "commit": self.commit}


class FolderSource(Source):
    """Files of an ordinary folder (e.g. a checkout or an unpacked archive)."""

    def __init__(self, root: str):
        self.root = root

    def list_files(self) -> List[str]:
        paths = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for fn in filenames:
                full = os.path.join(dirpath, fn)
                paths.append(os.path.relpath(full, self.root).replace(os.sep, "/"))
        return paths

    def read_many(self, paths: List[str]) -> Iterator[Tuple[str, bytes]]:
        for path in paths:
            with open(os.path.join(self.root, path), "rb") as fh:
                yield path, fh.read()

    def describe(self) -> Dict[str, str]:
        return {"kind": "folder", "root": os.path.abspath(self.root)}


def open_source(path: str) -> Source:
    """Pick the reader: a git dir, a checkout with files, or a plain folder.

    A checkout whose work tree is empty (only ``.git``) is read from git.
    """
    if _is_git_dir(path):
        return GitSource(path)
    dot_git = os.path.join(path, ".git")
    if os.path.isdir(dot_git) and _is_git_dir(dot_git):
        has_files = any(name != ".git" for name in os.listdir(path))
        return FolderSource(path) if has_files else GitSource(dot_git)
    if os.path.isdir(path):
        return FolderSource(path)
    raise SystemExit(f"--source {path!r} is neither a git directory nor a folder")


# --------------------------------------------------------------------------
# Set definitions: which paths, which class, which split
# --------------------------------------------------------------------------


@dataclass
class Item:
    path: str  # path inside the source
    cls: str  # class name written to disk
    split: Optional[str]  # "train" / "val", or None when the source has no split


@dataclass
class SetSpec:
    name: str
    repo: str
    commit: str
    license: str
    collect: Callable[[List[str], argparse.Namespace], List[Item]]
    notes: str = ""
    extra: Dict[str, object] = field(default_factory=dict)


def _is_image_name(path: str) -> bool:
    low = path.lower()
    return low.endswith(IMAGE_EXTS) or low.endswith("jpg")  # e.g. "n9151jpg"


# Oxford-17 class order as published by VGG: images (K-1)*80+1..K*80 are class K.
FLOWERS17_NAMES = [
    "daffodil", "snowdrop", "lily_valley", "bluebell", "crocus", "iris",
    "tigerlily", "tulip", "fritillary", "sunflower", "daisy", "colts_foot",
    "dandelion", "cowslip", "buttercup", "windflower", "pansy",
]


def collect_flowers17(paths: List[str], args: argparse.Namespace) -> List[Item]:
    rx = re.compile(r"^17flowers_traintest/(train|test)/c(\d+)/image_(\d+)\.jpg$")
    items = []
    for p in paths:
        m = rx.match(p)
        if not m:
            continue  # the repo also has two unsplit copies; use the split one
        split = "train" if m.group(1) == "train" else "val"
        k, num = int(m.group(2)), int(m.group(3))
        # Sanity check of the folder -> species mapping (80 images a class).
        if not (k - 1) * 80 < num <= k * 80:
            raise SystemExit(f"{p}: image number {num} is outside class c{k}'s range")
        items.append(Item(p, FLOWERS17_NAMES[k - 1], split))
    return items


MONKEY_NAMES = {
    "n0": "mantled_howler", "n1": "patas_monkey", "n2": "bald_uakari",
    "n3": "japanese_macaque", "n4": "pygmy_marmoset",
    "n5": "white_headed_capuchin", "n6": "silvery_marmoset",
    "n7": "common_squirrel_monkey", "n8": "black_headed_night_monkey",
    "n9": "nilgiri_langur",
}


def collect_monkeys10(paths: List[str], args: argparse.Namespace) -> List[Item]:
    rx = re.compile(r"^(training|validation)/(n\d)/([^/]+)$")
    items = []
    for p in paths:
        m = rx.match(p)
        if not m or not _is_image_name(p):
            continue
        split = "train" if m.group(1) == "training" else "val"
        items.append(Item(p, MONKEY_NAMES[m.group(2)], split))
    return items


def collect_folder(paths: List[str], args: argparse.Namespace) -> List[Item]:
    if not args.prefix:
        raise SystemExit("--set folder needs --prefix (the folder whose sub-folders are classes)")
    prefix = args.prefix.strip("/") + "/"
    items = []
    for p in paths:
        if not p.startswith(prefix) or not _is_image_name(p):
            continue
        rest = p[len(prefix):].split("/")
        if len(rest) != 2:
            continue  # only <class>/<file>
        items.append(Item(p, rest[0], None))
    return items


SETS: Dict[str, SetSpec] = {
    "flowers17": SetSpec(
        name="flowers17",
        repo="995114879/17flowers",
        commit="876e29c6941fa22981238f99fa5fe704f70e379f",
        license="no LICENSE file in the repo; Oxford VGG 17-flowers states no license (web photos) - research use",
        collect=collect_flowers17,
        notes="source split kept: train 64/class, test (-> val) 16/class",
    ),
    "monkeys10": SetSpec(
        name="monkeys10",
        repo="nikhildutta333/Monkey-Species-Classification",
        commit="cb62130b182246b59ed74614734320e61eb6aacc",
        license="no LICENSE file in the repo; none stated",
        collect=collect_monkeys10,
        notes="source split kept: training -> train, validation -> val",
    ),
    "folder": SetSpec(
        name="folder",
        repo="(any)",
        commit="(any)",
        license="(see the source)",
        collect=collect_folder,
        notes="seeded stratified split",
    ),
}


# --------------------------------------------------------------------------
# Splitting, decoding, writing
# --------------------------------------------------------------------------


def stratified_split(items: List[Item], val_fraction: float, seed: int) -> List[Item]:
    """Give every unsplit item a split: per class, a fixed seeded shuffle.

    Items are sorted by path first so the result depends only on the file
    list and the seed, not on listing order.  Each class keeps at least one
    training and (if it has >= 2 photos) one validation photo.
    """
    by_cls: Dict[str, List[Item]] = defaultdict(list)
    for it in sorted(items, key=lambda i: i.path):
        by_cls[it.cls].append(it)
    out = []
    for cls in sorted(by_cls):
        group = by_cls[cls]
        rng = random.Random(f"{seed}:{cls}")
        rng.shuffle(group)
        n_val = int(round(len(group) * val_fraction))
        if len(group) >= 2:
            n_val = min(max(n_val, 1), len(group) - 1)
        else:
            n_val = 0
        for i, it in enumerate(group):
            out.append(Item(it.path, it.cls, it.split or ("val" if i < n_val else "train")))
    return out


def few_shot(items: List[Item], shots: int, seed: int, rest_to_val: bool = False
             ) -> List[Item]:
    """Keep ``shots`` seeded-random training items per class; val unchanged, or, with
    ``rest_to_val``, joined by the training items left out (more val images resolve smaller
    accuracy differences; the kept training items are the same either way)."""
    by_cls: Dict[str, List[Item]] = defaultdict(list)
    rest = []
    for it in sorted(items, key=lambda i: i.path):
        (by_cls[it.cls] if it.split == "train" else rest).append(it)
    kept = []
    for cls in sorted(by_cls):
        group = by_cls[cls]
        random.Random(f"{seed}:shots:{cls}").shuffle(group)
        kept.extend(group[:shots])
        if rest_to_val:
            kept.extend(Item(it.path, it.cls, "val") for it in group[shots:])
    return kept + rest


def _safe_name(name: str) -> str:
    """File/class names restricted to a portable alphabet."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"


def decode_check(data: bytes) -> Tuple[Image.Image, str]:
    """Fully decode the bytes (not just the header); return image and format."""
    im = Image.open(io.BytesIO(data))
    fmt = im.format or "?"
    im.load()
    return im, fmt


def write_set(spec: SetSpec, src: Source, items: List[Item], final_dir: str,
              source_info: Dict[str, str], args: argparse.Namespace) -> Dict[str, object]:
    out_root = os.path.dirname(final_dir.rstrip(os.sep)) or "."
    os.makedirs(out_root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(final_dir)}-", dir=out_root)
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the set is meant to be shared
    counts: Dict[str, Dict[str, int]] = defaultdict(lambda: {"train": 0, "val": 0})
    sizes: List[Tuple[int, int]] = []
    modes: Dict[str, int] = defaultdict(int)
    skipped: List[str] = []
    reencoded = 0
    by_path = {it.path: it for it in items}
    used_names: Dict[str, int] = defaultdict(int)
    try:
        for n, (path, data) in enumerate(src.read_many([it.path for it in items]), 1):
            it = by_path[path]
            if not data:
                skipped.append(f"{path} (missing from snapshot)")
                continue
            try:
                im, fmt = decode_check(data)
            except Exception as exc:  # noqa: BLE001 - report and go on
                skipped.append(f"{path} ({type(exc).__name__}: {exc})")
                continue
            sizes.append(im.size)
            modes[im.mode] += 1
            cls_dir = os.path.join(tmp, it.split, _safe_name(it.cls))
            os.makedirs(cls_dir, exist_ok=True)
            stem = _safe_name(os.path.splitext(os.path.basename(path))[0])
            # Two sources files could map to one name (e.g. "a.jpg", "a.png").
            key = f"{it.split}/{it.cls}/{stem}"
            used_names[key] += 1
            if used_names[key] > 1:
                stem = f"{stem}_{used_names[key]}"
            dst = os.path.join(cls_dir, stem + ".jpg")
            if fmt == "JPEG":
                with open(dst, "wb") as fh:  # keep the original JPEG bytes
                    fh.write(data)
            else:  # PNG etc.: re-encode so everything really is a .jpg
                im.convert("RGB").save(dst, "JPEG", quality=95)
                reencoded += 1
            counts[it.cls][it.split] += 1
            if n % 500 == 0:
                print(f"  ... {n}/{len(items)}", file=sys.stderr)
        arr = np.array(sizes) if sizes else np.zeros((0, 2))
        manifest = OrderedDict(
            set=os.path.basename(final_dir),
            repo=spec.repo,
            expected_commit=spec.commit,
            source=source_info,
            license=spec.license,
            notes=spec.notes,
            seed=args.seed,
            val_fraction=args.val_fraction,
            shots=args.shots,
            rest_to_val=args.rest_to_val,
            counts={c: counts[c] for c in sorted(counts)},
            total={"train": sum(v["train"] for v in counts.values()),
                   "val": sum(v["val"] for v in counts.values())},
            image_size_median_wh=[int(x) for x in np.median(arr, axis=0)] if len(arr) else None,
            image_size_min_wh=[int(x) for x in arr.min(axis=0)] if len(arr) else None,
            image_size_max_wh=[int(x) for x in arr.max(axis=0)] if len(arr) else None,
            modes=dict(modes),
            reencoded_to_jpeg=reencoded,
            skipped=skipped,
        )
        with open(os.path.join(tmp, "MANIFEST.json"), "w") as fh:
            json.dump(manifest, fh, indent=2)
        # Atomic swap: an old tree is first moved aside, then the new one is
        # renamed into place, then the old one is deleted.
        old = None
        if os.path.exists(final_dir):
            old = tempfile.mkdtemp(prefix=f".old-{os.path.basename(final_dir)}-", dir=out_root)
            os.replace(final_dir, os.path.join(old, "x"))
        os.replace(tmp, final_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def print_counts(manifest: Dict[str, object]) -> None:
    counts = manifest["counts"]  # type: ignore[index]
    width = max([len(c) for c in counts] + [5])
    print(f"\n{manifest['set']}  (repo {manifest['repo']}, commit {manifest['source'].get('commit', '-')})")  # type: ignore[union-attr]
    print(f"{'class':<{width}}  train    val")
    for cls, v in counts.items():  # type: ignore[union-attr]
        print(f"{cls:<{width}}  {v['train']:5d}  {v['val']:5d}")
    tot = manifest["total"]  # type: ignore[index]
    print(f"{'TOTAL':<{width}}  {tot['train']:5d}  {tot['val']:5d}   ({len(counts)} classes)")  # type: ignore[index]
    print(f"image size (w x h): median {manifest['image_size_median_wh']}, "
          f"min {manifest['image_size_min_wh']}, max {manifest['image_size_max_wh']}; "
          f"modes {manifest['modes']}; re-encoded {manifest['reencoded_to_jpeg']}")
    if manifest["skipped"]:
        print(f"skipped {len(manifest['skipped'])}:")  # type: ignore[arg-type]
        for s in manifest["skipped"]:  # type: ignore[union-attr]
            print("  ", s)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True, choices=sorted(SETS))
    ap.add_argument("--source", required=True,
                    help="fetched git dir (…/repo or …/repo/.git) or a checked-out folder")
    ap.add_argument("--out", required=True, help="output root; the set goes to OUT/<set-name>")
    ap.add_argument("--name", help="output set name (default: the --set name, plus -<K>shot)")
    ap.add_argument("--prefix", help="for --set folder: folder whose sub-folders are classes")
    ap.add_argument("--val-fraction", type=float, default=0.2,
                    help="validation share for sources without a split (default 0.2)")
    ap.add_argument("--seed", type=int, default=0, help="seed for splits / --shots (default 0)")
    ap.add_argument("--shots", type=int, default=0,
                    help="keep only this many training photos per class (0 = all)")
    ap.add_argument("--rest-to-val", action="store_true",
                    help="with --shots: the training photos left out join val (<set>-<K>shot-bigval)")
    ap.add_argument("--force", action="store_true", help="replace an existing non-empty output")
    args = ap.parse_args(argv)

    spec = SETS[args.set]
    if args.rest_to_val and not args.shots:
        ap.error("--rest-to-val needs --shots K")
    name = args.name or (args.set + (f"-{args.shots}shot" if args.shots else "")
                         + ("-bigval" if args.rest_to_val else ""))
    final_dir = os.path.join(args.out, _safe_name(name))
    if os.path.isdir(final_dir) and os.listdir(final_dir) and not args.force:
        print(f"refusing to overwrite non-empty {final_dir} (use --force)", file=sys.stderr)
        return 2
    if os.path.exists(final_dir) and not os.path.isdir(final_dir):
        print(f"{final_dir} exists and is not a folder", file=sys.stderr)
        return 2

    src = open_source(args.source)
    info = src.describe()
    if spec.commit != "(any)" and info.get("commit") and info["commit"] != spec.commit:
        print(f"note: snapshot commit {info['commit']} differs from the verified "
              f"{spec.commit}; counts may differ", file=sys.stderr)
    items = spec.collect(src.list_files(), args)
    if not items:
        print("no images found: is --source the right repository?", file=sys.stderr)
        return 1
    if any(it.split is None for it in items):
        items = stratified_split(items, args.val_fraction, args.seed)
    if args.shots:
        items = few_shot(items, args.shots, args.seed, args.rest_to_val)
    manifest = write_set(spec, src, items, final_dir, info, args)
    print_counts(manifest)
    print(f"\nwrote {final_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
