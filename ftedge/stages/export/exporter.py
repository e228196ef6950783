"""`ftedge export`: a run -> one target's artifact folder, checked against PyTorch, atomically.

The folder holds the artifact, parity.json and manifest.json (formats/artifact.py). It is
assembled in a hidden temporary folder beside the destination and renamed into place only
when everything succeeded (formats/owned.py), so an interrupted export leaves nothing.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ftedge.confidence import calibration_record, summary_line, write_reliability_diagram
from ftedge.config import DEFAULT_LAYOUT, INPUT_FORMATS, INPUT_LAYOUTS, INT8_SOURCE, or_default
from ftedge.deploy.kit import write_deploy_kit
from ftedge.errors import ConfigError, ExportError, FtedgeError, RunError
from ftedge.render.model_card import artifact_metrics, write_model_card
from ftedge.formats.artifact import PARITY, Manifest, write_manifest
from ftedge.formats.owned import staged_folder
from ftedge.formats.run import (CONFIDENCE, FP32_ONNX, GATE, INT8_ONNX, RELIABILITY, RunFolder,
                               load_onnx, recreate_hint)
from ftedge.graph.fallback import float_layers_of
from ftedge.graph.edit import save as save_onnx
from ftedge.graph.metadata import read_metadata
from ftedge.io import atomic_write_json, memoised_reads, sha256_file
from ftedge.quant.onnx_export import ensure_fp32
from ftedge.runtime import LoadedModel, opened
from ftedge.runtime.kit import vnni_caveat
from ftedge.runtime.base import SourceModel, get_target
from ftedge.runtime.profiles import TargetProfile, check_precision, load_profile, parse_batch
from ftedge.runtime.pytorch.runner import load_run
from ftedge.runtime.unknown import (check_unknown_options, scored_graph, source_threshold,
                                   threshold_record, val_scores)
from ftedge.stages.export.parity import parity_check, pipeline_warning


@dataclass
class ExportResult:
    folder: Path
    manifest: dict

    @property
    def passed(self) -> bool | None:
        """True/False from the parity check; None when it could not run here (e.g. TensorRT)."""
        return (self.manifest.get("parity") or {}).get("passed")


def gate_record(run: RunFolder, kind: str, allow_failed: bool) -> dict:
    """The INT8 graph's accuracy gate as the manifest records it; raises when the graph has no
    gate of its own, or failed it and `allow_failed` is off."""
    gate = run.int8_gate(kind)
    record = {"file": f"{GATE[kind]}.json", "passed": gate["passed"],
              "drop_points": gate.get("drop_points"),
              "max_drop_points": gate.get("max_drop_points"),
              # the model card states the drop with its interval and what it was measured on
              **{k: gate.get(k) for k in ("drop_ci95_points", "n", "fp32_top1", "int8_top1")
                 if gate.get(k) is not None},
              "graph_sha256_checked": gate["graph_sha256"] is not None}
    if not gate["passed"] and not allow_failed:
        drop, budget = gate.get("drop_points"), gate.get("max_drop_points")
        numbers = (f" (drop {drop:+.2f} points, budget {budget:.2f})"
                   if isinstance(drop, (int, float)) and isinstance(budget, (int, float)) else "")
        raise ExportError(f"{run.int8_onnx(kind).name} failed its accuracy gate{numbers}: see "
                          f"{run.path / GATE[kind]}.md",
                          f"{recreate_hint(run.int8_onnx(kind))}; or pass "
                          "--allow-failed-gate to export it anyway (the manifest records the "
                          "failed gate)")
    return record


def pick_source(loaded: LoadedModel, precision: str, batch: int | None,
                *, int8_source: str, allow_failed_gate: bool = False,
                log=print) -> SourceModel:
    """The run's ONNX the artifact starts from: FP32 for fp32/fp16, the Q/DQ graph for int8
    (only one whose accuracy gate is its own and passed, unless `allow_failed_gate`; "auto"
    takes the QAT graph, else the PTQ graph)."""
    run, size = RunFolder(loaded.path), tuple(loaded.contract["input_size"])
    if precision != "int8":
        path = run.file(FP32_ONNX)
        ensure_fp32(loaded, path, log=log)  # remade when best.pt changed since
        return SourceModel(path, precision, "fp32", batch, size)
    kinds = ["qat", "ptq"] if int8_source == "auto" else [int8_source]
    refused: list[FtedgeError] = []
    for kind in kinds:
        path = run.int8_onnx(kind)
        if not path.is_file():
            continue
        layers = tuple(float_layers_of(path))  # a damaged graph is named as such first
        stale = run.stale_reason(path)
        if stale:  # its gate judged what an earlier checkpoint made
            refused.append(RunError(f"{path} is out of date: {stale}", recreate_hint(path)))
            continue
        try:
            gate = gate_record(run, kind, allow_failed_gate)
        except FtedgeError as e:
            refused.append(e)
            continue
        if refused:
            log(f"INT8 source: {path.name}, because {refused[0].message}")
        if not gate["passed"]:
            log(f"warning: {path.name} failed its accuracy gate; exported anyway "
                "(--allow-failed-gate), and its manifest says so")
        if not gate["graph_sha256_checked"]:
            log(f"warning: {gate['file']} predates gates that name their graph's sha256: it "
                f"cannot be tied to {path.name}")
        return SourceModel(path, precision, kind, batch, size, layers, gate)
    if refused:
        raise refused[0]
    raise RunError(f"{run.path} has no INT8 model ({' or '.join(INT8_ONNX[k] for k in kinds)})",
                   f"make one: ftedge tune --qat ..., or ftedge quantize {run.path}")


def default_out(run: Path, profile: TargetProfile, precision: str, *, batch: int | None) -> Path:
    suffix = "" if batch is None else f"-b{batch}"
    return run / "exports" / f"{profile.name}-{precision}{suffix}"


def _versions(target) -> dict:
    import onnx
    import torch

    from ftedge import __version__

    return {"ftedge": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            **target.versions()}


def graph_opset(path: Path) -> int:
    model = load_onnx(path, load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _manifest(loaded, profile, source, artifact, target, parity, opset,
               pixels: tuple[str, str], calibration: dict | None = None,
               unknown: dict | None = None) -> Manifest:
    meta = read_metadata(source.path)
    c, h, w = source.input_size
    return Manifest(
        input_format=pixels[0], input_layout=pixels[1],
        target=profile.name, runtime=profile.runtime, device=profile.device,
        precision=artifact.precision, artifact=artifact.file, built=artifact.built,
        input_name="input", output_name="logits",
        input_shape=["dynamic" if source.batch is None else source.batch,
                     *([h, w, c] if pixels[1] == "NHWC" else [c, h, w])],
        opset=opset, classes=list(loaded.classes), preprocessing=loaded.contract,
        model_name=loaded.model_name,
        source={"run": str(loaded.path.resolve()), "kind": source.kind,
                "onnx": source.path.name, "onnx_sha256": sha256_file(source.path),
                "checkpoint": meta.get("ftedge.checkpoint", loaded.checkpoint.name),
                "checkpoint_sha256": meta.get("ftedge.checkpoint_sha256"),
                **({"gate": source.gate} if source.gate else {})},
        calibration_sha256=meta.get("ftedge.calibration_sha256"), calibration=calibration,
        versions=_versions(target), profile=profile.to_dict(), parity=parity, files={},
        float_layers=list(source.float_layers),
        extra=artifact.extra, unknown=unknown, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def pixel_input(profile: TargetProfile, input_format: str | None,
                input_layout: str | None) -> tuple[str, str]:
    """(format, layout) of the artifact's input: the option, else the profile's."""
    fmt = input_format or profile.input_format
    layout = or_default(input_layout, DEFAULT_LAYOUT).upper()
    if fmt not in INPUT_FORMATS or layout not in INPUT_LAYOUTS:
        raise ConfigError(f"unknown input format {fmt!r} / layout {layout!r}",
                          f"--input-format: {', '.join(INPUT_FORMATS)}; --input-layout: "
                          f"{', '.join(INPUT_LAYOUTS)}")
    if fmt == "normalized" and layout != "NCHW":
        raise ConfigError("an NHWC input needs the normalisation in the graph",
                          "add --input-format uint8 (or float255)")
    target = get_target(profile.runtime)
    if fmt not in target.input_formats or layout not in target.input_layouts:
        raise ConfigError(f"{profile.name}: {target.input_note}", target.input_hint)
    return fmt, layout


def _pixel_source(source: SourceModel, contract: dict, pixels: tuple[str, str],
                  folder: Path) -> SourceModel:
    """The source graph with the normalisation as its first nodes, staged in `folder`."""
    from ftedge.graph.edit import save
    from ftedge.graph.normalize import prepend_normalization

    model = prepend_normalization(load_onnx(source.path), mean=contract["mean"],
                                  std=contract["std"], input_format=pixels[0], layout=pixels[1])
    path = save(model, folder / source.path.name)
    c, h, w = source.input_size
    size = (h, w, c) if pixels[1] == "NHWC" else (c, h, w)
    return dataclasses.replace(source, path=path, input_size=size)


@memoised_reads()  # each input hashed and parsed once per command
def export_run(run: str | Path, target: str, *, precision: str | None = None,
               batch: str | int | None = None, out: str | Path | None = None,
               force: bool = False, int8_source: str | None = None, threads: int | None = None,
               log=print, allow_failed_gate: bool = False, input_format: str | None = None,
               input_layout: str | None = None, unknown_score: str | None = None,
               unknown_tpr: float | None = None) -> ExportResult:
    """Export a tuned run for one target (a name in targets/ or a profile YAML file). An INT8
    artifact starts only from a graph whose own accuracy gate passed, unless
    `allow_failed_gate`. `input_format` (None: the profile's) uint8 or float255 makes the
    artifact take 8-bit RGB and normalise in its graph; `input_layout` NCHW or NHWC. Its
    graph gets an unknown score (`unknown_score`, "off" for none; None: config.UNKNOWN_SCORE)
    whose threshold accepts `unknown_tpr` of the val images."""
    score, tpr = check_unknown_options(unknown_score, unknown_tpr)
    profile = load_profile(target)
    pixels = pixel_input(profile, input_format, input_layout)
    precision = check_precision(precision, profile)
    batch_n = parse_batch(batch, profile)
    loaded = load_run(run)
    source = pick_source(loaded, precision, batch_n, int8_source=or_default(int8_source,
                                                                            INT8_SOURCE),
                         allow_failed_gate=allow_failed_gate, log=log)
    opset = graph_opset(source.path)
    if opset > profile.opset:
        raise ExportError(f"{source.path.name} is opset {opset}; target {profile.name} takes "
                          f"opset {profile.opset} at most",
                          f"re-export the run at opset {profile.opset} (qat.opset in the config)")
    tgt = get_target(profile.runtime)
    problems = tgt.preflight(profile)
    for p in problems:
        log(f"preflight {p}")
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ExportError(f"{profile.name} cannot be built here: "
                          + "; ".join(p.message for p in errors),
                          errors[0].hint or "see `ftedge targets show " + profile.name + "`")
    out = Path(out) if out else default_out(loaded.path, profile, precision, batch=batch_n)
    with staged_folder(out, "artifact", force=force, protect=[loaded.path],
                       later=tgt.built_later) as tmp, tempfile.TemporaryDirectory() as work:
        scored, facts = _with_unknown(loaded, source, score, unknown_score is not None, log)
        target_source = source
        if scored is not None:
            target_source = replace(source, path=Path(work) / source.path.name)
            save_onnx(scored, target_source.path)
        if pixels[0] == "normalized":
            artifact = tgt.export(target_source, profile, tmp)
        else:
            with tempfile.TemporaryDirectory(prefix=".pixels-", dir=tmp) as staging:
                artifact = tgt.export(_pixel_source(target_source, loaded.contract, pixels,
                                                    Path(staging)), profile, tmp)
        artifact.extra["run"] = str(loaded.path)
        caveat = vnni_caveat(profile.runtime, artifact.extra)
        if caveat:
            log(f"warning: {profile.name} {precision}: {caveat}")
        parity, val = parity_check(loaded, source, artifact, profile=profile, target=tgt,
                                   threads=threads, pixels=pixels)
        if profile.pipeline is not None:
            measured = parity.get(f"{profile.pipeline.name}_preprocessing") or {}
            warning = measured and pipeline_warning(profile.name, profile.pipeline, measured)
            if warning:
                log(f"warning: {warning}")
        atomic_write_json(tmp / PARITY, parity)
        calibration = fit_artifact_calibration(tmp, loaded, profile, precision=precision, val=val,
                                               log=log)
        unknown = None
        if scored is not None:
            record = None
            if artifact.built and pixels[0] == "normalized":
                with opened(tgt.runner(artifact, profile, threads)) as runner:
                    logits, scores, labels = val_scores(loaded, runner)
                if scores is not None:
                    record = threshold_record(scores, logits, labels, tpr=tpr,
                                              measured_on=f"the artifact in {profile.runtime}")
            if record is None:
                record = source_threshold(loaded, scored, tpr, why=(
                    "the artifact does not run here" if not artifact.built else
                    "the artifact takes 8-bit pixels" if pixels[0] != "normalized" else
                    "its runner gives no second output"))
            unknown = {**facts, **record}
        manifest = _manifest(loaded, profile, source, artifact, tgt, parity, opset, pixels,
                             calibration, unknown)
        # deploy/ (labels, standalone infer.py, Triton, DeepStream) is hashed with the rest
        write_deploy_kit(tmp, manifest.to_dict())
        sealed = write_manifest(tmp, manifest, tgt.built_later)
        # after the manifest (it states the sealed facts), and not among its hashed files:
        # bench rewrites its latency section (render/model_card.py)
        metrics = (artifact_metrics(val.logits, val.labels, loaded.classes, of=val.of)
                   if val is not None and val.artifact_ran else None)
        write_model_card(tmp, sealed, metrics, final=out)
    return ExportResult(out, sealed)


def _with_unknown(loaded, source: SourceModel, score: str | None, asked: bool, log):
    """(the source graph with its unknown score appended, facts), or (None, None) when off;
    a score that cannot be fitted (e.g. the run's images are gone) is an error when asked
    for, else a warning and no score."""
    if score is None:
        return None, None
    try:
        return scored_graph(loaded, source.path, score)
    except FtedgeError as e:
        if asked:
            raise
        log(f"warning: no unknown score in this artifact: {e.message}"
            + (f" ({e.hint})" if e.hint else "")
            + "; pass --unknown-score off to export without one and silence this")
        return None, None


def fit_artifact_calibration(folder: Path, loaded, profile: TargetProfile, *, precision: str,
                             val, log=print) -> dict | None:
    """The temperature fitted on the artifact's own val logits (the parity check's: no second
    pass), with calibration.json and reliability.png written into `folder`; None without val
    images (predict then uses T = 1 and says so)."""
    if val is None:
        log(f"warning: {profile.name} {precision}: no val images to fit a temperature on; "
            "probabilities use T = 1")
        return None
    record = calibration_record(val.logits, val.labels,
                                fitted_on=f"val split of {loaded.path.resolve()}: {val.of}")
    record["on_artifact"] = val.artifact_ran
    atomic_write_json(folder / CONFIDENCE, record)
    write_reliability_diagram(record, folder / RELIABILITY,
                              title=f"{profile.name} {precision}: {val.of}")
    log(f"{profile.name} {precision} {summary_line(record)}"
        + ("" if val.artifact_ran else f" [{val.of}]"))
    return record
