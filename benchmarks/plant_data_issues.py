"""Copy a real class-folder set and plant known data issues in it, for audit_quality.py.

    python benchmarks/plant_data_issues.py /work/data/real/flowers17 /tmp/f17-planted

Planted (each copy in the SAME class as its source, under a random name, so nothing but the
pixels gives it away):
  * duplicates, `--per-kind` of each kind: an exact byte copy, a JPEG re-encode (quality 70),
    a 50% resize (each side halved), a 5% crop (95% of width and height kept at a random
    offset), a horizontal flip; the copy lands in a split chosen in turn from
    train->val, train->test, val->test, train->train (so most copies leak across splits);
  * label errors: `--label-fraction` of the original images (none used as a duplicate
    source) moved to another class folder of the same split, the class drawn at random.
The source's val/ is halved into val/ and test/ (per class) so three splits exist.
The truth goes to OUT.truth.json beside the copy: {duplicates: [{kind, a, b}],
label_errors: [{path, true_class, given_class}], ...}, paths relative to OUT.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
from pathlib import Path

from PIL import Image, ImageOps

KINDS = ("exact", "jpeg", "resize", "crop", "flip")
ROUTES = (("train", "val"), ("train", "test"), ("val", "test"), ("train", "train"))


def _save_jpeg(img: Image.Image, path: Path, quality: int = 90) -> None:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    path.write_bytes(buf.getvalue())


def _plant_copy(kind: str, src: Path, dst: Path, rng: random.Random) -> None:
    if kind == "exact":
        shutil.copyfile(src, dst)
        return
    img = ImageOps.exif_transpose(Image.open(src)).convert("RGB")
    w, h = img.size
    if kind == "jpeg":
        _save_jpeg(img, dst, quality=70)
    elif kind == "resize":
        _save_jpeg(img.resize((w // 2, h // 2), Image.Resampling.LANCZOS), dst)
    elif kind == "crop":
        cw, ch = round(w * 0.95), round(h * 0.95)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        _save_jpeg(img.crop((x, y, x + cw, y + ch)), dst)
    elif kind == "flip":
        _save_jpeg(ImageOps.mirror(img), dst)


def _copy_source(src: Path, out: Path, rng: random.Random) -> None:
    shutil.copytree(src / "train", out / "train")
    for cls in sorted(p for p in (src / "val").iterdir() if p.is_dir()):
        files = sorted(f for f in cls.iterdir() if f.is_file())
        rng.shuffle(files)
        half = len(files) // 2
        for split, part in (("val", files[:half]), ("test", files[half:])):
            (out / split / cls.name).mkdir(parents=True, exist_ok=True)
            for f in part:
                shutil.copyfile(f, out / split / cls.name / f.name)


def plant(src: Path, out: Path, *, per_kind: int, label_fraction: float, seed: int) -> dict:
    rng = random.Random(seed)
    _copy_source(src, out, rng)
    files = {s: sorted(p for p in (out / s).rglob("*") if p.is_file())
             for s in ("train", "val", "test")}
    classes = sorted(p.name for p in (out / "train").iterdir() if p.is_dir())
    originals = [p for s in files for p in files[s]]
    sources_by_split = {s: rng.sample(files[s], len(files[s])) for s in files}
    used: set[Path] = set()
    duplicates = []
    for n in range(per_kind * len(KINDS)):
        kind = KINDS[n % len(KINDS)]
        from_split, to_split = ROUTES[(n // len(KINDS)) % len(ROUTES)]
        src_file = next(p for p in sources_by_split[from_split] if p not in used)
        used.add(src_file)
        cls = src_file.parent.name
        dst = out / to_split / cls / f"{rng.getrandbits(48):012x}{src_file.suffix}"
        _plant_copy(kind, src_file, dst, rng)
        duplicates.append({"kind": kind, "a": str(src_file.relative_to(out)),
                           "b": str(dst.relative_to(out))})
    candidates = [p for p in originals if p not in used]
    flipped = rng.sample(candidates, round(label_fraction * len(originals)))
    label_errors = []
    for f in flipped:
        true = f.parent.name
        given = rng.choice([c for c in classes if c != true])
        dst = f.parent.parent / given / f.name
        if dst.exists():
            dst = dst.with_name(f"{rng.getrandbits(32):08x}_{f.name}")
        f.rename(dst)
        label_errors.append({"path": str(dst.relative_to(out)), "true_class": true,
                             "given_class": given})
    return {"source": str(src), "seed": seed, "per_kind": per_kind,
            "label_fraction": label_fraction, "original_images": len(originals),
            "duplicates": duplicates, "label_errors": label_errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="class-folder set with train/ and val/")
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-kind", type=int, default=20)
    ap.add_argument("--label-fraction", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="replace OUT")
    a = ap.parse_args()
    truth_file = a.out.with_name(a.out.name + ".truth.json")
    if a.out.exists():
        if not a.force:
            raise SystemExit(f"{a.out} exists: pass --force to replace it")
        shutil.rmtree(a.out)
    truth = plant(a.src, a.out, per_kind=a.per_kind, label_fraction=a.label_fraction,
                  seed=a.seed)
    tmp = truth_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(truth, indent=1))
    tmp.replace(truth_file)
    print(f"{a.out}: {len(truth['duplicates'])} duplicates, {len(truth['label_errors'])} "
          f"label errors planted in {truth['original_images']} images; truth in {truth_file}")


if __name__ == "__main__":
    main()
