"""`ftedge report RUN --html`: one self-contained HTML page to look at a run.

Every number on the page is measured here from the graphs the run ships (model.fp32.onnx and
its INT8 graph, in ONNX Runtime) on the run's recorded val split, or read from the records
ftedge wrote (artifact manifests, the dataset audit, an unknown evaluation). A section whose
facts do not exist says so on the page, with the command that produces them; none is left
out. The HTML itself is rendered by render/page.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftedge.errors import FtedgeError, RunError
from ftedge.formats.run import FP32_ONNX, INT8_ONNX, SPLIT, RunFolder
from ftedge.io import atomic_write_text
from ftedge.render.page import (MAX_TILES, Figure, Missing, Section, Table, Text, Tile, Tiles,
                                is_ftedge_page, render_page)
from ftedge.render.thumbs import thumbnail_uri

PAGE = "report.html"


@dataclass
class Graph:
    """One shipped graph's val logits and the temperature its confidences use."""

    name: str
    logits: np.ndarray
    temperature: float = 1.0

    def probs(self) -> np.ndarray:
        from ftedge.metrics import softmax

        return softmax(self.logits, self.temperature)


@dataclass
class Val:
    samples: list
    labels: np.ndarray
    classes: list[str]
    contract: dict


def _contract_of(graph: Path) -> tuple[list[str], dict]:
    import json

    from ftedge.graph.metadata import read_metadata

    meta = read_metadata(graph)
    try:
        return json.loads(meta["ftedge.classes"]), json.loads(meta["ftedge.preprocessing"])
    except (KeyError, ValueError):
        raise RunError(f"{graph} carries no ftedge classes and preprocessing contract",
                       f"export it again: {_recreate(graph)}") from None


def _recreate(graph: Path) -> str:
    from ftedge.formats.run import recreate_hint

    return recreate_hint(graph)


def int8_graph(run: RunFolder) -> Path | None:
    """The run's INT8 graph the page compares with FP32: QAT's, else PTQ's."""
    for kind in ("qat", "ptq"):
        if run.int8_onnx(kind).is_file():
            return run.int8_onnx(kind)
    return None


def _run_graphs(run: RunFolder, val: Val, x: np.ndarray) -> tuple[Graph | None, Graph | None]:
    from ftedge.runtime import infer_batches
    from ftedge.runtime.onnxruntime.runner import OrtRunner

    out = []
    for path in (run.file(FP32_ONNX), int8_graph(run)):
        if path is None or not path.is_file():
            out.append(None)
            continue
        out.append(Graph(path.name, infer_batches(OrtRunner(path), x)))
    return out[0], out[1]


def errors_section(val: Val, fp32: Graph | None, run: Path) -> Section:
    s = Section("errors", "Worst errors")
    if fp32 is None:
        s.blocks.append(Missing(f"{FP32_ONNX} in the run", f"ftedge quantize {run} (or ftedge "
                                f"export {run} --target onnxruntime-cpu --precision fp32)"))
        return s
    prob = fp32.probs()
    pred, conf = prob.argmax(1), prob.max(1)
    wrong = np.flatnonzero(pred != val.labels)
    order = wrong[np.argsort(-conf[wrong], kind="stable")]
    s.blocks.append(Text(f"{len(wrong)} of {len(val.labels)} val images misclassified by "
                         f"{fp32.name} in ONNX Runtime, most confident first (confidence: "
                         f"softmax of the logits / T, T = {fp32.temperature:.3f})."))
    if len(order):
        s.blocks.append(Tiles([Tile(thumbnail_uri(val.samples[i].path, background=_bg(val)), [
            f"true: {val.classes[val.labels[i]]}", f"pred: {val.classes[pred[i]]}",
            f"conf {conf[i]:.3f}"], str(val.samples[i].path), "bad")
            for i in order[:MAX_TILES]], total=len(order)))
    return s


def _bg(val: Val) -> tuple:
    return tuple(val.contract.get("background", (255, 255, 255)))


def per_class_section(val: Val, fp32: Graph | None, int8: Graph | None, run: Path) -> Section:
    from ftedge.metrics import classification_report

    s = Section("per-class", "Per-class metrics")
    graphs = [g for g in (fp32, int8) if g is not None]
    if not graphs:
        s.blocks.append(Missing("the run's ONNX graphs", f"ftedge tune --qat ... or ftedge "
                                                         f"quantize {run}"))
        return s
    reps = [classification_report(g.logits, val.labels, val.classes) for g in graphs]
    header = ["class", "support"]
    for g in graphs:
        header += [f"{g.name} precision", "recall", "F1"]
    rows = []
    for c in val.classes:
        row = [c, str(reps[0]["per_class"][c]["support"])]
        for r in reps:
            m = r["per_class"][c]
            row += [_f(m["precision"]), _f(m["recall"]), _f(m["f1"])]
        rows.append(row)
    s.blocks.append(Text(" ; ".join(f"{g.name}: top-1 {r['top1']:.4f}" for g, r in
                                    zip(graphs, reps)) + f" on {len(val.labels)} val images "
                         "(ONNX Runtime)."))
    s.blocks.append(Table(header, rows))
    if int8 is None:
        s.blocks.append(Missing("an INT8 graph to compare", f"ftedge quantize {run} (PTQ) or "
                                                             "ftedge tune --qat ..."))
    return s


def _f(v: float) -> str:
    return "n/a" if v != v else f"{v:.3f}"


def flips_section(val: Val, fp32: Graph | None, int8: Graph | None, run: Path) -> Section:
    s = Section("flips", "INT8 vs FP32 flips")
    if fp32 is None or int8 is None:
        s.blocks.append(Missing(f"{'an INT8 graph' if int8 is None else FP32_ONNX} in the run",
                                f"ftedge quantize {run} (PTQ), or ftedge tune --qat ..."))
        return s
    p32, p8 = fp32.probs(), int8.probs()
    a, b, y = p32.argmax(1), p8.argmax(1), val.labels
    flips = np.flatnonzero(a != b)
    lost = [i for i in flips if a[i] == y[i]]
    gained = [i for i in flips if b[i] == y[i]]
    neither = [i for i in flips if a[i] != y[i] and b[i] != y[i]]
    s.blocks.append(Text(f"{len(flips)} of {len(y)} val images get another top-1 from "
                         f"{int8.name} than from {fp32.name} (both in ONNX Runtime): {len(lost)} "
                         f"lost (FP32 right, INT8 wrong), {len(gained)} gained, {len(neither)} "
                         "wrong either way. Lost first, then gained, then the rest."))
    order = lost + gained + neither
    tone = {**{i: "bad" for i in lost}, **{i: "good" for i in gained}}
    if order:
        s.blocks.append(Tiles([Tile(thumbnail_uri(val.samples[i].path, background=_bg(val)), [
            f"true: {val.classes[y[i]]}", f"FP32: {val.classes[a[i]]} {p32[i].max():.2f}",
            f"INT8: {val.classes[b[i]]} {p8[i].max():.2f}"], str(val.samples[i].path),
            tone.get(i, "")) for i in order[:MAX_TILES]], total=len(order)))
    return s


def reliability_figure(record: dict, title: str) -> str:
    """The reliability diagram confidence.py draws, as a PNG data URI."""
    import tempfile

    from ftedge.confidence import write_reliability_diagram
    from ftedge.render.thumbs import data_uri

    with tempfile.TemporaryDirectory() as tmp:
        path = write_reliability_diagram(record, Path(tmp) / "reliability.png", title=title)
        return data_uri(path.read_bytes(), "image/png")


def calibration_section(val: Val, graphs: list[Graph], run: Path) -> Section:
    from ftedge.confidence import CalibrationError, calibration_record

    s = Section("calibration", "Calibration (reliability diagram)")
    if not graphs:
        s.blocks.append(Missing("the run's ONNX graphs", f"ftedge quantize {run}"))
    for g in graphs:
        try:
            record = calibration_record(g.logits, val.labels, fitted_on=f"{g.name} val logits")
        except CalibrationError as e:
            s.blocks.append(Text(f"{g.name}: no reliability diagram: {e.message}"))
            continue
        s.blocks.append(Text(f"{g.name}: ECE {record['ece_before']:.4f} at T = 1, "
                             f"{record['ece_after']:.4f} with a temperature (T = "
                             f"{record['temperature']:.3f} on all {record['n']} images; "
                             f"'after' scored by {record['folds']}-fold cross-fitting), NLL "
                             f"{record['nll_before']:.4f} -> {record['nll_after']:.4f}. "
                             "Computed for this page from the graph's val logits."))
        s.blocks.append(Figure(reliability_figure(record, f"{g.name}, val split"),
                               f"reliability diagram of {g.name}"))
    shipped = artifact_calibrations(run)
    if shipped:
        s.blocks.append(Text("What the exported artifacts ship (each fitted on its own "
                             "logits at export):"))
        s.blocks.append(Table(["artifact", "T", "ECE before", "ECE after", "NLL before",
                               "NLL after", "images"], shipped))
    else:
        s.blocks.append(Missing("an exported artifact with its fitted temperature",
                                f"ftedge export {run} --target onnxruntime-cpu "
                                "--precision fp32,int8"))
    return s


def artifact_calibrations(run: Path) -> list[list[str]]:
    """One row per artifact under RUN/exports whose manifest records a calibration."""
    from ftedge.formats.artifact import read_manifest_dict

    rows = []
    for folder in sorted((run / "exports").glob("*/")) if (run / "exports").is_dir() else []:
        try:
            cal = read_manifest_dict(folder).get("calibration")
        except FtedgeError:
            continue
        if isinstance(cal, dict):
            rows.append([folder.name, f"{cal.get('temperature', float('nan')):.3f}",
                         *(_f4(cal.get(k)) for k in ("ece_before", "ece_after", "nll_before",
                                                     "nll_after")), str(cal.get("n", "?"))])
    return rows


def _f4(v) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "n/a"


def unknown_section(run: Path, unknown: str | None) -> Section:
    s = Section("unknown", "Unknowns accepted, knowns rejected")
    s.blocks.append(Missing("an unknown score in the run's graphs and its threshold",
                            f"ftedge eval {run} --unknown DIR (with an ftedge whose graphs "
                            "carry the unknown score), then ftedge report "
                            f"{run} --html --unknown DIR"))
    return s


def data_section(run: Path, audit: str | None) -> Section:
    s = Section("data", "Data issues: suspected label errors, duplicates, outliers")
    s.blocks.append(Missing("a data audit with label errors and duplicates",
                            f"ftedge data check DATA --json > audit.json, then ftedge report "
                            f"{run} --html --audit audit.json"))
    return s


def load_val(run: RunFolder) -> tuple[Val, np.ndarray]:
    from ftedge.data.transforms import preprocess_samples

    fp32 = run.file(FP32_ONNX)
    graph = fp32 if fp32.is_file() else int8_graph(run)
    if graph is None:
        raise RunError(f"{run.path} has no ONNX graph ({FP32_ONNX} or an INT8 one) to look at",
                       f"make them: ftedge quantize {run.path}, or ftedge tune --qat ...")
    classes, contract = _contract_of(graph)
    samples = run.samples("val", classes)
    return Val(samples, np.array([s.label for s in samples]), classes, contract), \
        preprocess_samples(samples, contract)


def build_page(run: str | Path, *, unknown: str | None = None, audit: str | None = None,
               log=lambda message: None) -> str:
    """The run page as an HTML string."""
    folder = RunFolder.open(run)
    if not (folder.path / SPLIT).is_file():
        raise RunError(f"{folder.path} is not a run folder (no {SPLIT})",
                       "pass the folder `ftedge tune` wrote (an artifact's run is in its "
                       "manifest.json, source.run)")
    log("decoding the val split")
    val, x = load_val(folder)
    log("running the graphs in ONNX Runtime")
    fp32, int8 = _run_graphs(folder, val, x)
    graphs = [g for g in (fp32, int8) if g is not None]
    path = folder.path
    sections = [errors_section(val, fp32, path), per_class_section(val, fp32, int8, path),
                flips_section(val, fp32, int8, path), calibration_section(val, graphs, path),
                unknown_section(path, unknown), data_section(path, audit)]
    from ftedge import __version__
    from ftedge.metrics import topk_accuracy

    facts = [("run", str(path.resolve())), ("classes", str(len(val.classes))),
             ("val images", str(len(val.labels)))]
    facts += [(f"{g.name} top-1", f"{topk_accuracy(g.logits, val.labels, 1):.4f}")
              for g in graphs]
    facts += [("written", time.strftime("%Y-%m-%d %H:%M")), ("ftedge", __version__)]
    return render_page(f"ftedge run: {path.resolve().name}", facts, sections)


def write_page(run: str | Path, out: str | Path | None = None, *, force: bool = False,
               unknown: str | None = None, audit: str | None = None,
               log=lambda message: None) -> Path:
    """Build the page and write it atomically (default RUN/report.html); a file there that
    ftedge did not write is replaced only with `force`."""
    out = Path(out) if out else Path(run) / PAGE
    if out.is_dir():
        raise RunError(f"{out} is a folder", "give --out a file name ending in .html")
    if out.exists() and not force:
        with open(out, "rb") as f:
            if not is_ftedge_page(f.read(4096)):
                raise RunError(f"{out} exists and is not a page ftedge wrote",
                               "pass --force to replace it, or pick another --out")
    html = build_page(run, unknown=unknown, audit=audit, log=log)
    atomic_write_text(out, html)
    return out
