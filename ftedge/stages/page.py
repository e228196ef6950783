"""`ftedge report RUN --html`: one self-contained HTML page to look at a run.

Every number on the page is measured here from the graphs the run ships (model.fp32.onnx and
its INT8 graph, in ONNX Runtime) on the run's recorded val split, or read from the records
ftedge wrote (artifact manifests, the dataset audit, an unknown evaluation). A section whose
facts do not exist says so on the page, with the command that produces them; none is left
out. The HTML itself is rendered by render/page.py.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftedge.config import EVAL_BATCH
from ftedge.errors import FtedgeError, RunError
from ftedge.formats.artifact import MANIFEST
from ftedge.formats.run import BEST, FP32_ONNX, RELIABILITY, SPLIT, RunFolder
from ftedge.io import atomic_write_text, memoised_reads
from ftedge.render.page import (MAX_TILES, Figure, Missing, Pairs, Section, Table, Text, Tile,
                                Tiles, is_ftedge_page, render_page)
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


def int8_graph(run: RunFolder, log=lambda message: None) -> Path | None:
    """The run's INT8 graph the page compares with FP32: QAT's, else PTQ's; one made from an
    earlier checkpoint than the run's (a resumed run) is left off, saying why, as export
    refuses it: its flips against today's FP32 would be the two checkpoints' differences."""
    for kind in ("qat", "ptq"):
        path = run.int8_onnx(kind)
        if path.is_file():
            why = run.stale_reason(path)
            if why is None:
                return path
            log(f"{path.name} is left off the page: {why}; {_recreate(path)}")
    return None


CHUNK = 256  # images decoded and run at a time: memory stays bounded on a large val split


def _run_graphs(run: RunFolder, val: Val, log=lambda message: None
                ) -> tuple[Graph | None, Graph | None]:
    """Both graphs' logits on the val images, decoded chunk by chunk."""
    from ftedge.data.transforms import preprocess_samples
    from ftedge.runtime import infer_batches
    from ftedge.runtime.onnxruntime.runner import OrtRunner

    paths = [p for p in (run.file(FP32_ONNX), int8_graph(run, log))
             if p is not None and p.is_file()]
    parts: list[list[np.ndarray]] = [[] for _ in paths]
    with ExitStack() as stack:
        runners = [stack.enter_context(OrtRunner(p)) for p in paths]
        for i in range(0, len(val.samples), CHUNK):
            x = preprocess_samples(val.samples[i:i + CHUNK], val.contract)
            for part, runner in zip(parts, runners):
                part.append(infer_batches(runner, x, EVAL_BATCH))
    graphs = {p.name: Graph(p.name, np.concatenate(part)) for p, part in zip(paths, parts)}
    fp32 = graphs.get(FP32_ONNX)
    int8 = next((g for name, g in graphs.items() if name != FP32_ONNX), None)
    return fp32, int8


def errors_section(val: Val, graph: Graph | None, run: Path) -> Section:
    """The misclassified val images, most confident first, of `graph` (the INT8 graph when
    the run has one: what devices run)."""
    s = Section("errors", "Worst errors")
    if graph is None:
        s.blocks.append(Missing(f"{FP32_ONNX} in the run", f"ftedge quantize {run} (or ftedge "
                                f"export {run} --target onnxruntime-cpu --precision fp32)"))
        return s
    prob = graph.probs()
    pred, conf = prob.argmax(1), prob.max(1)
    wrong = np.flatnonzero(pred != val.labels)
    order = wrong[np.argsort(-conf[wrong], kind="stable")]
    s.blocks.append(Text(f"{len(wrong)} of {len(val.labels)} val images misclassified by "
                         f"{graph.name} in ONNX Runtime, most confident first (confidence: "
                         f"softmax(logits / T), T = {graph.temperature:.3f} fitted on these "
                         "logits: see Calibration)."))
    if len(order):
        s.blocks.append(Tiles([Tile(thumbnail_uri(val.samples[i].path, background=_bg(val)), [
            f"true: {val.classes[val.labels[i]]}", f"pred: {val.classes[pred[i]]}",
            f"conf {conf[i]:.3f}"], str(val.samples[i].path), "bad")
            for i in order[:MAX_TILES]], total=len(order)))
    return s


def _bg(val: Val) -> tuple:
    return tuple(val.contract.get("background", (255, 255, 255)))


def per_class_section(val: Val, fp32: Graph | None, int8: Graph | None, *, run: Path) -> Section:
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
        kind = "FP32" if g is fp32 else "INT8"
        header += [f"{kind} precision", f"{kind} recall", f"{kind} F1"]
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


def flips_section(val: Val, fp32: Graph | None, int8: Graph | None, *, run: Path) -> Section:
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
        path = write_reliability_diagram(record, Path(tmp) / RELIABILITY, title=title)
        return data_uri(path.read_bytes(), "image/png")


def fit_temperatures(val: Val, graphs: list[Graph]) -> dict[str, dict | str]:
    """Per graph, the calibration record of its val logits (or why there is none); each
    graph's confidences on the page then use its own fitted T, as each artifact's do."""
    from ftedge.confidence import CalibrationError, calibration_record

    records: dict[str, dict | str] = {}
    for g in graphs:
        try:
            records[g.name] = calibration_record(g.logits, val.labels,
                                                 fitted_on=f"{g.name} val logits")
            g.temperature = records[g.name]["temperature"]
        except CalibrationError as e:
            records[g.name] = e.message
    return records


def calibration_section(graphs: list[Graph], records: dict, run: Path) -> Section:
    s = Section("calibration", "Calibration (reliability diagram)")
    if not graphs:
        s.blocks.append(Missing("the run's ONNX graphs", f"ftedge quantize {run}"))
    figures = []
    for g in graphs:
        record = records[g.name]
        if isinstance(record, str):
            s.blocks.append(Text(f"{g.name}: no reliability diagram: {record}"))
            continue
        s.blocks.append(Text(f"{g.name}: ECE {record['ece_before']:.4f} at T = 1, "
                             f"{record['ece_after']:.4f} with a temperature (T = "
                             f"{record['temperature']:.3f} on all {record['n']} images; "
                             f"'after' scored by {record['folds']}-fold cross-fitting), NLL "
                             f"{record['nll_before']:.4f} -> {record['nll_after']:.4f}."))
        figures.append(Figure(reliability_figure(record, f"{g.name}, val split"),
                              f"reliability diagram of {g.name}"))
    if figures:
        s.blocks.append(Text("Computed for this page from each graph's val logits in ONNX "
                             "Runtime, as export fits each artifact's temperature on its own:"))
    s.blocks += figures
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


def scored_artifact(run: Path, log):
    """The first artifact under RUN/exports whose graph carries an unknown score and that
    runs here (INT8 first: what devices run), opened; None when there is none."""
    from ftedge.runtime.artifact import load_artifact
    from ftedge.formats.artifact import read_manifest_dict

    folders = sorted((run / "exports").glob("*/")) if (run / "exports").is_dir() else []
    found = []
    for folder in folders:
        try:
            m = read_manifest_dict(folder)
        except FtedgeError:
            continue
        if isinstance(m.get("unknown"), dict) and m.get("built", True):
            found.append((m["precision"] != "int8", folder.name, folder))
    for *_, folder in sorted(found):
        try:
            return load_artifact(folder)
        except FtedgeError as e:  # e.g. a GPU profile on this CPU machine: try the next one
            log(f"{folder.name} does not run here ({e.message})")
    return None


def _scored(loaded, samples: list, contract: dict) -> tuple[np.ndarray, np.ndarray]:
    """Logits and unknown scores of an artifact on image files, in chunks."""
    from ftedge.data.transforms import preprocess_samples
    from ftedge.runtime import infer_scored

    logits, scores = [], []
    for i in range(0, len(samples), CHUNK):
        x = preprocess_samples(samples[i:i + CHUNK], contract)
        for j in range(0, len(x), 32):
            lo, sc = infer_scored(loaded.runner, x[j:j + 32])
            logits.append(lo)
            scores.append(sc)
    return np.concatenate(logits), np.concatenate(scores)


def unknown_images(folder: str | Path, limit: int = 2000) -> list:
    """Image files under `folder` (any depth, sorted), at most `limit` of them."""
    from ftedge.data.folder import Sample
    from ftedge.data.images import IMAGE_EXTENSIONS

    files = sorted(p for p in Path(folder).rglob("*")
                   if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return [Sample(p, -1) for p in files[:limit]]


def unknown_section(run: Path, val: Val, unknown: str | None, *, log) -> Section:
    from ftedge.confidence import temperature_of
    from ftedge.metrics import softmax

    s = Section("unknown", "Unknowns accepted, knowns rejected")
    loaded = scored_artifact(run, log)
    if loaded is None:
        s.blocks.append(Missing("an exported artifact with an unknown score that runs here",
                                f"ftedge export {run} --target onnxruntime-cpu "
                                "--precision int8"))
        return s
    rule = loaded.manifest.unknown
    thr, T = float(rule["threshold"]), temperature_of(loaded.manifest.calibration)[0]
    log(f"scoring the val images with {loaded.path.name}'s unknown score")
    logits, scores = _scored(loaded, val.samples, val.contract)
    prob = softmax(logits, T)
    rejected = np.flatnonzero(scores > thr)
    rejected = rejected[np.argsort(-scores[rejected], kind="stable")]
    s.blocks.append(Text(
        f"{loaded.path.name}: an image whose {rule.get('score', '?')} score is above "
        f"{thr:.6g} is unknown (the threshold accepts {rule.get('target_tpr', float('nan')):.0%}"
        f" of the val images). Here {len(rejected)} of {len(val.labels)} known val images are "
        "rejected, highest score first:"))
    if len(rejected):
        s.blocks.append(Tiles([Tile(thumbnail_uri(val.samples[i].path, background=_bg(val)), [
            f"true: {val.classes[val.labels[i]]}", f"pred: {val.classes[prob[i].argmax()]} "
            f"{prob[i].max():.2f}", f"score {scores[i]:.4g}"], str(val.samples[i].path), "bad")
            for i in rejected[:MAX_TILES]], total=len(rejected)))
    if unknown is None:
        s.blocks.append(Missing("images of none of the classes, to see which ones the model "
                                "takes for a class", f"ftedge report {run} --html --unknown DIR"))
        return s
    others = unknown_images(unknown)
    if not others:
        s.blocks.append(Text(f"{unknown} holds no image files."))
        return s
    u_logits, u_scores = _scored(loaded, others, val.contract)
    u_prob = softmax(u_logits, T)
    accepted = np.flatnonzero(u_scores <= thr)
    accepted = accepted[np.argsort(u_scores[accepted], kind="stable")]
    s.blocks.append(Text(f"{len(accepted)} of {len(others)} images of {unknown} are accepted "
                         "as one of the classes, lowest score (most convincing) first:"))
    if len(accepted):
        s.blocks.append(Tiles([Tile(thumbnail_uri(others[i].path, background=_bg(val)), [
            others[i].path.name, f"taken for: {val.classes[u_prob[i].argmax()]} "
            f"{u_prob[i].max():.2f}", f"score {u_scores[i]:.4g}"], str(others[i].path), "bad")
            for i in accepted[:MAX_TILES]], total=len(accepted)))
    return s


def _audit_record(run: Path, audit: str | None) -> tuple[dict | None, str]:
    """The audit to show: --audit FILE, else the run's own dataset_audit.json when it lists
    duplicates; (None, why) when neither does."""
    from ftedge.formats.run import AUDIT
    from ftedge.io import read_json

    if audit:
        how = "write it with: ftedge data check DATA --json > audit.json"
        try:
            record = read_json(audit)
        except RunError as e:  # read_json's hint is for run files ftedge wrote
            raise RunError(e.message, how) from e
        if not isinstance(record, dict) or "classes" not in record:
            raise RunError(f"{audit} is not the JSON of `ftedge data check --json`", how)
        _check_audit(record, audit, how)
        return record, str(audit)
    own = run / AUDIT
    if own.is_file():
        record = read_json(own)
        if isinstance(record, dict) and record.get("duplicates") is not None:
            _check_audit(record, own, f"run `ftedge data check DATA --json > audit.json` and "
                         "pass --audit audit.json")
            return record, str(own)
    return None, "no audit"


def _check_audit(record: dict, where, how: str) -> None:
    """The lists of an audit the page draws, checked row by row: a hand-edited or foreign
    file is refused with its key named, not a traceback halfway through the page."""
    def text(x) -> bool:
        return isinstance(x, str)

    rows = {"duplicates": lambda d: isinstance(d, dict) and text(d.get("a")) and text(d.get("b")),
            "label_issues": lambda d: isinstance(d, dict) and text(d.get("path")) and isinstance(
                d.get("label_quality", 0.0), (int, float)),
            "outliers": lambda o: isinstance(o, list) and len(o) == 2 and all(map(text, o))}
    for key, ok in rows.items():
        value = record.get(key)
        if value is not None and not (isinstance(value, list) and all(ok(r) for r in value)):
            raise RunError(f"{where}: its {key!r} are not what `ftedge data check --json` "
                           "writes", how)


def audit_now(run: Path, log) -> tuple[dict | None, str]:
    """The audit's duplicate and outlier search run on the run's data (one decode of every
    image, as `ftedge data check` does); (None, why) when the data is not here."""
    from ftedge.data.audit import audit_dataset
    from ftedge.errors import DatasetError
    from ftedge.formats.run import data_root

    try:
        root = data_root(RunFolder(run).split(), run)
    except (DatasetError, RunError):
        return None, "the run's data is not here"
    log(f"auditing {root} for duplicates and outliers (ftedge data check)")
    return audit_dataset(root, duplicates=True).to_dict(), f"ftedge data check {root}, run " \
        "for this page"


def _find(path: str, audit: str) -> Path:
    """An audited file: as recorded, else relative to the audit file's folder (an audit run
    from another working folder records relative paths)."""
    p = Path(path)
    if p.is_file() or p.is_absolute():
        return p
    return Path(audit).parent / p


def data_section(run: Path, audit: str | None, log=lambda message: None) -> Section:
    s = Section("data", "Data issues: suspected label errors, duplicates, outliers")
    record, source = _audit_record(run, audit)
    if record is None:
        record, source = audit_now(run, log)
    again = (f"ftedge data check DATA --labels --json > audit.json, then ftedge report {run} "
             "--html --audit audit.json")
    if record is None:
        s.blocks.append(Missing("a data audit with duplicates and label errors", again))
        return s
    s.blocks.append(Text(f"From {source} (data root {record.get('root', '?')})."))
    issues = record.get("label_issues")
    s.blocks.append(Text("Suspected label errors, most suspicious first:"))
    if issues is None:
        s.blocks.append(Missing("suspected label errors (the audit ran without --labels)",
                                again))
    elif not issues:
        s.blocks.append(Text("No suspected label errors."))
    else:
        s.blocks.append(Tiles([Tile(thumbnail_uri(_find(i["path"], source)), [
            f"in: {i.get('given', '?')}", f"looks like: {i.get('suggested', '?')}",
            f"p(given) {i.get('label_quality', float('nan')):.2f}"], str(i["path"]), "bad")
            for i in issues[:MAX_TILES]], total=len(issues)))
    s.blocks.append(Text("Duplicate pairs (the same picture twice: label conflicts and "
                         "leaks across splits first):"))
    dups = record.get("duplicates")
    if dups is None:
        s.blocks.append(Missing("duplicate pairs (the audit did not look for them)", again))
    elif not dups:
        s.blocks.append(Text("No duplicate images."))
    else:
        dups = sorted(dups, key=lambda d: (not d.get("label_conflict"), not d.get("leak")))

        def side(d: dict, k: str) -> Tile:
            path = d[k]
            return Tile(thumbnail_uri(_find(path, source)), [
                f"{d.get('split_' + k, '?')}/{d.get('class_' + k, '?')}", Path(path).name],
                str(path), "bad" if d.get("label_conflict") else "")

        s.blocks.append(Pairs([(side(d, "a"), side(d, "b"), " ".join(
            ["LABEL CONFLICT"] * bool(d.get("label_conflict")) + ["LEAK"] * bool(d.get("leak"))
            + [str(d.get("kind", "duplicate"))])) for d in dups[:MAX_TILES // 2]],
            total=len(dups)))
    outliers = record.get("outliers")
    if outliers:
        s.blocks.append(Text("Outliers (images a model sees almost nothing of):"))
        s.blocks.append(Tiles([Tile(thumbnail_uri(_find(p, source)), [Path(p).name, why],
                                    str(p)) for p, why in outliers[:MAX_TILES]],
                              total=len(outliers)))
    elif outliers is not None:
        s.blocks.append(Text("No outliers."))
    return s


def ensure_fp32_graph(run: RunFolder, log) -> None:
    """model.fp32.onnx made from best.pt when the run has none (a run tuned without --qat) or
    an out-of-date one, as `ftedge export` makes it: the graph FP32 artifacts are built from."""
    if not run.file(BEST).is_file():
        return
    from ftedge.quant.onnx_export import ensure_fp32
    from ftedge.runtime.pytorch.runner import load_run

    if not run.file(FP32_ONNX).is_file():
        log(f"exporting {run.file(FP32_ONNX)} from {BEST} (as ftedge export does)")
    ensure_fp32(load_run(run.path), run.file(FP32_ONNX), log=log)


def load_val(run: RunFolder) -> Val:
    fp32 = run.file(FP32_ONNX)
    graph = fp32 if fp32.is_file() else int8_graph(run)
    if graph is None:
        raise RunError(f"{run.path} has no ONNX graph ({FP32_ONNX} or an INT8 one) and no "
                       f"{BEST} to make one from", "finish `ftedge tune` first (--resume)")
    classes, contract = _contract_of(graph)
    samples = run.samples("val", classes)
    return Val(samples, np.array([s.label for s in samples]), classes, contract)


@memoised_reads()  # each input hashed and parsed once per command
def build_page(run: str | Path, *, unknown: str | None = None, audit: str | None = None,
               log=lambda message: None) -> str:
    """The run page as an HTML string."""
    folder = RunFolder.open(run)
    if not (folder.path / SPLIT).is_file():
        raise RunError(f"{folder.path} is not a run folder (no {SPLIT})",
                       "pass the folder `ftedge tune` wrote (an artifact's run is in its "
                       f"{MANIFEST}, source.run)")
    if audit:
        _audit_record(folder.path, audit)  # a wrong --audit file is refused before the work
    ensure_fp32_graph(folder, log)
    val = load_val(folder)
    log(f"running the run's graphs in ONNX Runtime on {len(val.samples)} val images")
    fp32, int8 = _run_graphs(folder, val, log)
    graphs = [g for g in (fp32, int8) if g is not None]
    records = fit_temperatures(val, graphs)
    path = folder.path
    sections = [errors_section(val, int8 or fp32, path), per_class_section(val, fp32, int8,
                                                                           run=path),
                flips_section(val, fp32, int8, run=path), calibration_section(graphs, records,
                                                                              path),
                unknown_section(path, val, unknown, log=log), data_section(path, audit, log)]
    from ftedge import __version__
    from ftedge.metrics import topk_accuracy

    facts = [("run", str(path.resolve())), ("classes", str(len(val.classes))),
             ("val images", str(len(val.labels)))]
    facts += [(f"{g.name} top-1", f"{topk_accuracy(g.logits, val.labels, 1):.4f}")
              for g in graphs]
    facts += [("written", time.strftime("%Y-%m-%d %H:%M")), ("ftedge", __version__)]
    return render_page(f"ftedge run: {path.resolve().name}", facts, sections)


@memoised_reads()  # each input hashed and parsed once per command
def write_page(run: str | Path, out: str | Path | None = None, *, force: bool = False,
               unknown: str | None = None, audit: str | None = None,
               log=lambda message: None) -> Path:
    """Build the page and write it atomically (default RUN/report.html), replacing an earlier
    page ftedge wrote there. Any other file is never replaced, `force` or not: --out may name a
    checkpoint, a manifest or a user's notes, and a page is cheap to write elsewhere. (`force`
    is kept for the command line, where it means "replace an earlier page".)"""
    from ftedge.io import os_error_message, read_file_bytes

    out = Path(out) if out else Path(run) / PAGE
    if out.is_dir():
        raise RunError(f"{out} is a folder", "give --out a file name ending in .html")
    if os.path.lexists(out):
        try:
            head = read_file_bytes(out, 4096)[:4096]
        except OSError as e:  # a FIFO, a link loop, a file we may not read
            raise os_error_message(e, out) from e
        if not is_ftedge_page(head):
            raise RunError(f"{out} exists and is not a page ftedge wrote (ftedge never "
                           "replaces it, even with --force)",
                           "pick another --out, or move that file away first")
    html = build_page(run, unknown=unknown, audit=audit, log=log)
    atomic_write_text(out, html)
    return out
