"""A real-photo class-folder set at camera size, for the decode-mode training runs (issue 22
item 4): every photo upscaled (Lanczos) to a short side of 1080 px, aspect kept, saved as
JPEG quality 90 under the same class folders and names. The real sets here are ~500 px photos,
where a draft decode changes nothing at 224 px; at camera size it decodes at 1/2 scale (1/4 with
--draft-margin 1).

Usage: python benchmarks/camera_set.py SRC_DIR OUT_DIR [--short 1080] [--workers 2]
Then, side by side (same seed, same split, only the decode mode differs):
    ftedge tune --data OUT_DIR --val-fraction 0.5 --out runs/cam-full
    ftedge tune --data OUT_DIR --val-fraction 0.5 --decode draft --reducing-gap 1 --out runs/cam-fast
    ftedge tune --data OUT_DIR --val-fraction 0.5 --decode draft --reducing-gap 1 \
        --draft-margin 1 --out runs/cam-fast1
then python benchmarks/decode_ab.py runs/cam-full runs/cam-fast runs/cam-fast1.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from ftedge.data.images import IMAGE_EXTENSIONS
from ftedge.io import atomic_write_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--short", type=int, default=1080)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    files = sorted(p for p in a.src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)

    def one(path: Path) -> None:
        import io

        out = (a.out / path.relative_to(a.src)).with_suffix(".jpg")
        if out.exists():
            return
        img = Image.open(path).convert("RGB")
        s = a.short / min(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, buf.getvalue())

    with ThreadPoolExecutor(a.workers) as pool:
        list(pool.map(one, files))
    print(f"{len(files)} photos at a short side of {a.short} px in {a.out}")


if __name__ == "__main__":
    main()
