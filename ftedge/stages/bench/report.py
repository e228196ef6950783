"""Bench report rendering: report.md, plots, and merging several reports into one table.

The report.json schema and its validation live in formats/report.py.
"""

from __future__ import annotations

from pathlib import Path

from ftedge.formats.owned import staged_folder
from ftedge.formats.report import MERGED_SCHEMA, REPORT, REPORT_MD, load_report, validate_report
from ftedge.formats.run import RELIABILITY
from ftedge.io import atomic_save_figure, atomic_write_json, atomic_write_text, memoised_reads

STATUS = {"ok": "ok", "gate_failed": "GATE FAILED", "error": "ERROR (did not run)"}
COLUMNS = ["Device", "Artifact", "Target", "Precision", "Status", "Size MB", "Top-1", "Δ vs FP32",
           "p50 ms", "p99 ms", "img/s", "mJ/img"]


# Kernel names (ONNX Runtime) and runtime precisions (OpenVINO) that mean a float convolution.
FLOAT_KERNELS = {"Conv", "FusedConv", "NchwcConv", "f32", "f16", "bf16"}


def _fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _folder(a: dict) -> str:
    """The artifact's folder name: two artifacts of one target and precision (an all-INT8
    graph and its float-fallback twin, say) stay apart in every table and plot."""
    return Path(a.get("artifact") or "?").name


def _name(a: dict) -> str:
    return _folder(a).replace("|", "\\|")  # Markdown-safe


def _who(a: dict) -> str:
    return f"{_name(a)} ({a['target']} {a['precision']})"


def artifact_problem(a: dict) -> str | None:
    """Why an artifact did not run, or why its gate compares it with another model (its run
    changed since export); None for neither. In report.md and on the console alike."""
    if a["status"] == "error":
        return f"{_who(a)}: {a['error']}"
    note = (a.get("accuracy") or {}).get("note") if a.get("stale") else None
    return f"{_who(a)}: {note}" if note else None


def table_rows(report: dict) -> list[list[str]]:
    """One row per artifact; latency columns at batch 1 (p50/p99) and best throughput."""
    rows = []
    host = report["environment"].get("hostname", "?")
    for a in report["artifacts"]:
        acc, lat = a.get("accuracy", {}), a.get("latency", [])
        b1 = next((r for r in lat if r["batch"] == 1), lat[0] if lat else {})
        best = max((r["images_per_s"] for r in lat), default=None)
        drop = acc.get("drop_points")
        rows.append([host, _name(a), a["target"], a["precision"], STATUS[a["status"]],
                     _fmt(a.get("size_mb"), ".2f"), _fmt(acc.get("top1"), ".4f"),
                     "n/a" if drop is None else f"{-round(drop, 2) + 0.0:+.2f} pt",
                     _fmt(b1.get("p50_ms"), ".2f") + ("" if b1.get("batch", 1) == 1 else
                                                      f" (b{b1['batch']})"),
                     _fmt(b1.get("p99_ms"), ".2f"), _fmt(best, ".1f"),
                     _fmt((a.get("energy") or {}).get("mj_per_image"), ".2f")])
    return rows


def table_lines(reports: list[dict], with_device: bool = True) -> list[str]:
    """The comparison table in Markdown, one row per artifact of every report."""
    first = 0 if with_device else 1
    lines = ["| " + " | ".join(COLUMNS[first:]) + " |", "|" + "---|" * (len(COLUMNS) - first)]
    return lines + ["| " + " | ".join(r[first:]) + " |" for rep in reports
                    for r in table_rows(rep)]


def markdown(report: dict, title: str = "ftedge bench") -> str:
    env = report["environment"]
    lines = [f"# {title}", "",
             f"{env.get('cpu')} ({env.get('cpu_count')} CPUs), threads {env.get('threads')}, "
             f"{env.get('platform')}; timer overhead {report['timer_overhead_us']:.2f} µs/call; "
             f"batches {report['options']['batches']}; p50/p99 at batch 1, img/s at the best batch.",
             "", *table_lines([report])]
    energy = {(a.get("energy") or {}).get("note") for a in report["artifacts"]} - {None}
    if energy:
        lines += ["", "Energy: " + "; ".join(sorted(energy)) + "."]
    jetson = env.get("jetson")
    if jetson:
        lines += ["", f"Jetson: nvpmodel {jetson['nvpmodel']}, jetson_clocks {jetson['jetson_clocks']}"]
    for a in report["artifacts"]:
        kernels = a.get("conv_kernels")
        if kernels:
            floats = sum(v for k, v in kernels.items() if k in FLOAT_KERNELS)
            lines += ["", f"- {_who(a)}: the runtime executes its "
                          "convolutions as " + ", ".join(f"{k} {v}" for k, v in kernels.items())
                      + (f" ({floats} in float)" if a["precision"] == "int8" and floats else "")]
        if a.get("float_layers"):
            lines += ["", f"- {_who(a)}: {len(a['float_layers'])} layer(s) "
                          f"kept in float by the INT8 fallback ({', '.join(a['float_layers'])}); "
                          "their latency cost is in this artifact's numbers"]
        if a.get("cpu_note"):
            lines += ["", f"- {_who(a)}: {a['cpu_note']}"]
        emulated = (a.get("accuracy") or {}).get("device_pipeline")
        if emulated:
            lines += ["", f"- {_who(a)}: top-1 {emulated['top1_exact_contract']:.4f} under the "
                          f"exact contract, {emulated['top1_emulated']:.4f} as "
                          f"{emulated['pipeline']} preprocesses ({emulated['geometry']}, "
                          f"emulated: {emulated['drop_points']:+.2f} points; the emulation "
                          "cannot reproduce the scaler's own arithmetic, the hardware decoder "
                          "or NV12 colour conversion)"]
        lines += ["", f"- {line}"] if (line := artifact_problem(a)) else []
        if a["status"] == "gate_failed":
            acc = a["accuracy"]
            lines += ["", f"- {_who(a)}: top-1 drop {acc['drop_points']:.2f} "
                          f"points > budget {acc['max_drop_points']:.2f}"]
    lines += calibration_lines(report)
    lines += ["", "Latency per batch (ms per call, model only) and end to end (decode + "
                  "preprocess + infer, one image):", "",
              "| Artifact | Target | Precision | Batch | p50 | p90 | p99 | mean ± std | img/s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for a in report["artifacts"]:
        for r in a.get("latency", []) + ([dict(a["end_to_end"], batch="e2e")]
                                          if a.get("end_to_end") else []):
            lines.append(f"| {_name(a)} | {a['target']} | {a['precision']} | {r['batch']} "
                         f"| {r['p50_ms']:.2f} "
                         f"| {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['mean_ms']:.2f} ± "
                         f"{r['std_ms']:.2f} | {r['images_per_s']:.1f} |")
    return "\n".join(lines + _camera_lines(report)) + "\n"


def _camera_lines(report: dict) -> list[str]:
    """End to end on camera-size inputs (bench/camera.py) beside the model alone."""
    arts = [a for a in report["artifacts"] if a.get("end_to_end_camera")]
    if not arts:
        return []
    cam = arts[0]["end_to_end_camera"]
    # a report written before bench recorded the contract has none to name
    contracts = "; ".join(f"{_name(a)}: {a['end_to_end_camera']['contract']}" for a in arts
                          if a["end_to_end_camera"].get("contract"))
    lines = ["", f"End to end on camera-size inputs ({cam.get('source', '')}): latency of one "
             "input at a time (decode + preprocess + infer, batch 1) and throughput with "
             f"decoding on {cam.get('workers')} thread(s) overlapping inference in batches of "
             f"{cam['batch']}; model share: the model alone's time over the whole"
             + (f" (each decodes and resizes as its contract says: {contracts})" if contracts
                else "") + ":", "",
             "| Artifact | Target | Precision | Input | p50 ms | model share | img/s "
             "| model-only img/s | model share |", "|---|---|---|---|---|---|---|---|---|"]
    for a in arts:
        c = a["end_to_end_camera"]
        for r in c["inputs"]:
            lines.append(f"| {_name(a)} | {a['target']} | {a['precision']} | {r['input']} "
                         f"| {r['latency_p50_ms']:.1f} | {100 * r['latency_model_share']:.0f}% "
                         f"| {r['images_per_s']:.1f} | {c['model_only']['images_per_s']:.1f} "
                         f"| {100 * r['throughput_model_share']:.0f}% |")
    return lines


def calibration_lines(report: dict) -> list[str]:
    """The calibration table: each artifact's T from its manifest, ECE (15 bins, top-1) and
    NLL before and after; held-out (cross-fitted at export) where bench scored the fit's own
    val images."""
    rows = [a for a in report["artifacts"] if a.get("calibration")]
    if not rows:
        return []
    lines = ["", "Calibrated confidence (softmax(logits / T), T from each manifest; ECE over 15 "
                 "equal-width top-1 confidence bins):", "",
             "| Artifact | Target | Precision | T | ECE before | ECE after | NLL before | "
             "NLL after | Images |", "|---|---|---|---|---|---|---|---|---|"]
    for a in rows:
        c = c_shown = a["calibration"]
        where = f"{c['n']} {c.get('images', '')}"
        if c.get("in_sample"):  # the fit's own images: show the held-out numbers
            c_shown, where = c["heldout"], f"{c['n']} val, held-out (cross-fitted)"
        t = f"{c['temperature']:.3f}" if c["calibrated"] else "1 (none recorded)"
        lines.append(f"| {_name(a)} | {a['target']} | {a['precision']} | {t} "
                     f"| {c_shown['ece_before']:.4f} | {c_shown['ece_after']:.4f} "
                     f"| {c_shown['nll_before']:.4f} | {c_shown['nll_after']:.4f} | {where} |")
    return lines


def plot_reliability(report: dict, path: Path) -> Path:
    """One reliability diagram per artifact (calibrated, on the bench images) in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [a for a in report["artifacts"] if a.get("calibration")]
    fig, axes = plt.subplots(1, max(len(rows), 1), figsize=(3.2 * max(len(rows), 1), 3.4),
                             squeeze=False)
    for ax, a in zip(axes[0], rows):
        c = a["calibration"]
        full = [b for b in c["bins"]["after"] if b["n"]]
        ax.bar([b["lo"] for b in full], [b["accuracy"] for b in full], width=1 / len(
            c["bins"]["after"]), align="edge", edgecolor="black")
        ax.plot([0, 1], [0, 1], "--", color="gray")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", title=(
            f"{_folder(a)}\nT {c['temperature']:.3f}, ECE {c['ece_after']:.3f}"))
        ax.title.set_fontsize(8)
    axes[0][0].set_ylabel("accuracy")
    fig.tight_layout()
    try:
        return atomic_save_figure(fig, path)
    finally:
        plt.close(fig)


def _label(a: dict, host: str | None = None) -> str:
    return f"{host + ': ' if host else ''}{_folder(a)} ({a['target']} {a['precision']})"


def plot_latency(report: dict, path: Path, latency_samples: dict | None = None) -> Path:
    """Latency distribution per artifact at batch 1 (box from the percentiles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arts = [a for a in report["artifacts"] if a.get("latency")]
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(len(arts), 2) + 1.5))
    stats = []
    for a in arts:
        r = next((r for r in a["latency"] if r["batch"] == 1), a["latency"][0])
        stats.append({"label": f"{_label(a)} (b{r['batch']})", "med": r["p50_ms"],
                      "q1": r["min_ms"], "q3": r["p90_ms"], "whislo": r["min_ms"],
                      "whishi": r["p99_ms"], "fliers": [r["max_ms"]]})
    if stats:
        import inspect

        horizontal = ({"orientation": "horizontal"}
                      if "orientation" in inspect.signature(ax.bxp).parameters else {"vert": False})
        ax.bxp(stats, showfliers=True, **horizontal)
    ax.set_xlabel("latency per call, ms (box: min..p90, median line, whisker to p99, dot: max)")
    ax.set_title("Latency distribution (model only)")
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both lower latency and higher accuracy."""
    front = []
    for i, (lat, acc) in enumerate(points):
        if not any((l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc)
                   for j, (l2, a2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(reports: list[dict], path: Path) -> Path:
    """Top-1 against batch-1 p50 latency across artifacts (and devices), Pareto front drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts, labels = [], []
    multi = len(reports) > 1
    for rep in reports:
        host = rep["environment"].get("hostname") if multi else None
        for a in rep["artifacts"]:
            if a["status"] == "error" or not a.get("latency"):
                continue
            r = next((r for r in a["latency"] if r["batch"] == 1), a["latency"][0])
            pts.append((r["p50_ms_per_image"], a["accuracy"]["top1"]))
            labels.append(_label(a, host))
    fig, ax = plt.subplots(figsize=(7, 5))
    for (x, y), lab in zip(pts, labels):
        ax.scatter(x, y)
        ax.annotate(lab, (x, y), fontsize=7, xytext=(4, 2), textcoords="offset points")
    front = pareto_front(pts)
    if len(front) > 1:
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k--", lw=1,
                label="Pareto front")
        ax.legend()
    ax.set_xlabel("p50 latency per image at batch 1, ms")
    ax.set_ylabel("top-1")
    ax.set_title("Accuracy against latency")
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def write_report(report: dict, out: Path, force: bool = False) -> dict[str, Path]:
    """The report folder, whole or not at all: report.json, report.md and the two plots."""
    validate_report(report, REPORT)  # what bench writes is what report and merges can read
    with staged_folder(out, "bench-report", force=force) as tmp:
        atomic_write_json(tmp / REPORT, report)
        atomic_write_text(tmp / REPORT_MD, markdown(report))
        plot_latency(report, tmp / "latency.png")
        plot_pareto([report], tmp / "accuracy_vs_latency.png")
        plot_reliability(report, tmp / RELIABILITY)
    return {"json": out / REPORT, "md": out / REPORT_MD,
            "latency_png": out / "latency.png", "pareto_png": out / "accuracy_vs_latency.png",
            "reliability_png": out / RELIABILITY}


@memoised_reads()  # each input hashed and parsed once per command
def merge_reports(folders: list[str | Path], out: Path, force: bool = False) -> dict[str, Path]:
    """`ftedge report`: several bench folders (e.g. one copied back from a Jetson) side by side."""
    reports = [load_report(f) for f in folders]
    lines = ["# ftedge report", "", f"{len(reports)} bench runs: "
             + "; ".join(f"{r['environment'].get('hostname')} ({r['environment'].get('cpu')}, "
                         f"{r.get('created')})" for r in reports), "", *table_lines(reports)]
    merged = {"schema": MERGED_SCHEMA, "reports": reports}
    with staged_folder(out, "merged-report", force=force,
                       protect=[Path(f) for f in folders]) as tmp:
        atomic_write_json(tmp / REPORT, merged)
        atomic_write_text(tmp / REPORT_MD, "\n".join(lines) + "\n")
        plot_pareto(reports, tmp / "accuracy_vs_latency.png")
    return {"json": out / REPORT, "md": out / REPORT_MD,
            "pareto_png": out / "accuracy_vs_latency.png"}
