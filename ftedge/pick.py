"""Export and bench together (layer 8, like pipeline.py: the two stages never import each
other). Precision picked by measurement: export every precision a target has, bench each on
this device, keep the fastest one whose accuracy drop fits the budget (`--pick`, `--precision
auto`); and `bench --target`'s export of the artifacts it lacks.

The chosen artifact is copied whole into RUN/exports/<target>-auto/ (its manifest and deploy kit
unchanged, so it loads and verifies like any artifact) with pick.json and pick.md: every
candidate's numbers and why it was or was not chosen.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ftedge.config import MAX_DROP, or_default, require_finite
from ftedge.console import console, results
from ftedge.errors import GATE_FAILED, FtedgeError
from ftedge.formats.artifact import MANIFEST, read_manifest_dict, stale_reason
from ftedge.formats.owned import MARKER, check_replaceable, staged_folder
from ftedge.formats.run import RunFolder
from ftedge.io import atomic_write_json, atomic_write_text
from ftedge.runtime.profiles import load_profile, parse_batch
from ftedge.stages.bench.bench import BenchOptions, bench
from ftedge.stages.export.exporter import default_out, export_run

# the pick is on the model alone: camera-size inputs end to end would only add minutes
PICK_OPTIONS = BenchOptions(batches=(1, 8), warmup=10, runs=100, e2e_images=20, camera_images=0)


@dataclass
class PickResult:
    folder: Path | None  # RUN/exports/<target>-auto, None when nothing fitted the budget
    table: list[dict]
    chosen: dict | None

    @property
    def exit_code(self) -> int:
        return 0 if self.chosen else GATE_FAILED


def candidates(run: Path, target: str) -> list[tuple[str, str]]:
    """(precision, int8 source) pairs to try: every precision of the profile; for INT8 every
    Q/DQ graph the run holds (QAT, PTQ)."""
    profile = load_profile(target)
    folder = RunFolder(run)
    out = []
    for precision in profile.precisions:
        if precision != "int8":
            out.append((precision, "auto"))
            continue
        out += [("int8", kind) for kind in ("qat", "ptq") if folder.int8_onnx(kind).is_file()]
    return out


def _artifact_for(run: Path, target: str, precision: str, source: str) -> Path:
    """An artifact of this candidate: the existing one when it verifies, else a new export."""
    profile = load_profile(target)
    batch = parse_batch(None, profile)
    base = default_out(run, profile, precision, batch=batch)
    folder = base if source in ("auto", "qat") else base.with_name(base.name + f"-{source}")
    if (folder / MANIFEST).is_file():
        try:
            m = read_manifest_dict(folder)
            stale = stale_reason(folder)  # exported before the run's checkpoint changed?
            if stale:
                console.print(f"{folder} is out of date ({stale})", soft_wrap=True)
            elif source == "auto" or m["source"]["kind"] == source:
                return folder
        except FtedgeError:
            pass
    console.print(f"exporting {target} {precision}" + ("" if source == "auto" else
                                                         f" ({source.upper()} graph)"))
    # every INT8 graph is a candidate: its accuracy is measured here against this budget
    return export_run(run, target, precision=precision, out=folder, int8_source=source, force=True,
                      log=lambda m: console.print(m, soft_wrap=True),
                      allow_failed_gate=True).folder


def _row(art: dict, source: str, max_drop: float) -> dict:
    acc, lat = art.get("accuracy") or {}, art.get("latency") or []
    b1 = min(lat, key=lambda r: r["batch"]) if lat else {}
    drop = acc.get("drop_points")
    fits = art["status"] == "ok" and drop is not None and drop <= max_drop
    why = ("fits the budget" if fits else art.get("error") or
           ("no FP32 reference here" if drop is None else
            f"drop {drop:+.2f} points > budget {max_drop:.2f}"))
    return {"artifact": art["artifact"], "precision": art["precision"], "int8_source": source,
            "status": art["status"], "top1": acc.get("top1"), "drop_points": drop,
            "p50_ms": b1.get("p50_ms"), "batch": b1.get("batch"),
            "images_per_s": max((r["images_per_s"] for r in lat), default=None),
            "fits": fits, "why": why, "float_layers": len(art.get("float_layers") or [])}


def pick_table_md(table: list[dict], chosen: dict | None, max_drop: float) -> str:
    lines = [f"# Precision picked by measurement (budget: top-1 drop <= {max_drop:.2f} points)",
             "", "| Precision | INT8 graph | Status | Top-1 | Δ vs FP32 | p50 ms (b1) | img/s | "
             "Chosen | Why |", "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        fmt = (lambda v, s: "n/a" if v is None else format(v, s))
        lines.append(f"| {r['precision']} | {r['int8_source'] if r['precision'] == 'int8' else '-'}"
                     f" | {r['status']} | {fmt(r['top1'], '.4f')} | "
                     f"{'n/a' if r['drop_points'] is None else format(-r['drop_points'] + 0.0, '+.2f')}"
                     f" | {fmt(r['p50_ms'], '.2f')} | {fmt(r['images_per_s'], '.1f')} | "
                     f"{'**yes**' if r is chosen else ''} | {r['why']} |")
    lines += ["", ("Chosen: the fastest (lowest p50 latency at the smallest batch) of those "
                   "within the budget." if chosen else "Nothing fits the budget: no artifact "
                   "was chosen; raise --max-drop or train with --qat.")]
    return "\n".join(lines) + "\n"


def pick_precision(run: str | Path, target: str, *, max_drop: float | None = None,
                   data: str | Path | None = None, opts: BenchOptions = PICK_OPTIONS,
                   force: bool = False, out: str | Path | None = None) -> PickResult:
    """Export and bench every precision of `target` for `run`; copy the fastest within budget.

    Args:
        run: a run folder written by `ftedge tune`.
        target: a profile name or YAML file.
        max_drop: accuracy budget, top-1 points against the FP32 PyTorch model (None:
            config.MAX_DROP).
        out: where the chosen artifact goes (default RUN/exports/<target>-auto).
        force: replace an earlier RUN/exports/<target>-auto folder (only one ftedge wrote).
    """
    max_drop = or_default(max_drop, MAX_DROP)
    require_finite("--max-drop", max_drop)
    run = RunFolder.open(run).path
    profile = load_profile(target)
    out = Path(out) if out else run / "exports" / f"{profile.name}-auto"
    check_replaceable(out, "artifact", force, protect=[run])  # before the long part
    pairs = candidates(run, target)
    folders = [_artifact_for(run, target, p, s) for p, s in pairs]
    report = bench(folders, data=data, opts=BenchOptions(**{**opts.__dict__, "max_drop": max_drop}),
                   progress=lambda m: console.print(m, soft_wrap=True))
    from ftedge.render.model_card import refresh_cards

    # before the copy below, so the chosen artifact's copy carries its latency too
    refresh_cards(report, out / "pick.json", log=lambda m: console.print(m, soft_wrap=True,
                                                                        markup=False))
    table = [_row(a, s, max_drop) for a, (_, s) in zip(report["artifacts"], pairs)]
    fitting = [r for r in table if r["fits"] and r["p50_ms"] is not None]
    chosen = min(fitting, key=lambda r: r["p50_ms"]) if fitting else None
    md = pick_table_md(table, chosen, max_drop)
    for line in md.splitlines():
        results.print(line, markup=False, highlight=False, soft_wrap=True)
    if chosen is None:
        return PickResult(None, table, None)
    source = Path(chosen["artifact"])
    with staged_folder(out, "artifact", force=force, protect=[run]) as tmp:
        for p in source.iterdir():
            if p.name == MARKER:
                continue
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, tmp / p.name)
        atomic_write_json(tmp / "pick.json", {"max_drop_points": max_drop, "chosen": chosen,
                                              "candidates": table, "bench": report})
        atomic_write_text(tmp / "pick.md", md)
    results.print(f"chosen: {chosen['precision']} ({chosen['artifact']}); copied to {out} "
                  f"with pick.md", soft_wrap=True, markup=False)
    return PickResult(out, table, chosen)


def artifacts_for_targets(runs: list[str], targets: list[str], precision: str | None) -> list[Path]:
    """For `--target NAME RUN`: the target's artifact folders, exporting the missing ones."""
    folders = []
    for run in runs:
        for target in targets:
            profile = load_profile(target)
            wanted = [p.strip() for p in precision.split(",")] if precision else list(profile.precisions)
            for prec in wanted:
                folder = default_out(Path(run), profile, prec, batch=parse_batch(None, profile))
                stale = _stale(folder)
                if stale is not False:
                    console.print(f"exporting {target} {prec} for {run}"
                                  + (f" again: {stale}" if stale else ""), soft_wrap=True)
                    try:
                        export_run(run, target, precision=prec, force=bool(stale),
                                   log=lambda m: console.print(m, soft_wrap=True))
                    except FtedgeError as e:
                        console.print(f"[red]cannot export {target} {prec}[/]: {e}")
                        continue
                folders.append(folder)
    return folders


def _stale(folder: Path) -> str | bool | None:
    """None: no artifact there yet; False: a current one; else why it is out of date."""
    if not (folder / MANIFEST).is_file():
        return None
    try:
        return stale_reason(folder) or False
    except FtedgeError:
        return False  # damaged: benched as it is, and reported as such
