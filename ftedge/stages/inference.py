"""`ftedge eval` and `ftedge predict`: a run or an artifact folder (runtime/artifact.py opens
either) evaluated on images, or classes predicted for them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ftedge.config import EVAL_BATCH, OPSET, TOPK, or_default
from ftedge.confidence import evaluation_report, temperature_of
from ftedge.console import console, literal
from ftedge.data.folder import Sample
from ftedge.data.images import ImageDecodeError
from ftedge.data.transforms import preprocess_samples
from ftedge.errors import ConfigError, DatasetError, RunError
from ftedge.formats.artifact import reexport_command
from ftedge.formats.run import RunFolder
from ftedge.io import memoised_reads
from ftedge.metrics import classification_report, softmax
from ftedge.runtime import FixedBatchRunner, LoadedModel
from ftedge.runtime.artifact import host_note, open_model
from ftedge.stages.common import eval_samples, native_inputs

__all__ = ["evaluate", "open_model", "predict", "warn_host_note"]


def warn_host_note(loaded: LoadedModel) -> str | None:
    """An artifact's caveat for this host (runtime/artifact.py host_note), printed as a warning
    on stderr; None for runs and for artifacts this host computes as exported."""
    if loaded.kind != "artifact":
        return None
    note = host_note(loaded.manifest.runtime, dict(loaded.manifest.extra))
    if note:
        console.print(f"warning: {literal(loaded.path.name)}: {note}", style="yellow",
                      markup=False, highlight=False, soft_wrap=True)
    return note


def confidence_of(loaded: LoadedModel) -> tuple[dict | None, str | None]:
    """The model's recorded temperature: (record, None), or (None, why probabilities use
    T = 1). An artifact's is in its manifest; a run's in confidence.json, for its checkpoint."""
    if loaded.kind == "artifact":
        record = loaded.manifest.calibration
        if record is None:
            return None, (f"{loaded.path.name}'s manifest has no calibration (exported before "
                          "ftedge fitted temperatures, or without val images): probabilities "
                          f"use T = 1 (export it again to fit one)")
        return record, None
    return RunFolder(loaded.path).confidence(loaded.checkpoint)


def warn_uncalibrated(loaded: LoadedModel) -> tuple[float, dict | None]:
    """(T, record) for `loaded`, warning on stderr when there is none (T = 1)."""
    record, why = confidence_of(loaded)
    if why:
        console.print(f"note: {why}", style="yellow", markup=False, highlight=False,
                      soft_wrap=True)
    return temperature_of(record)[0], record


def calibration_line(rep: dict) -> str:
    """eval's calibration numbers in one line."""
    line = (f"calibration: T = {rep['temperature']:.3f}" if rep["calibrated"]
            else "calibration: none recorded (T = 1)")
    line += (f"; ECE {rep['ece_before']:.4f} -> {rep['ece_after']:.4f}, NLL "
             f"{rep['nll_before']:.4f} -> {rep['nll_after']:.4f} on these {rep['n']} images")
    if rep["in_sample"]:
        held = rep["heldout"]
        line += (f" (in-sample: T was fitted on them; cross-fitted held-out ECE "
                 f"{held['ece_before']:.4f} -> {held['ece_after']:.4f})")
    return line


NO_UNKNOWN = {
    "run": "a run folder has no unknown score of its own: `ftedge export` appends one to each "
           "artifact's graph (eval --unknown fits one to the run's FP32 graph to measure it)",
    "artifact": "no unknown score: this artifact was exported without one (before ftedge had "
                "it, or with --unknown-score off); export it again to get one",
}


def unknown_of(loaded: LoadedModel) -> dict | None:
    """The artifact's unknown section (score, output, threshold, ...), or None."""
    return getattr(loaded.manifest, "unknown", None) if loaded.kind == "artifact" else None


def _unknown_images(folder: str | Path) -> list[Sample]:
    from ftedge.data.images import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"--unknown {folder} is not a folder",
                           "pass a folder of images of none of the model's classes")
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DatasetError(f"--unknown {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})",
                           "pass a folder of images of none of the model's classes")
    return [Sample(p, -1) for p in files]


def _scored_runner(loaded: LoadedModel):
    """(runner whose graph has an unknown score, the unknown record, what it is): the
    artifact itself, or for a run its FP32 graph with the default score fitted as export
    fits it and its threshold chosen on val in ONNX Runtime."""
    unk = unknown_of(loaded)
    if loaded.kind == "artifact":
        if unk is None:
            raise RunError(f"{loaded.path}: {NO_UNKNOWN['artifact']}",
                           f"ftedge export {loaded.manifest.source.get('run', 'RUN')} --target "
                           f"{loaded.manifest.target} --precision {loaded.manifest.precision} "
                           "--force")
        return loaded.runner, unk, f"the artifact in {loaded.manifest.runtime}"
    import tempfile

    from ftedge.config import UNKNOWN_SCORE, UNKNOWN_TPR
    from ftedge.runtime.unknown import scored_graph, source_threshold
    from ftedge.formats.run import FP32_ONNX
    from ftedge.runtime.onnxruntime.runner import OrtRunner

    graph = RunFolder(loaded.path).file(FP32_ONNX)
    with tempfile.TemporaryDirectory() as tmp:
        if not graph.is_file():
            from ftedge.quant.onnx_export import export_fp32

            graph = Path(tmp) / FP32_ONNX
            export_fp32(loaded, graph, OPSET)
        scored, facts = scored_graph(loaded, graph, UNKNOWN_SCORE)
    record = {**facts, **source_threshold(loaded, scored, UNKNOWN_TPR)}
    return OrtRunner(scored), record, f"the run's {FP32_ONNX} with {UNKNOWN_SCORE} in ONNX Runtime"


def _scores(runner, samples: list[Sample], contract: dict, batch_size: int):
    from ftedge.runtime import infer_scored

    logits, scores = [], []
    for i in range(0, len(samples), batch_size):
        lo, sc = infer_scored(runner, preprocess_samples(samples[i:i + batch_size], contract))
        logits.append(lo)
        scores.append(sc)
    return np.concatenate(logits), np.concatenate(scores)


def unknown_report(loaded: LoadedModel, samples: list[Sample], unknown_dir: str | Path,
                   *, batch_size: int | None = None) -> tuple[np.ndarray, dict]:
    """The known images' logits, and how the unknown score separates them from the images of
    `unknown_dir`: AUROC, FPR at 95% TPR, the rates at the recorded threshold, and top-1
    against coverage."""
    from ftedge.metrics import accuracy_coverage, ood_rates

    batch_size = or_default(batch_size, EVAL_BATCH)
    others = _unknown_images(unknown_dir)
    runner, unk, what = _scored_runner(loaded)
    logits, known = _scores(runner, samples, loaded.contract, batch_size)
    _, unknown = _scores(runner, others, loaded.contract, batch_size)
    thr = float(unk["threshold"])
    rates = ood_rates(known, unknown, target_tpr=0.95, threshold=thr)
    correct = logits.argmax(1) == np.array([s.label for s in samples])
    return logits, {
        "score": unk.get("score"), "threshold": thr, "measured_on": what,
        "unknown_dir": str(unknown_dir), "n_known": len(samples), "n_unknown": len(others),
        "auroc": rates["auroc"], "fpr95": rates["fpr_at_tpr"],
        "known_accepted": rates["at_threshold"]["tpr"],
        "accepted": rates["at_threshold"]["fpr"],  # unknowns taken for a class
        "accuracy_coverage": accuracy_coverage(known, correct),
    }


def _logits(loaded: LoadedModel, samples: list[Sample], batch_size: int) -> np.ndarray:
    # batch by batch: decoded images of a large test set need not all sit in memory at once
    return np.concatenate([
        loaded.runner.infer(preprocess_samples(samples[i:i + batch_size], loaded.contract))
        for i in range(0, len(samples), batch_size)])


@memoised_reads()  # each input hashed and parsed once per command
def calibrate(run: str | Path) -> dict:
    """Fit the temperature of a run's checkpoint (best.pt, or the .pt file given) on the run's
    val split in PyTorch; writes confidence.json and reliability.png into the run; returns the
    record. Artifacts get theirs at export, from their own logits."""
    with open_model(run) as loaded:
        if loaded.kind == "artifact":
            record = loaded.manifest.calibration
            has = (f"it has its own (T = {record['temperature']:.3f})" if isinstance(record, dict)
                   and isinstance(record.get("temperature"), (int, float)) else "it has none")
            raise RunError(f"{loaded.path} is an artifact: its temperature is fitted at export, "
                           f"on its own val logits, and {has}",
                           f"to calibrate its run: ftedge calibrate "
                           f"{loaded.manifest.source.get('run', 'RUN')}; to fit the artifact's "
                           f"again: {reexport_command(loaded.path, loaded.manifest.to_dict())}")
        folder = RunFolder(loaded.path)
        samples = folder.samples("val", loaded.classes)
        if len(samples) < 2:
            raise DatasetError(f"{loaded.path} has {len(samples)} val image(s): too few to fit and "
                               "cross-fit a temperature", "train with a larger val split")
        return folder.write_confidence(_logits(loaded, samples, EVAL_BATCH),
                                       np.array([s.label for s in samples]), loaded.checkpoint)


@memoised_reads()  # each input hashed and parsed once per command
def evaluate(run: str | Path, data: str | Path | None = None, *, batch_size: int | None = None,
             split: str = "val", unknown: str | Path | None = None) -> dict:
    """Top-1, top-5, per-class precision/recall and confusion matrix of a run or artifact.

    Args:
        run: run folder, checkpoint file, or artifact folder.
        data: class-folder dataset; None uses the run's own recorded `split`.
        split: val (default), test (a held-out test/ folder), or train.
        unknown: a folder of images of none of the classes: the report gets an `unknown`
            section (unknown_report).
    Returns:
        dict with keys n, top1, top5, per_class, confusion_matrix, classes, calibration (ECE
        and NLL without and with the model's recorded temperature), and cpu_note
        when this host computes the artifact differently from where it was exported
        (runtime/artifact.py host_note; also printed as a warning).
    """
    batch_size = or_default(batch_size, EVAL_BATCH)
    with open_model(run) as loaded:
        note = warn_host_note(loaded)
        _, record = warn_uncalibrated(loaded)
        samples = eval_samples(loaded, data, split)
        if not samples:
            raise DatasetError(f"no images to evaluate in the {split} split",
                               "pass --data DIR with images in the model's class folders")
        labels = np.array([s.label for s in samples])
        extra = {"cpu_note": note} if note else {}
        if unknown is not None:
            logits, extra["unknown"] = unknown_report(loaded, samples, unknown,
                                                      batch_size=batch_size)
        else:
            logits = _logits(loaded, samples, batch_size)
        rep = classification_report(logits, labels, loaded.classes)
        # the record's val images are the default split's: scoring them again is in-sample
        in_sample = record is not None and data is None and split == "val"
        rep["calibration"] = evaluation_report(logits, labels, record, in_sample=in_sample)
        return {**rep, **extra}


class _ScoreColumn:
    """The artifact's runner with its unknown score as one more column after the logits, so
    batched prediction (runtime/overlap.py) carries it along with each image's row."""

    def __init__(self, runner, path: Path, unk: dict):
        self.runner, self.path, self.unk = runner, path, unk

    def infer(self, batch: np.ndarray) -> np.ndarray:
        from ftedge.runtime import infer_scored

        logits, score = infer_scored(self.runner, batch)
        if score is None:
            raise RunError(f"{self.path}: the manifest records an unknown score but the "
                           f"model has no {self.unk['output']!r} output",
                           "export the artifact again with --force")
        return np.concatenate([logits, score[:, None].astype(logits.dtype)], axis=1)


def _temperature_noted_once(loaded: LoadedModel) -> float:
    """The model's temperature, read and its notes (the host's caveat, no calibration, no
    unknown score) printed the first time predict uses it only: a stream passes it on every
    frame, which neither re-reads the record nor repeats the notes."""
    if loaded.noted_temperature is not None:
        return loaded.noted_temperature
    warn_host_note(loaded)
    temperature, _ = warn_uncalibrated(loaded)
    if unknown_of(loaded) is None:
        console.print(f"note: {NO_UNKNOWN[loaded.kind]}", style="yellow", markup=False,
                      highlight=False, soft_wrap=True)
    loaded.noted_temperature = temperature
    return temperature


@memoised_reads()  # each input hashed and parsed once per command
def predict(run: str | Path | LoadedModel, images: list, topk: int | None = None, *,
            batch: int | None = None, workers: int | None = None,
            threads: int | None = None) -> list[dict]:
    """Top-k classes with probabilities for each image file or raw frame, in input order.

    Files are decoded and preprocessed on `workers` threads while the model infers the batch
    before (runtime/overlap.py). A frame is an HxWx3 uint8 RGB array (what a camera or video
    decoder hands over): it takes the same preprocessing as a decoded file, so the same pixels
    give the same logits. For a stream, open the model once and pass it on every call
    (`with ftedge.open_model(folder) as m: ftedge.predict(m, [frame])`): opening checks every
    file's sha256 and compiles the graph, which costs far more than one image.

    Args:
        run: run folder, checkpoint file, or artifact folder; or a model ftedge.open_model
            opened (left open; its notes are printed on the first call only).
        images: file paths and/or frames.
        batch: images per inference (default: the artifact's fixed batch, else PREDICT_BATCH).
        workers: decode threads (default: one per core).
        threads: the runtime's CPU threads (default: its own; for an open model, chosen when
            it was opened).
    Returns:
        one dict per input: {"image": path} or {"frame": index}, with "top" [{class, prob}]
        (softmax of the logits over the run's calibrated temperature) and "temperature", or
        "error" (an unreadable file).
    Raises:
        DatasetError: topk < 1, or a frame that is not HxWx3 uint8 (before any work).
        ConfigError: `threads` with a model that is already open.
    """
    from contextlib import nullcontext

    from ftedge.config import PREDICT_BATCH
    from ftedge.data.frames import check_frame, is_frame
    from ftedge.runtime.overlap import check_batch_workers, overlapped_infer

    topk = or_default(topk, TOPK)
    if topk < 1:
        raise DatasetError(f"--topk {topk} must be at least 1")
    held = isinstance(run, LoadedModel)
    if held and run.closed:
        raise RunError(f"{run.path} was opened and closed again (its `with` ended): it cannot "
                       "run any more", "call predict inside the with block, or open it again: "
                       "ftedge.open_model(path)")
    if held and threads is not None:
        raise ConfigError("threads are chosen when the model is opened, not per call",
                          "ftedge.open_model(path, threads=N)")
    images = list(images)
    for i, x in enumerate(images):
        if is_frame(x):
            check_frame(x, f"images[{i}]")
        elif not isinstance(x, (str, os.PathLike)):
            raise DatasetError(f"images[{i}] is a {type(x).__name__}, neither a file path nor "
                               "a frame", "pass file paths or HxWx3 uint8 RGB numpy arrays")
    check_batch_workers(PREDICT_BATCH if batch is None else batch, workers)  # before loading
    with nullcontext(run) if held else open_model(run, threads) as loaded:
        temperature = _temperature_noted_once(loaded)
        unk = unknown_of(loaded)
        # a pixel-input artifact is prepared its 8-bit pixels, as the kit does
        prepare_one, model = native_inputs(loaded.runner, loaded.contract)
        fixed = model.batch if isinstance(model, FixedBatchRunner) else None
        if batch is None:  # a fixed-batch graph pads smaller batches: its own batch is best
            batch = fixed or PREDICT_BATCH

        def prepare(entry):
            return prepare_one(entry[1])

        results = []
        runner = _ScoreColumn(model, loaded.path, unk) if unk else model
        for (i, x), out in overlapped_infer(runner, enumerate(images), prepare, batch=batch,
                                            workers=workers,
                                            item_errors=(ImageDecodeError, OSError)):
            entry: dict = {"frame": i} if is_frame(x) else {"image": str(x)}
            if isinstance(out, BaseException):
                entry["error"] = str(out)
            else:
                logits = out[:-1] if unk else out
                prob = softmax(logits[None], temperature)[0]  # softmax(logits / T)
                order = np.argsort(-prob)[: min(topk, len(prob))]
                entry["temperature"] = temperature
                entry["top"] = [{"class": loaded.classes[i], "prob": round(float(prob[i]), 6)}
                                for i in order]
                thr = float(unk["threshold"]) if unk else None
                entry["unknown"] = ({"score": float(out[-1]), "threshold": thr,
                                     "is_unknown": float(out[-1]) > thr} if unk else None)
            results.append(entry)
        return results

