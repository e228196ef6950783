"""The `ftedge bench` command's work: resolve what to bench, run it with progress, report."""

from __future__ import annotations

import platform
import time
from pathlib import Path

from ftedge.bench.bench import BenchOptions, bench
from ftedge.bench.report import table_lines, write_report
from ftedge.console import console, results
from ftedge.errors import GATE_FAILED, RUN_FAILED, FtedgeError


def artifacts_for_targets(runs: list[str], targets: list[str], precision: str | None) -> list[Path]:
    """For `--target NAME RUN`: the target's artifact folders, exporting the missing ones."""
    from ftedge.export.exporter import default_out, export_run
    from ftedge.export.profiles import load_profile, parse_batch

    folders = []
    for run in runs:
        for target in targets:
            profile = load_profile(target)
            wanted = [p.strip() for p in precision.split(",")] if precision else list(profile.precisions)
            for prec in wanted:
                folder = default_out(Path(run), profile, prec, parse_batch(None, profile))
                if not (folder / "manifest.json").is_file():
                    console.print(f"exporting {target} {prec} for {run}")
                    try:
                        export_run(run, target, prec, log=lambda m: console.print(m, soft_wrap=True))
                    except FtedgeError as e:
                        console.print(f"[red]cannot export {target} {prec}[/]: {e}")
                        continue
                folders.append(folder)
    return folders


def default_report_dir(first_artifact: Path) -> Path:
    """RUN/bench/<host>-<time> for the first artifact's run (beside the artifact if the run
    is not on this machine)."""
    from ftedge.formats.artifact import read_manifest_dict

    try:
        run = Path(read_manifest_dict(first_artifact)["source"]["run"])
    except FtedgeError:
        run = first_artifact.parent
    base = run if run.is_dir() else first_artifact.parent
    return base / "bench" / f"{platform.node() or 'host'}-{time.strftime('%Y%m%d-%H%M%S')}"


def print_table(report: dict) -> None:
    """The report.md table on stdout, unwrapped: readable in a terminal, a log or a pipe."""
    for line in table_lines([report], with_device=False):
        results.print(line, soft_wrap=True, highlight=False, markup=False)


def publish_report(report: dict, out: Path, force: bool = False) -> dict[str, Path]:
    """Write the report folder, print the table and where it went."""
    paths = write_report(report, out, force)
    print_table(report)
    results.print(f"bench report written to {paths['md']} ({paths['json'].name}, "
                  f"{paths['latency_png'].name}, {paths['pareto_png'].name})", soft_wrap=True)
    return paths


def run_bench(paths, targets, precision, data, batches, warmup, runs, seconds, threads,
              max_drop, out, force: bool = False, *, camera_images: int | None = None,
              workers: int | None = None) -> int:
    from rich.progress import Progress

    extra = {} if camera_images is None else {"camera_images": camera_images}
    opts = BenchOptions(batches=batches, warmup=warmup, runs=runs, seconds=seconds,
                        threads=threads, max_drop=max_drop, workers=workers,
                        **extra)  # checked before any export
    folders = artifacts_for_targets(paths, targets, precision) if targets else [Path(p) for p in paths]
    missing = [f for f in folders if not (Path(f) / "manifest.json").is_file()]
    if missing:
        raise FtedgeError(f"not an artifact folder: {missing[0]} (no manifest.json)",
                          "bench folders written by `ftedge export`, or use --target NAME RUN")
    if not folders:
        raise FtedgeError("nothing to bench", "export an artifact first")
    if out:  # refuse a taken --out before the (long) bench, not after
        from ftedge.formats.owned import check_replaceable

        check_replaceable(Path(out), "bench-report", force, protect=folders)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("bench", total=len(folders))
        done = [0]

        def on_artifact(msg: str) -> None:
            progress.update(task, description=msg, completed=done[0])
            done[0] += 1

        report = bench(folders, data, opts, progress=on_artifact)
    publish_report(report, Path(out) if out else default_report_dir(Path(folders[0])), force)
    statuses = [a["status"] for a in report["artifacts"]]
    if "error" in statuses:
        return RUN_FAILED
    return GATE_FAILED if "gate_failed" in statuses else 0
