"""The `ftedge bench` command's work: run it with progress, write and print the report."""

from __future__ import annotations

import platform
import time
from pathlib import Path

from ftedge.stages.bench.bench import BenchOptions, bench
from ftedge.formats.artifact import MANIFEST
from ftedge.formats.report import REPORT
from ftedge.stages.bench.report import artifact_problem, table_lines, write_report
from ftedge.console import console, results
from ftedge.errors import GATE_FAILED, RUN_FAILED, FtedgeError
from ftedge.io import new_folder


def default_report_dir(first_artifact: Path) -> Path:
    """RUN/bench/<host>-<time> for the first artifact's run (beside the artifact if the run
    is not on this machine)."""
    from ftedge.formats.artifact import read_manifest_dict

    try:
        run = Path(read_manifest_dict(first_artifact)["source"]["run"])
    except FtedgeError:
        run = first_artifact.parent
    base = run if run.is_dir() else first_artifact.parent
    # made at once (empty, which the report replaces): two benches ending in the same second
    # get -2, -3 ... instead of one refusing the other's folder
    return new_folder(base / "bench" / f"{platform.node() or 'host'}-"
                      f"{time.strftime('%Y%m%d-%H%M%S')}")


def print_table(report: dict) -> None:
    """The report.md table on stdout, unwrapped: readable in a terminal, a log or a pipe."""
    for line in table_lines([report], with_device=False):
        results.print(line, soft_wrap=True, highlight=False, markup=False)


def publish_report(report: dict, out: Path, force: bool = False) -> dict[str, Path]:
    """Write the report folder, print the table and where it went."""
    paths = write_report(report, out, force)
    from ftedge.render.model_card import refresh_cards

    # each artifact's model card gets this machine's latency (unless the user edited it)
    refresh_cards(report, out / REPORT,
                  log=lambda m: console.print(m, soft_wrap=True, markup=False))
    print_table(report)
    for a in report["artifacts"]:  # why a row says ERROR or compares with another model
        problem = artifact_problem(a)
        if problem:
            console.print(f"{'error' if a['status'] == 'error' else 'warning'}: {problem}",
                          soft_wrap=True, markup=False, highlight=False)
    results.print(f"bench report written to {paths['md']} ({paths['json'].name}, "
                  f"{paths['latency_png'].name}, {paths['pareto_png'].name})", soft_wrap=True)
    return paths


def run_bench(folders: list[Path], data, opts: BenchOptions, *, out, force: bool = False) -> int:
    """`ftedge bench` on artifact folders (pick.py's artifacts_for_targets exports missing ones
    first for --target): progress, the report folder, the table; the exit code."""
    from rich.progress import Progress

    missing = [f for f in folders if not (Path(f) / MANIFEST).is_file()]
    if missing:
        manifest = Path(missing[0]) / MANIFEST
        if manifest.exists():  # reading a FIFO would wait forever
            raise FtedgeError(f"{manifest} is not a regular file (a folder, FIFO, device or "
                              "socket)", "copy the artifact folder again, or export it again")
        raise FtedgeError(f"not an artifact folder: {missing[0]} (no {MANIFEST})",
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

        report = bench(folders, data=data, opts=opts, progress=on_artifact)
    publish_report(report, Path(out) if out else default_report_dir(Path(folders[0])), force)
    statuses = [a["status"] for a in report["artifacts"]]
    if "error" in statuses:
        return RUN_FAILED
    return GATE_FAILED if "gate_failed" in statuses else 0
