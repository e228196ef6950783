"""End to end on camera-size inputs: what an application waits for, beside the model alone.

bench writes its own test inputs so every report measures the same thing: 1920x1080 and
4032x3024 (12 MP) JPEGs and raw 1920x1080 RGB frames. JPEG decode time depends on how much
the entropy coder has to read, so they are real photos (scikit-learn's two sample photos,
shipped with it) upscaled, with sensor-like grain added until the files are as large as a
camera's (about 2 bits per pixel at quality 90: 0.6 MB at 1080p, 3 MB at 12 MP); a smooth
upscale alone would decode faster than any camera's picture.

Two figures per input kind: the latency of one input at a time (decode + preprocess + infer
at batch 1), and the throughput of the overlapped pipeline (runtime/overlap.py: decode on
threads while the runtime infers batches), each with the model's share of the time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from ftedge.stages.bench.latency import latency_percentiles, time_calls
from ftedge.io import atomic_write_bytes

JPEG_SIZES = ((1920, 1080), (4032, 3024))
FRAME_SIZE = (1920, 1080)
GRAIN_SIGMA = 4.0  # 8-bit levels of luma grain (chroma half): ~2 bits per pixel at quality 90
JPEG_QUALITY = 90
SOURCE = ("scikit-learn's sample photos (china.jpg, flower.jpg) upscaled bicubic, with "
          f"Gaussian grain sigma {GRAIN_SIGMA:g}, JPEG quality {JPEG_QUALITY}")


def camera_pixels(width: int, height: int, index: int) -> np.ndarray:
    """A photo-like HxWx3 uint8 image of camera size: the index picks photo, mirror and grain."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    photo = Image.fromarray(photos[index % len(photos)])
    if (index // len(photos)) % 2:
        photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    base = np.asarray(photo.resize((width, height), Image.Resampling.BICUBIC), np.float32)
    rng = np.random.default_rng(index)
    grain = (rng.normal(0, GRAIN_SIGMA, (height, width, 1))
             + rng.normal(0, GRAIN_SIGMA / 2, (height, width, 3))).astype(np.float32)
    return np.clip(np.rint(base + grain), 0, 255).astype(np.uint8)


def write_camera_inputs(folder: Path, per_size: int = 2) -> dict[str, list]:
    """{"jpeg_1920x1080": [paths], "jpeg_4032x3024": [paths], "frame_1920x1080": [arrays]}."""
    import io

    folder.mkdir(parents=True, exist_ok=True)
    inputs: dict[str, list] = {}
    for w, h in JPEG_SIZES:
        paths = []
        for i in range(per_size):
            path = folder / f"camera_{w}x{h}_{i}.jpg"
            if not path.is_file():
                buf = io.BytesIO()
                Image.fromarray(camera_pixels(w, h, i)).save(buf, "JPEG", quality=JPEG_QUALITY)
                atomic_write_bytes(path, buf.getvalue())
            paths.append(path)
        inputs[f"jpeg_{w}x{h}"] = paths
    w, h = FRAME_SIZE
    inputs[f"frame_{w}x{h}"] = [camera_pixels(w, h, i) for i in range(per_size)]
    return inputs


def _cycle(items: list, n: int) -> list:
    return [items[i % len(items)] for i in range(n)]


def camera_end_to_end(runner, contract: dict, inputs: dict[str, list], *, batch: int,
                      model_images_per_s: float, model_p50_ms_b1: float,
                      images: int = 8, workers: int | None = None) -> dict:
    """Latency (one at a time) and overlapped throughput per input kind, with the model's share.

    Args:
        runner: the artifact's Runner.
        inputs: from write_camera_inputs.
        batch: images per inference in the overlapped pipeline.
        model_images_per_s: the model alone at `batch` (bench's model-only figure).
        model_p50_ms_b1: the model alone, p50 at batch 1.
        images: inputs timed per kind (throughput; latency over half as many, at least 3).
        workers: decode threads (default: one per core).
    """
    from ftedge.data.frames import is_frame
    from ftedge.formats.contract import describe
    from ftedge.runtime.overlap import check_batch_workers, overlapped_infer
    from ftedge.stages.common import native_inputs

    workers = check_batch_workers(batch, workers)
    # a pixel-input artifact is prepared its 8-bit pixels, as the kit does
    prepare, runner = native_inputs(runner, contract)

    rows = []
    for kind, items in inputs.items():
        stream = iter(_cycle(items, 10**6))
        one = latency_percentiles(time_calls(lambda: runner.infer(prepare(next(stream))[None]),
                                             warmup=1, runs=max(3, images // 2)), 1)
        todo = _cycle(items, max(images, 2 * batch))
        for _ in overlapped_infer(runner, todo[:batch], prepare, batch=batch, workers=workers):
            pass  # warm-up: the pool's threads, the runtime at this batch
        t0 = time.perf_counter()
        for _ in overlapped_infer(runner, todo, prepare, batch=batch, workers=workers):
            pass
        per_s = len(todo) / (time.perf_counter() - t0)
        first = items[0]
        h, w = (first.shape[:2] if is_frame(first) else Image.open(first).size[::-1])
        row = {"input": kind, "kind": "frame" if is_frame(first) else "jpeg",
               "width": int(w), "height": int(h),
               "latency_p50_ms": one["p50_ms"], "latency_p90_ms": one["p90_ms"],
               "latency_runs": one["runs"],
               "latency_model_share": model_p50_ms_b1 / one["p50_ms"],
               "images_per_s": per_s, "images": len(todo),
               "throughput_model_share": per_s / model_images_per_s}
        if not is_frame(first):
            row["file_kb_mean"] = float(np.mean([Path(p).stat().st_size for p in items]) / 1024)
        rows.append(row)
    return {"batch": batch, "workers": workers, "source": SOURCE,
            "contract": describe(contract),  # a draft decode or reducing gap: why it is fast
            "model_only": {"batch": batch, "images_per_s": model_images_per_s,
                           "p50_ms_b1": model_p50_ms_b1},
            "inputs": rows}
