"""The model card of an artifact (model_card.md beside its manifest.json), as a pure function.

`render_model_card(facts)` takes what export knows (the sealed manifest with its parity,
gate, calibration and unknown records; the run's split counts and data digest; the
artifact's own per-class metrics on val) and, where a bench measured it, the latency; it
returns Markdown. Every fact that is missing is said to be missing, with the command that
produces it. The latency section sits between two HTML comments so `ftedge bench` can
replace it alone (`splice_latency`) without touching the rest.
"""

from __future__ import annotations

import math
import re

from ftedge.formats.artifact import MANIFEST, PARITY
from ftedge.formats.run import GATE

CARD = "model_card.md"
LATENCY_BEGIN = "<!-- ftedge:latency:begin -->"
LATENCY_END = "<!-- ftedge:latency:end -->"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")  # what can start markup inside a line


def md(text) -> str:
    """A string from the user's data (class name, path) as literal Markdown text: special
    characters backslash-escaped, line breaks as spaces, so it cannot open a link, a table
    cell or raw HTML."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def code(text) -> str:
    """A string shown as inline code (paths, commands): backticks cannot close it early."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _num(v, spec: str = ".4f") -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "n/a"
    return format(v, spec)


def _missing(what: str, command: str) -> str:
    return f"_Missing: {what}._ Produce it with: {code(command)}"


def _header(m: dict) -> list[str]:
    source = m.get("source", {})
    shape = m.get("input_shape", [])
    lines = [f"# Model card: {code(m.get('model_name', '?'))} for {md(m.get('target', '?'))} "
             f"({md(m.get('precision', '?'))})", "",
             f"Written by ftedge {md(m.get('versions', {}).get('ftedge', '?'))} at export "
             f"({md(m.get('created', '?'))}) from this folder's `{MANIFEST}` and "
             f"`{PARITY}`, the run's accuracy gate and split; the latency section is "
             "rewritten by `ftedge bench` while this file is as ftedge wrote it.", "",
             "## Model", "",
             f"- Network: {code(m.get('model_name', '?'))}; artifact "
             f"{code(m.get('artifact', '?'))} "
             f"for {md(m.get('runtime', '?'))} on {md(m.get('device', '?'))}, "
             f"{md(m.get('precision', '?'))}; input {code(shape)} (NCHW), opset "
             f"{m.get('opset', '?')}",
             f"- Built from {code(source.get('onnx', '?'))} (sha256 "
             f"{code(str(source.get('onnx_sha256', '?'))[:16])}…, {md(source.get('kind', '?'))}) "
             f"of run {code(source.get('run', '?'))}, checkpoint "
             f"{code(source.get('checkpoint', '?'))}"]
    if not m.get("built", True):
        lines.append("- The TensorRT engine is built on the device by the first `ftedge export` "
                     "or `ftedge eval` there; numbers below that need it are missing until then")
    if m.get("float_layers"):
        lines.append(f"- {len(m['float_layers'])} layer(s) kept in float by the INT8 fallback: "
                     + ", ".join(code(x) for x in m["float_layers"]))
    return lines


def _data(m: dict, data: dict | None) -> list[str]:
    lines = ["", "## Classes and data", ""]
    classes = m.get("classes", [])
    if not data:
        return lines + [f"{len(classes)} classes: " + ", ".join(md(c) for c in classes), "",
                        _missing("the run's split (image counts, data hash)",
                                 f"ftedge export {m.get('source', {}).get('run', 'RUN')} ... "
                                 "with the run folder present")]
    counts = data.get("counts", {})
    splits = [s for s in ("train", "val", "test") if counts.get(s) is not None]
    lines += ["| class | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for i, c in enumerate(classes):
        lines.append(f"| {md(c)} | " + " | ".join(str(counts[s][i]) for s in splits) + " |")
    lines.append("| **total** | " + " | ".join(str(sum(counts[s])) for s in splits) + " |")
    split = data.get("split", {})
    how = ("the dataset's own train/val folders" if split.get("source") == "folders" else
           f"a stratified split of one folder (val fraction "
           f"{_num(split.get('val_fraction'), '.2f')}, seed {split.get('seed', '?')})")
    lines += ["", f"- Split: {how}; data root {code(split.get('root', '?'))}",
              f"- Data sha256: {code(data.get('sha256', '?'))} ({md(data.get('covers', ''))})"]
    return lines


def _metrics(m: dict, metrics: dict | None) -> list[str]:
    lines = ["", "## Accuracy on the val split", ""]
    parity = m.get("parity", {})
    if parity.get("status") == "checked":
        verdict = "passed" if parity.get("passed") else "FAILED"
        lines.append(f"- Parity with {md(parity.get('reference', '?'))}: {verdict}, top-1 "
                     f"agreement {_num(parity.get('top1_agreement'))} on {parity.get('n', '?')} "
                     f"images; artifact top-1 {_num(parity.get('artifact_top1'))}")
    else:
        lines.append(f"- Parity {md(parity.get('status', 'not checked'))}: "
                     f"{md(parity.get('reason', 'no parity record'))}")
    if not metrics:
        run = m.get("source", {}).get("run", "RUN")
        return lines + ["", _missing("per-class metrics of this artifact (it did not run on "
                                     "the exporting machine, or the run had no val split)",
                                     f"ftedge eval ARTIFACT_FOLDER (on the device), or "
                                     f"ftedge bench ARTIFACT_FOLDER; run {run}")]
    lines += [f"- Top-1 {_num(metrics.get('top1'))} on {metrics.get('n', '?')} val images, "
              f"measured on {md(metrics.get('of', 'the artifact'))}", "",
              "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for c, r in metrics.get("per_class", {}).items():
        lines.append(f"| {md(c)} | {_num(r.get('precision'), '.3f')} | "
                     f"{_num(r.get('recall'), '.3f')} | {_num(r.get('f1'), '.3f')} | "
                     f"{r.get('support', '?')} |")
    return lines


def _gate(m: dict) -> list[str]:
    lines = ["", "## INT8 drop", ""]
    if m.get("precision") != "int8":
        return lines + [f"Not an INT8 artifact ({md(m.get('precision', '?'))}): no INT8 gate."]
    gate = m.get("source", {}).get("gate")
    if not gate:
        return lines + [_missing("the INT8 accuracy gate of the source graph",
                                 f"ftedge quantize {m.get('source', {}).get('run', 'RUN')}")]
    ci = gate.get("drop_ci95_points")
    interval = (f", 95% interval {_num(ci[0], '+.2f')} to {_num(ci[1], '+.2f')} points"
                if isinstance(ci, list) and len(ci) == 2 else
                " (no interval recorded: a gate from an older ftedge)")
    verdict = "passed" if gate.get("passed") else "FAILED (exported with --allow-failed-gate)"
    lines.append(f"Top-1 drop of the INT8 graph against FP32 on the val split "
                 f"({gate.get('n', '?')} images): {_num(gate.get('drop_points'), '+.2f')} points"
                 f"{interval}; budget {_num(gate.get('max_drop_points'), '.2f')}: {verdict} "
                 f"({code(gate.get('file', GATE['qat'] + '.json'))}).")
    if isinstance(gate.get("fp32_top1"), (int, float)):
        lines.append(f"FP32 top-1 {_num(gate.get('fp32_top1'))}, INT8 graph top-1 "
                     f"{_num(gate.get('int8_top1'))}.")
    return lines


def _calibration(m: dict) -> list[str]:
    lines = ["", "## Confidence calibration", ""]
    cal = m.get("calibration")
    if not cal:
        return lines + ["Not calibrated: probabilities are the softmax of the logits (T = 1).",
                        "", _missing("a temperature fitted on this artifact's own logits",
                                     f"ftedge export {m.get('source', {}).get('run', 'RUN')} "
                                     f"--target {m.get('target', 'TARGET')} --precision "
                                     f"{m.get('precision', 'PRECISION')} --force")]
    bound = (" It sits at the end of the searched range: the val images cannot pin it down."
             if cal.get("at_bound") else "")
    return lines + [
        f"Temperature T = {_num(cal.get('temperature'), '.3f')} (softmax(logits / T)), fitted "
        f"on {md(cal.get('fitted_on', '?'))}.{bound}",
        "", "| | before (T = 1) | after |", "|---|---:|---:|",
        f"| ECE ({cal.get('ece_bins', 15)} bins) | {_num(cal.get('ece_before'))} | "
        f"{_num(cal.get('ece_after'))} |",
        f"| NLL | {_num(cal.get('nll_before'))} | {_num(cal.get('nll_after'))} |", "",
        f"Measured on {cal.get('n', '?')} images: {md(cal.get('heldout', ''))}."]


def _unknown(m: dict) -> list[str]:
    lines = ["", "## Unknown rejection", ""]
    unk = m.get("unknown")
    folder = "ARTIFACT_FOLDER"
    if not unk:
        return lines + [_missing("an unknown score and threshold in this artifact (an image "
                                 "of none of the classes gets one of them)",
                                 f"ftedge export {m.get('source', {}).get('run', 'RUN')} "
                                 f"--target {m.get('target', 'TARGET')} --precision "
                                 f"{m.get('precision', 'PRECISION')} --force")]
    lines.append(f"Output {code(unk.get('output', 'unknown_score'))} is an out-of-distribution "
                 f"score ({md(unk.get('score', '?'))}, higher is more unknown): an image scoring "
                 f"above {_num(unk.get('threshold'), '.6g')} is of none of the classes.")
    val = unk.get("val") if isinstance(unk.get("val"), dict) else {}
    lines.append(f"The threshold was chosen to accept {_num(unk.get('target_tpr'), '.0%')} of "
                 f"the val images; measured on {md(unk.get('measured_on', '?'))}: it accepts "
                 f"{_num(val.get('tpr'), '.1%')} of {val.get('n', '?')} val images, whose top-1 "
                 f"is {_num(val.get('top1_accepted'))} (all: {_num(val.get('top1_all'))}).")
    lines += ["", _missing("its rates on images of none of the classes (AUROC, FPR at 95% TPR, "
                           "unknowns accepted)", f"ftedge eval {folder} --unknown DIR")]
    return lines


def latency_section(latency: dict | None, bench_hint: str = "ftedge bench ARTIFACT_FOLDER"
                    ) -> str:
    """The latency section, between its markers: the last bench of this artifact, or a line
    saying it was not benchmarked yet and how to do it."""
    lines = [LATENCY_BEGIN, "## Latency", ""]
    if not latency:
        lines.append(f"Not benchmarked yet: {code(bench_hint)}")
    else:
        lines.append(f"Measured by `ftedge bench` on {md(latency.get('hostname', '?'))} "
                     f"({md(latency.get('cpu', '?'))}, threads "
                     f"{md(latency.get('threads') or 'runtime default')}) at "
                     f"{md(latency.get('created', '?'))}; report "
                     f"{code(latency.get('report', '?'))}. "
                     "Model only, per call; other machines differ.")
        lines += ["", "| batch | p50 ms | p99 ms | images/s |", "|---:|---:|---:|---:|"]
        for r in latency.get("rows", []):
            lines.append(f"| {r.get('batch')} | {_num(r.get('p50_ms'), '.2f')} | "
                         f"{_num(r.get('p99_ms'), '.2f')} | {_num(r.get('images_per_s'), '.1f')} |")
        e2e = latency.get("end_to_end")
        if e2e:
            lines += ["", f"End to end (decode + preprocess + infer, one image): p50 "
                          f"{_num(e2e.get('p50_ms'), '.2f')} ms, p99 "
                          f"{_num(e2e.get('p99_ms'), '.2f')} ms."]
    return "\n".join(lines + ["", LATENCY_END])


def _versions(m: dict) -> list[str]:
    v = m.get("versions", {})
    return ["", "## Versions", "", "| package | version |", "|---|---|",
            *(f"| {md(k)} | {md(val)} |" for k, val in v.items())]


def known_limits(m: dict, vnni: str | None) -> list[str]:
    """What a user deploying this artifact must know: each a sentence."""
    out = []
    contract = m.get("preprocessing", {})
    size = "x".join(str(v) for v in (contract.get("input_size") or [])[-2:])
    out.append(f"Inputs must be preprocessed as the contract says (resize "
               f"{contract.get('resize')}, "
               f"centre crop {size}, mean {contract.get('mean')}, std "
               f"{contract.get('std')}, {contract.get('channel_order', 'RGB')}): "
               "`deploy/README.md` has the exact arithmetic; an INT8 model flips on differences "
               "of one rounding.")
    ds = m.get("parity", {}).get("deepstream_preprocessing")
    if isinstance(ds, dict):
        out.append(f"DeepStream's nvinfer cannot resize + centre crop, nor use per-channel std: "
                   f"with its preprocessing the graph's val top-1 is "
                   f"{_num(ds.get('top1_deepstream_style'))} against "
                   f"{_num(ds.get('top1_exact_contract'))} with the exact contract "
                   f"({ds.get('n', '?')} images).")
    if vnni:
        out.append(vnni[0].upper() + vnni[1:] + ".")
    gate = m.get("source", {}).get("gate") or {}
    n = gate.get("n") or m.get("parity", {}).get("n")
    if isinstance(n, int) and n:
        out.append(f"Every accuracy number here comes from {n} val images: one image is "
                   f"{100 / n:.2f} points.")
    cal = m.get("calibration") or {}
    if cal.get("at_bound"):
        out.append("The temperature could not be pinned down on val (at the end of its range).")
    if not m.get("unknown"):
        out.append("It has no way to say \"none of these\": an image of another class gets "
                   "one of its classes.")
    return out


def render_model_card(facts: dict) -> str:
    """The model card as Markdown. `facts`: manifest (the sealed manifest dict), data (counts
    per split, sha256, covers, split) or None, metrics (n, top1, per_class, of) or None,
    latency (see `latency_section`) or None, vnni (the caveat sentence) or None."""
    m = facts["manifest"]
    hint = f"ftedge bench {facts.get('folder', 'ARTIFACT_FOLDER')}"
    limits = known_limits(m, facts.get("vnni"))
    lines = [*_header(m), *_data(m, facts.get("data")), *_metrics(m, facts.get("metrics")),
             *_gate(m), *_calibration(m), *_unknown(m), "",
             latency_section(facts.get("latency"), hint), *_versions(m),
             "", "## Known limits", "", *(f"- {x}" for x in limits)]
    return "\n".join(lines) + "\n"


def splice_latency(card: str, section: str) -> str | None:
    """`card` with its latency section replaced by `section`; None when the markers are not
    there exactly once each (a card edited by hand: leave it alone)."""
    if card.count(LATENCY_BEGIN) != 1 or card.count(LATENCY_END) != 1:
        return None
    head, rest = card.split(LATENCY_BEGIN)
    _, tail = rest.split(LATENCY_END)
    return head + section + tail


def latency_from_report(report: dict, row: dict, report_path: str) -> dict:
    """The latency facts of one artifact's row in a bench report (formats/report.py)."""
    env = report.get("environment", {})
    return {"hostname": env.get("hostname"), "cpu": env.get("cpu"),
            "threads": env.get("threads"), "created": report.get("created"),
            "report": report_path, "rows": row.get("latency", []),
            "end_to_end": row.get("end_to_end")}
