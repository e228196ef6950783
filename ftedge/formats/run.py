"""The run folder `ftedge tune` writes, and the one place that reads it.

A run folder holds: config.yaml (resolved), classes.json, split.json (image paths relative
to the data root, with the root stored absolute and relative to the run), preprocessing.json
(the contract), dataset_audit.json, metrics, best.pt / last.pt (/ qat_best.pt), and the ONNX
graphs (model.fp32.onnx, model.int8.onnx, model.ptq.int8.onnx) with their gates. While QAT
runs, qat_candidates/ holds the QAT checkpoints that will be scored in ONNX Runtime at its end
(removed then).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import copy
import csv
import io

from ftedge.errors import DatasetError, RunError
from ftedge.formats.checkpoint import check_classes, check_contract, load_checkpoint
from ftedge.io import (atomic_write_json, atomic_write_text, folder_lock, memo_active, memoised,
                       read_json, sha256_file)

CONFIG, CLASSES, SPLIT = "config.yaml", "classes.json", "split.json"
AUDIT, CONTRACT = "dataset_audit.json", "preprocessing.json"
BEST, LAST, QAT_BEST = "best.pt", "last.pt", "qat_best.pt"
QAT_CANDIDATES = "qat_candidates"
FP32_ONNX = "model.fp32.onnx"
INT8_ONNX = {"qat": "model.int8.onnx", "ptq": "model.ptq.int8.onnx"}
GATE = {"qat": "gate", "ptq": "gate_ptq"}  # + .json / .md: each INT8 graph's accuracy gate
CALIBRATION = "calibration_manifest.json"
SUMMARY = "summary.json"  # written last: a run that has it is finished
HEADER = (SPLIT, CONFIG, CLASSES, AUDIT, CONTRACT)  # written before the first epoch, in order
METRICS_CSV, METRICS_JSON = "metrics.csv", "metrics.json"  # one row per finished epoch
VAL_REPORT = "val_report.json"
CURVES, CONFUSION = "training_curves.png", "confusion_matrix.png"
# the temperature record and its diagram: in a run folder for its checkpoint, in an artifact
# folder beside parity.json for the artifact
CONFIDENCE, RELIABILITY = "confidence.json", "reliability.png"
METRIC_COLUMNS = ["epoch", "phase", "lr", "train_loss", "train_top1", "val_loss", "val_top1",
                  "val_top5", "images_per_s", "data_wait_frac", "epoch_s"]


@dataclass(frozen=True)
class Sample:
    """One image file and its class index."""

    path: Path
    label: int


SPLIT_FORMAT = "ftedge-split/2"
SPLITS = ("train", "val", "test")


def recreate_hint(path: Path) -> str:
    """How to make a run's ONNX graph again, by its name."""
    run = path.parent
    if path.name == FP32_ONNX:
        return (f"delete it: `ftedge export {run} ...` or `ftedge quantize {run}` exports it "
                "again from best.pt")
    if path.name == INT8_ONNX["ptq"]:
        return f"re-create it with `ftedge quantize {run}`"
    if path.name == INT8_ONNX["qat"]:
        return (f"re-create it with `ftedge tune --qat` (a new run), or make a PTQ graph with "
                f"`ftedge quantize {run}` and export it with --int8-source ptq")
    return "re-create it with the ftedge command that wrote it"


def load_onnx(path: str | Path, load_external_data: bool = True):
    """An ONNX graph file as an onnx.ModelProto; a damaged file is a RunError naming it. Inside
    io.memoised_reads the file is parsed once per command and each caller gets its own copy
    (callers edit what they load)."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    path = Path(path)
    parsed = memoised("onnx", path, lambda: _parse_onnx(path))
    model = parsed
    if memo_active():
        model = onnx.ModelProto()
        model.CopyFrom(parsed)
    if load_external_data and any(uses_external_data(t) for t in model.graph.initializer):
        load_external_data_for_model(model, str(path.parent))
    return model


def _parse_onnx(path: Path):
    """The graph without its external data (loaded on demand by load_onnx)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is damaged (not a readable ONNX graph: {e})",
                       recreate_hint(path)) from e
    if not model.opset_import or not model.graph.node:  # an empty file parses as empty
        raise RunError(f"{path} is damaged (an empty ONNX graph)", recreate_hint(path))
    return model


def split_record(root: Path, classes: list[str], splits: dict[str, list[Sample]], *, run: Path,
                 source: str, val_fraction: float, seed: int) -> dict:
    """split.json: every image as [path relative to the data root, class name].

    The root is stored absolute and relative to the run folder, so the run can be evaluated
    from any working folder, and still finds its images when run and data move together.
    """
    root = root.resolve()

    def rows(samples):
        return [[s.path.relative_to(root).as_posix() if s.path.is_absolute()
                 else s.path.resolve().relative_to(root).as_posix(), classes[s.label]]
                for s in samples]

    return {"format": SPLIT_FORMAT, "root": str(root),
            "root_from_run": os.path.relpath(root, run.resolve()), "source": source,
            "val_fraction": val_fraction, "seed": seed, "classes": classes,
            **{name: rows(samples) for name, samples in splits.items() if samples is not None}}


def check_split(record, where: str) -> dict:
    """split.json checked field by field: a damaged file is refused, never half-used."""
    if not isinstance(record, dict) or not isinstance(record.get("root"), str):
        raise RunError(f"{where} is not an ftedge split record", "start a new run")
    check_classes(record.get("classes"), where)
    for split in SPLITS:
        rows = record.get(split)
        if rows is None and split == "test":
            continue
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == 2 and all(isinstance(v, str) for v in r)
                for r in rows):
            raise RunError(f"{where}: the {split} list is missing or damaged", "start a new run")
        for rel, cls in rows:
            p = PurePosixPath(rel)
            if p.is_absolute() or ".." in p.parts or cls not in record["classes"]:
                raise RunError(f"{where}: entry {rel!r} ({cls!r}) is not an image path inside "
                               "the data root of a known class", "start a new run")
    return record


def data_root(record: dict, run: Path, override: str | Path | None = None) -> Path:
    """Where the split's images are: --data-root, the recorded root, or beside the run."""
    candidates = [Path(override)] if override else []
    candidates.append(Path(record["root"]))
    if record.get("root_from_run"):
        candidates.append(run / record["root_from_run"])
    for c in candidates:
        if c.is_dir():
            return c
    raise DatasetError(f"the data folder of run {run} is not here ({record['root']})",
                       "pass --data DIR to evaluate on another copy of the images")


def samples_from_record(record: dict, classes: list[str], split: str, *, root: Path
                        ) -> list[Sample]:
    """Rebuild one split saved in split.json, checking every file is still there."""
    if record.get(split) is None:
        hint = ("the dataset had no test/ folder" if split == "test"
                else f"the record has no {split} split")
        raise DatasetError(f"run has no {split} split ({hint})",
                           "pass --data DIR, or use --split val")
    index = {c: i for i, c in enumerate(classes)}
    out = [Sample(root / rel, index[c]) for rel, c in record[split]]
    missing = [str(s.path) for s in out if not s.path.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} file(s) of the recorded {split} split are gone, "
                           f"e.g. {missing[0]}", "restore them, or start a new run")
    return out


def check_summary(summary, where: str) -> dict:
    """summary.json checked for what a resume of a finished run reads."""
    if not isinstance(summary, dict) or not isinstance(summary.get("best_top1"), (int, float)):
        raise RunError(f"{where} is damaged", "the run is finished; start a new one with "
                       f"--out, or delete {SUMMARY} to let --resume write it again")
    return summary


@dataclass(frozen=True)
class RunFolder:
    """A run folder on disk; every file of it is read through here."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"run folder not found: {path}", "pass a folder written by ftedge tune")
        return cls(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def checkpoint(self, name: str = BEST) -> dict:
        path = self.path / name
        if not path.is_file():
            raise RunError(f"{self.path} has no {name}",
                           "finish `ftedge tune` first, or continue it with --resume")
        return load_checkpoint(path)

    def split(self) -> dict:
        path = self.path / SPLIT
        if not path.is_file():
            raise RunError(f"{self.path} has no {SPLIT}", "pass --data DIR to evaluate on")
        return check_split(read_json(path), str(path))

    def samples(self, split: str, classes: list[str], root: str | Path | None = None
                ) -> list[Sample]:
        """The images of one recorded split, with labels in the model's class order."""
        record = self.split()
        if record["classes"] != classes:
            raise RunError(f"{self.path / SPLIT} lists other classes than the model",
                           "the run folder was mixed with another run's files: train again")
        return samples_from_record(record, classes, split, root=data_root(record, self.path, root))

    def int8_onnx(self, kind: str) -> Path:
        return self.path / INT8_ONNX[kind]

    def int8_gate(self, kind: str) -> dict:
        """The accuracy gate of the INT8 graph `kind` (gate.json / gate_ptq.json), checked to be
        that graph's: a gate that is missing or damaged, or that gated another graph (an
        interrupted or failed step wrote the graph and not its gate), raises RunError. A gate
        written before gates recorded their graph's sha256 cannot be tied to it: it is returned
        with "graph_sha256" None."""
        graph, path = self.int8_onnx(kind), self.path / f"{GATE[kind]}.json"
        remake = recreate_hint(graph)  # the command that makes the graph makes its gate
        if not path.is_file():
            raise RunError(f"{graph} has no accuracy gate ({path.name} is missing): it was never "
                           "checked against FP32 (an interrupted step?)", remake)
        try:
            gate = read_json(path)
        except RunError as e:
            raise RunError(e.message, remake) from None
        if not isinstance(gate, dict) or not isinstance(gate.get("passed"), bool):
            raise RunError(f"{path} is not an accuracy gate (no passed: true/false)", remake)
        digest = gate.get("graph_sha256")
        if digest is not None and digest != sha256_file(graph):
            raise RunError(f"{path.name} gated another graph than the {graph.name} here (the graph "
                           "was written again, or changed, after its gate)", remake)
        return {**gate, "graph_sha256": digest}

    def stale_reason(self, graph: Path) -> str | None:
        """Why `graph` (an ONNX graph of this run) no longer matches the checkpoint it was made
        from, as its metadata records it (name and sha256); None when it matches, or when it
        records none (it cannot be told)."""
        meta = {p.key: p.value for p in load_onnx(graph, load_external_data=False).metadata_props}
        name, digest = meta.get("ftedge.checkpoint"), meta.get("ftedge.checkpoint_sha256")
        if not name or not digest or "/" in name or "\\" in name:
            return None
        source = self.path / name
        if not source.is_file():
            return f"{name}, which it was made from, is gone"
        if sha256_file(source) != digest:
            return (f"it was made from an earlier {name} ({name} was written again since, e.g. "
                    "by a resumed `ftedge tune`)")
        return None

    def confidence(self, checkpoint: Path) -> tuple[dict | None, str | None]:
        """The temperature fitted for `checkpoint` (confidence.json, written by `ftedge
        calibrate` and at the end of `ftedge tune`): (record, None), or (None, why T = 1)."""
        from ftedge.confidence import CalibrationError, check_record

        path = self.path / CONFIDENCE
        fix = f"ftedge calibrate {self.path}"
        if not path.is_file():
            return None, f"{self.path.name} has no {CONFIDENCE}: probabilities use T = 1 ({fix})"
        try:
            record = check_record(read_json(path), str(path))
        except (RunError, CalibrationError) as e:
            raise RunError(e.message, fix) from None
        if record.get("checkpoint_sha256") != sha256_file(checkpoint):
            return None, (f"{CONFIDENCE} was fitted for another checkpoint than {checkpoint.name}: "
                          f"probabilities use T = 1 ({fix})")
        return record, None

    def write_confidence(self, logits, labels, checkpoint: Path) -> dict:
        """Fit the temperature of `checkpoint` on its val `logits` and write confidence.json
        (tied to the checkpoint's sha256) and reliability.png; returns the record."""
        from ftedge.confidence import calibration_record, check_record, write_reliability_diagram

        record = calibration_record(logits, labels, fitted_on=(
            f"val split of {self.path.resolve()}: {checkpoint.name} in PyTorch FP32"))
        record.update(checkpoint=checkpoint.name, checkpoint_sha256=sha256_file(checkpoint))
        check_record(record, CONFIDENCE)  # what is written is what confidence() reads back
        with folder_lock(self.path):  # the run's one writer (tune holds it already)
            write_reliability_diagram(record, self.path / RELIABILITY, title=(
                f"{self.path.name}: {checkpoint.name} (PyTorch FP32), val"))
            atomic_write_json(self.path / CONFIDENCE, record)
        return record

    def write_header(self, *, split: dict, config_yaml: str, classes: list[str], audit: dict,
                     contract: dict) -> None:
        """The files a new run writes before its first epoch, each checked as its reader
        checks it; split.json first: it is what marks a header-only folder as ftedge's
        (is_reusable)."""
        check_split(split, SPLIT)
        check_classes(classes, CLASSES)
        check_contract(copy.deepcopy(contract), CONTRACT)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path / SPLIT, split)
        atomic_write_text(self.path / CONFIG, config_yaml)
        atomic_write_json(self.path / CLASSES, classes)
        atomic_write_json(self.path / AUDIT, audit)
        atomic_write_json(self.path / CONTRACT, contract)

    def write_metrics(self, history: list[dict]) -> None:
        """metrics.csv and metrics.json, one row per finished epoch."""
        if not all(isinstance(r, dict) and "epoch" in r for r in history):
            raise RunError("a metrics row has no epoch (an ftedge bug)", "report it")
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)
        atomic_write_text(self.path / METRICS_CSV, buf.getvalue())
        atomic_write_json(self.path / METRICS_JSON, history)

    def write_summary(self, summary: dict) -> None:
        """summary.json, written last: the run is finished."""
        check_summary(summary, SUMMARY)
        atomic_write_json(self.path / SUMMARY, summary)

    def summary(self) -> dict | None:
        """summary.json checked, or None when the run is not finished."""
        path = self.path / SUMMARY
        if not path.is_file():
            return None
        return check_summary(read_json(path), str(path))

    def has_checkpoint(self) -> bool:
        return (self.path / LAST).is_file() or (self.path / BEST).is_file()

    def is_reusable(self) -> bool:
        """True for a run that stopped before its first checkpoint: only its header files, and
        ftedge's own (split.json, written first, is an ftedge split record). A folder holding a
        user's config.yaml alone is not: reusing it would overwrite that file."""
        entries = {p.name for p in self.path.iterdir()}
        if self.has_checkpoint() or not entries <= set(HEADER) or SPLIT not in entries:
            return False
        try:
            check_split(read_json(self.path / SPLIT), SPLIT)
        except (RunError, DatasetError):
            return False
        return True
