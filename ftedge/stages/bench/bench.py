"""`ftedge bench`: accuracy, latency, memory and energy of each artifact, through its Runner."""

from __future__ import annotations

import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftedge.io import memoised_reads
from ftedge.confidence import evaluation_report
from ftedge.stages.bench import system
from ftedge.stages.bench.accuracy import artifact_accuracy, device_pipeline_accuracy
from ftedge.stages.bench.latency import latency_percentiles, time_calls, timer_overhead_us
from ftedge.data.transforms import split_arrays
from ftedge.config import BENCH_WARMUP, MAX_DROP, check_threads, require_finite
from ftedge.errors import ConfigError, FtedgeError
from ftedge.formats.artifact import PARITY, read_manifest_dict, stale_reason
from ftedge.formats.run import BEST
from ftedge.runtime import LoadedModel, infer_batches


@dataclass(frozen=True)
class BenchOptions:
    batches: tuple[int, ...] = (1, 8, 32)
    warmup: int = BENCH_WARMUP
    runs: int | None = None  # None with seconds None: 100 runs
    seconds: float | None = None
    threads: int | None = None
    max_drop: float = MAX_DROP
    e2e_images: int = 50  # images decoded + preprocessed + inferred one by one
    camera_images: int = 8  # camera-size inputs timed per kind (bench/camera.py); 0: none
    e2e_batch: int = 8  # images per inference in the overlapped camera-size pipeline
    workers: int | None = None  # decode threads there (default: one per core)

    def __post_init__(self) -> None:
        """Refuse what would measure nothing or something else than asked."""
        require_finite("--max-drop", self.max_drop)
        check_threads(self.threads)
        if self.seconds is not None and not require_finite("--time", self.seconds) > 0:
            raise ConfigError(f"--time must be > 0 seconds, got {self.seconds!r}",
                              "give the seconds of timed runs per batch size, e.g. --time 5")
        if self.runs is not None and self.runs < 1:
            raise ConfigError(f"--runs must be >= 1, got {self.runs}",
                              "give the timed runs per batch size, e.g. --runs 100")
        if self.camera_images < 0:
            raise ConfigError(f"--camera-images must be >= 0, got {self.camera_images}",
                              "give the camera-size inputs timed per kind, e.g. 8 (0: none)")
        if self.e2e_batch < 1 or (self.workers is not None and self.workers < 1):
            raise ConfigError(f"e2e_batch and workers must be >= 1, got {self.e2e_batch} and "
                              f"{self.workers}", "leave them out for the defaults")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be >= 0, got {self.warmup}",
                              "give the untimed calls before timing, e.g. --warmup 10 (0: none)")


@dataclass
class ValSet:
    samples: list
    x: np.ndarray
    labels: np.ndarray
    classes: list[str]
    reference_logits: np.ndarray | None
    source: str


def _folder_size_mb(folder: Path, manifest: dict) -> float:
    # the model as the runtime loads it: not the report, nor deploy/'s copies for Triton
    names = [f for f in manifest.get("files", {})
             if f != PARITY and not f.startswith("deploy/")]
    names += [f for f in ("model.engine",) if (folder / f).is_file()]
    return sum((folder / f).stat().st_size for f in set(names) if (folder / f).is_file()) / 2**20


def load_valset(manifest: dict, data: str | Path | None, cache: dict) -> ValSet:
    """The images to judge on (the run's val split or --data), with the FP32 reference logits."""
    from ftedge.stages.common import eval_samples
    from ftedge.runtime.pytorch.runner import load_run

    run = Path(manifest["source"]["run"])
    key = (str(run), str(data), manifest["preprocessing"]["input_size"][-1])
    if key in cache:
        return cache[key]
    reference = load_run(run) if (run / BEST).is_file() else None
    if reference is None and data is None:
        raise FtedgeError(f"the artifact's source run {run} is not here and no --data was given",
                          "pass --data DIR (class folders) to bench on")
    # the artifact's classes and contract are enough to read --data without the run
    holder = reference or LoadedModel(Path("."), list(manifest["classes"]),
                                      manifest["preprocessing"], None, Path("."), "", "artifact")
    samples = eval_samples(holder, data)
    x, labels = split_arrays(samples, manifest["preprocessing"])
    ref = None
    if reference is not None:
        ref = infer_batches(reference.runner, x)
    cache[key] = ValSet(samples, x, labels, list(manifest["classes"]), ref,
                        "run val split" if data is None else str(data))
    return cache[key]


def _latency(runner, shape, batches, opts) -> list[dict]:
    """Per batch size: warm-up, then the timed calls inside one energy probe (warm-up outside)."""
    rows = []
    rng = np.random.default_rng(0)
    for b in batches:
        x = rng.standard_normal((b, *shape)).astype(np.float32)
        for _ in range(opts.warmup):
            runner.infer(x)
        with system.EnergyProbe() as probe:
            times = time_calls(lambda x=x: runner.infer(x), warmup=0, runs=opts.runs,
                               seconds=opts.seconds)
        row = latency_percentiles(times, b)
        row["energy"] = probe.result(len(times) * b)
        rows.append(row)
    return rows


def _end_to_end(runner, val: ValSet, contract: dict, opts) -> dict:
    """Decode + preprocess + infer, one image at a time: what an application waits for."""
    from ftedge.data.transforms import preprocess_image

    files = [s.path for s in val.samples[: opts.e2e_images]]

    order = iter(range(10**9))

    def one():
        runner.infer(preprocess_image(files[next(order) % len(files)], contract))

    times = time_calls(one, warmup=min(5, len(files)), runs=max(len(files), 20))
    return latency_percentiles(times, 1)


def _camera(runner, manifest: dict, shape: tuple, latency: list[dict], cache: dict,
            opts: BenchOptions) -> dict:
    """Camera-size inputs end to end (bench/camera.py), beside the model alone at its batch."""
    from ftedge.stages.bench.camera import camera_end_to_end, write_camera_inputs

    if "camera" not in cache:
        if "tmp" not in cache:  # called alone: a folder removed with the cache
            cache["tmp_dir"] = tempfile.TemporaryDirectory(prefix="ftedge-bench-")
            cache["tmp"] = cache["tmp_dir"].name
        cache["camera"] = write_camera_inputs(Path(cache["tmp"]) / "camera")
    fixed = manifest["input_shape"][0]
    batch = opts.e2e_batch if fixed == "dynamic" else int(fixed)
    rows = {r["batch"]: r for r in latency}
    model = rows.get(batch) or _latency(runner, shape, (batch,), opts)[0]
    b1 = rows.get(1) or _latency(runner, shape, (1,), opts)[0]
    return camera_end_to_end(runner, manifest["preprocessing"], cache["camera"], batch=batch,
                             model_images_per_s=model["images_per_s"],
                             model_p50_ms_b1=b1["p50_ms"], images=opts.camera_images,
                             workers=opts.workers)


def bench_artifact(folder: Path, val_cache: dict, data, *, opts: BenchOptions) -> dict:
    """One artifact: load, first inference, accuracy, latency per batch, end to end, memory."""
    from ftedge.runtime.artifact import host_note, load_artifact

    folder = Path(folder)
    row = {"artifact": str(folder), "target": folder.name, "runtime": "?", "precision": "?"}
    try:
        manifest = read_manifest_dict(folder)
        row.update(target=manifest["target"], runtime=manifest["runtime"],
                   precision=manifest["precision"], device=manifest["device"],
                   size_mb=_folder_size_mb(folder, manifest), versions=manifest["versions"],
                   input_shape=manifest["input_shape"],
                   float_layers=manifest["float_layers"])
        val = load_valset(manifest, data, val_cache)
        peak_is_per_artifact = system.reset_peak_rss()
        rss0, gpu_free0 = system.rss_mb(), _gpu_free_mb()
        t0 = time.perf_counter()
        with load_artifact(folder, opts.threads) as loaded:
            row["load_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            loaded.runner.infer(val.x[:1])
            row["first_inference_ms"] = 1000 * (time.perf_counter() - t0)
            kernels = getattr(loaded.runner, "conv_kernels", None)  # ORT and OpenVINO can tell
            row["conv_kernels"] = kernels() if kernels else None
            logits = infer_batches(loaded.runner, val.x)
            row["accuracy"] = artifact_accuracy(val.reference_logits, logits, val.labels,
                                                classes=val.classes,
                                                max_drop=opts.max_drop)
            row["accuracy"]["images"] = val.source
            stale = stale_reason(folder) if val.reference_logits is not None else None
            if stale:  # the reference is the run as it is now: the drop is the two models' gap
                row["stale"] = stale
                row["accuracy"]["note"] = (
                    f"the FP32 reference is the run as it is now, not what this artifact was "
                    f"exported from ({stale}): export it again for a fair gate: ftedge export "
                    f"{manifest['source'].get('run')} --target {manifest['target']} --precision "
                    f"{manifest['precision']} --force")
            # the artifact's own T from its manifest; on the run's val split (no --data) that is
            # the fit's own images, so the manifest's cross-fitted numbers are the held-out ones
            row["calibration"] = evaluation_report(logits, val.labels, manifest.get("calibration"),
                                                   in_sample=data is None)
            row["calibration"]["images"] = val.source
            emulated = device_pipeline_accuracy(loaded.runner, val.samples, val.labels,
                                                manifest=manifest,
                                                exact_logits=logits)
            if emulated:
                row["accuracy"]["device_pipeline"] = emulated
            fixed = manifest["input_shape"][0]
            batches = opts.batches if fixed == "dynamic" else tuple(
                b for b in opts.batches if b % int(fixed) == 0) or (int(fixed),)
            shape = tuple(manifest["preprocessing"]["input_size"])  # runners take the contract's
            row["latency"] = _latency(loaded.runner, shape, batches, opts)
            row["energy"] = row["latency"][0]["energy"]  # at the smallest batch, as p50/p99
            row["end_to_end"] = _end_to_end(loaded.runner, val, manifest["preprocessing"], opts)
            if opts.camera_images:
                row["end_to_end_camera"] = _camera(loaded.runner, manifest, shape, row["latency"],
                                                   val_cache, opts)
            gpu_free1 = _gpu_free_mb()
            row["memory"] = {"rss_before_load_mb": rss0, "peak_rss_mb": system.peak_rss_mb(),
                             "peak_rss_scope": "this artifact" if peak_is_per_artifact else
                             "the whole bench process (the peak mark could not be reset)",
                             "gpu_used_mb": None if gpu_free0 is None else gpu_free0 - gpu_free1}
            passed = row["accuracy"]["passed"]
            row["status"] = "ok" if passed in (True, None) else "gate_failed"
            note = host_note(manifest["runtime"], manifest.get("extra"))
            if note:
                row["cpu_note"] = note
    except FtedgeError as e:  # one broken artifact must not hide the others: it is reported
        row["status"] = "error"
        row["error"] = e.message + (f" (how to fix: {e.hint})" if e.hint else "")
    except Exception as e:
        row["status"] = "error"
        row["error"] = f"{type(e).__name__}: {e}"
        row["traceback"] = traceback.format_exc(limit=5)
    return row


def _gpu_free_mb() -> float | None:
    """Free device memory (cudaMemGetInfo): what the runtime took, its own allocator included."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.mem_get_info()[0] / 2**20
    except ImportError:
        pass
    return None


@memoised_reads()  # each input hashed and parsed once per command
def bench(artifacts: list[str | Path], *, data: str | Path | None = None,
          opts: BenchOptions = BenchOptions(), progress=None) -> dict:
    """Bench every artifact; returns the report dict (see report.py for its schema)."""
    from ftedge import __version__

    if opts.threads:
        import torch

        torch.set_num_threads(opts.threads)
    _gpu_free_mb()  # create the CUDA context (if any) before the first artifact's RSS baseline
    rows = []
    with tempfile.TemporaryDirectory(prefix="ftedge-bench-") as tmp:
        cache: dict = {"tmp": tmp}  # val sets and camera-size inputs, shared by the artifacts
        for folder in artifacts:
            if progress:
                progress(f"benching {folder}")
            rows.append(bench_artifact(Path(folder), cache, data, opts=opts))
    return {"schema": "ftedge-bench/1", "ftedge_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "environment": system.environment(opts.threads),
            "timer_overhead_us": timer_overhead_us(),
            "options": {"batches": list(opts.batches), "warmup": opts.warmup, "runs": opts.runs,
                        "seconds": opts.seconds, "threads": opts.threads,
                        "max_drop": opts.max_drop, "e2e_images": opts.e2e_images,
                        "camera_images": opts.camera_images, "e2e_batch": opts.e2e_batch,
                        "workers": opts.workers},
            "artifacts": rows}
