"""The contract's decode mode: full decode against JPEG draft decode (DCT-domain 1/2..1/8),
side by side in one run, for time and for accuracy.

Time: decode + preprocess (the contract's eval path, as every stage and infer.py run it) of
camera-size JPEGs, 1920x1080 and 4032x3024, made by upscaling real photos (Lanczos) and
saving them at quality 90; the two modes alternate round by round, medians reported.

Accuracy: the run's INT8 graph in ONNX Runtime on its val split at camera size (each val photo
upscaled to 4032x3024 or 1920x1080 and re-encoded), decoded full vs draft. The real sets here
are ~500 px photos, where the draft (which keeps 2x the resize) changes nothing at 224 px, so
the upscaled copies are what make the mode do anything; the model was trained with full
decode on the originals, so this measures what switching the mode costs a trained model.

Usage: python benchmarks/decode_modes.py RUN [--rounds 5] [--images 20] [--sizes 1920x1080,4032x3024]
       [--accuracy-sizes 1920x1080]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ftedge.data.transforms import decode_image, eval_transform, preprocess_samples
from ftedge.formats.run import RunFolder
from ftedge.runtime import infer_batches
from ftedge.runtime.onnxruntime.runner import OrtRunner
from ftedge.runtime.pytorch import load_run


def camera_copies(samples, size: tuple[int, int], out: Path) -> list[Path]:
    """Each photo upscaled to cover `size` (landscape or portrait as the photo), JPEG q90."""
    paths = []
    for i, s in enumerate(samples):
        img = Image.open(s.path).convert("RGB")
        w, h = size if img.width >= img.height else size[::-1]
        path = out / f"{i:04d}.jpg"
        img.resize((w, h), Image.Resampling.LANCZOS).save(path, quality=90)
        paths.append(path)
    return paths


def time_modes(paths: list[Path], contract: dict, rounds: int) -> dict[str, float]:
    """Median ms per image of decode + preprocess, per mode, the modes alternating."""
    per_mode: dict[str, list[float]] = {"full": [], "draft": []}
    for _ in range(rounds):
        for mode in per_mode:
            c = {**contract, "decode": mode}
            transform = eval_transform(c)
            for p in paths:
                t0 = time.perf_counter()
                transform(decode_image(p, c))
                per_mode[mode].append((time.perf_counter() - t0) * 1e3)
    return {m: statistics.median(v) for m, v in per_mode.items()}


def accuracy(run: Path, paths: list[Path], labels: np.ndarray, contract: dict) -> dict:
    from ftedge.data.folder import Sample

    graph = RunFolder(run).int8_onnx("qat")
    runner = OrtRunner(graph if graph.is_file() else RunFolder(run).int8_onnx("ptq"))
    out = {}
    for mode in ("full", "draft"):
        c = {**contract, "decode": mode}
        x = preprocess_samples([Sample(p, int(y)) for p, y in zip(paths, labels)], c)
        out[mode] = infer_batches(runner, x).argmax(1)
    return {"top1_full": float((out["full"] == labels).mean()),
            "top1_draft": float((out["draft"] == labels).mean()),
            "agreement": float((out["full"] == out["draft"]).mean()), "n": len(labels)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--images", type=int, default=20, help="JPEGs per size for the timing")
    ap.add_argument("--sizes", default="1920x1080,4032x3024")
    ap.add_argument("--accuracy-sizes", default="1920x1080",
                    help="sizes whose val copies are scored (comma-separated; '' for none)")
    args = ap.parse_args()
    loaded = load_run(args.run)
    samples = RunFolder(args.run).samples("val", loaded.classes)
    labels = np.array([s.label for s in samples])
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            scored = size in args.accuracy_sizes.split(",")
            paths = camera_copies(samples if scored else samples[:args.images], (w, h),
                                  Path(tmp))
            for geometry in ("crop", "stretch"):
                c = {**loaded.contract, "geometry": geometry}
                ms = time_modes(paths[:args.images], c, args.rounds)
                print(f"{size} {geometry}: decode+preprocess full {ms['full']:.1f} ms, draft "
                      f"{ms['draft']:.1f} ms per image ({ms['full'] / ms['draft']:.2f}x)",
                      flush=True)
            if size in args.accuracy_sizes.split(","):
                acc = accuracy(args.run, paths, labels, loaded.contract)
                print(f"{size} val copies ({acc['n']}): INT8 top-1 full {acc['top1_full']:.4f}, "
                      f"draft {acc['top1_draft']:.4f} "
                      f"({100 * (acc['top1_draft'] - acc['top1_full']):+.2f} points), "
                      f"top-1 agreement {acc['agreement']:.4f}", flush=True)


if __name__ == "__main__":
    main()
