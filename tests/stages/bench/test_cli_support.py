"""stages/bench/cli_support.py: where a report goes by default, and what bench refuses."""

import platform

import pytest

import ftedge.formats.artifact as artifact_format
from ftedge.errors import FtedgeError
from ftedge.stages.bench.bench import BenchOptions
from ftedge.stages.bench.cli_support import default_report_dir, run_bench


def _source_run(monkeypatch, run):
    """The manifest's source run (its reading and checking is tests/formats' business)."""
    monkeypatch.setattr(artifact_format, "read_manifest_dict",
                        lambda folder: {"source": {"run": str(run)}})


def test_reports_go_under_the_source_run_and_never_share_a_folder(tmp_path, monkeypatch):
    run, art = tmp_path / "run", tmp_path / "exports" / "art"
    run.mkdir()
    art.mkdir(parents=True)
    _source_run(monkeypatch, run)
    first, second = default_report_dir(art), default_report_dir(art)
    host = platform.node() or "host"
    for made in (first, second):
        assert made.parent == run / "bench" and made.name.startswith(f"{host}-")
        assert made.is_dir() and not any(made.iterdir())
    assert first != second


def test_a_run_not_on_this_machine_puts_the_report_beside_the_artifact(tmp_path, monkeypatch):
    art = tmp_path / "art"
    art.mkdir()
    (art / "manifest.json").write_text("{")  # unreadable: beside the artifact
    assert default_report_dir(art).parent == tmp_path / "bench"
    _source_run(monkeypatch, tmp_path / "elsewhere")  # readable, the run is not here
    assert default_report_dir(art).parent == tmp_path / "bench"


def test_bench_refuses_folders_that_are_not_artifacts_and_an_empty_list(tmp_path):
    opts = BenchOptions(batches=(1,), runs=1, warmup=0, camera_images=0)
    with pytest.raises(FtedgeError, match="not an artifact folder") as e:
        run_bench([tmp_path], None, opts, out=None)
    assert "ftedge export" in e.value.hint
    with pytest.raises(FtedgeError, match="nothing to bench"):
        run_bench([], None, opts, out=None)
