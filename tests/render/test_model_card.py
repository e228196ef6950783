"""The model card's facts from a run, and bench's refresh of its latency section under the
rules of ftedge-owned folders."""

import json
import shutil

import pytest

from ftedge.errors import RunError
from ftedge.formats.owned import check_replaceable, read_marker, staged_folder
from ftedge.io import sha256_file
from ftedge.render.card import CARD
from ftedge.render.model_card import data_facts, refresh_latency
from tests.render.test_card import facts
from ftedge.render.card import render_model_card

REPORT = {"environment": {"hostname": "box", "cpu": "Xeon (AVX-512 VNNI)", "threads": 2},
          "created": "2026-12-06T17:00:00+0000"}
ROW = {"status": "ok", "latency": [{"batch": 1, "p50_ms": 2.5, "p99_ms": 3.75,
                                    "images_per_s": 400.0}],
       "end_to_end": {"p50_ms": 7.25, "p99_ms": 9.0}}


@pytest.fixture
def artifact(tmp_path):
    out = tmp_path / "onnxruntime-cpu-int8"
    with staged_folder(out, "artifact") as tmp:
        (tmp / "model.onnx").write_bytes(b"graph")
        (tmp / CARD).write_text(render_model_card(facts()))
    return out


def test_bench_refreshes_the_latency_of_a_card_as_ftedge_wrote_it(artifact):
    assert refresh_latency(artifact, REPORT, ROW, report_path=artifact / "bench.json") == "updated"
    card = (artifact / CARD).read_text()
    assert "| 1 | 2.50 | 3.75 | 400.0 |" in card and "Xeon (AVX-512 VNNI)" in card
    assert "p50 7.25 ms" in card and "Not benchmarked yet" not in card
    assert read_marker(artifact)["files"][CARD] == sha256_file(artifact / CARD)
    check_replaceable(artifact, "artifact", force=True)  # still ftedge's: --force may replace it
    row = dict(ROW, latency=[dict(ROW["latency"][0], p50_ms=1.0)])
    assert refresh_latency(artifact, REPORT, row, report_path=artifact / "bench.json") == "updated"
    assert "| 1 | 1.00 |" in (artifact / CARD).read_text()


def test_a_card_the_user_edited_is_theirs(artifact):
    edited = (artifact / CARD).read_text() + "\nOur notes.\n"
    (artifact / CARD).write_text(edited)
    assert refresh_latency(artifact, REPORT, ROW, report_path=artifact / "bench.json") == "edited"
    assert (artifact / CARD).read_text() == edited
    with pytest.raises(RunError, match="changed since ftedge wrote them"):
        check_replaceable(artifact, "artifact", force=True)


def test_no_card_or_no_latency_changes_nothing(artifact):
    assert refresh_latency(artifact, REPORT, dict(ROW, latency=[]),
                           report_path=artifact / "b") == "no latency"
    (artifact / CARD).unlink()
    assert refresh_latency(artifact, REPORT, ROW, report_path=artifact / "b") == "no card"
    assert not (artifact / CARD).exists()


def test_data_facts_count_and_hash_the_images(qat_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(qat_run.run_dir, run, ignore=shutil.ignore_patterns("*.pt", "*.onnx"))
    record = json.loads((run / "split.json").read_text())
    shutil.copytree(record["root"], tmp_path / "data")
    record["root"] = str(tmp_path / "data")
    (run / "split.json").write_text(json.dumps(record))
    first = data_facts(run)
    assert first["counts"]["train"] == [sum(1 for _, c in record["train"] if c == k)
                                        for k in record["classes"]]
    assert sum(first["counts"]["val"]) == len(record["val"]) and first["counts"]["test"] is None
    assert len(first["sha256"]) == 64
    (tmp_path / "data" / record["val"][0][0]).write_bytes(b"other bytes")
    record["seed"] = 99  # a new split.json: a new cache key
    (run / "split.json").write_text(json.dumps(record))
    assert data_facts(run)["sha256"] != first["sha256"]


def test_export_writes_the_card_and_force_still_guards_it(qat_run, tmp_path):
    from ftedge.stages.export.exporter import export_run
    from ftedge.formats.artifact import read_manifest

    out = tmp_path / "ort-int8"
    result = export_run(qat_run.run_dir, "onnxruntime-cpu", precision="int8", out=out,
                        log=lambda m: None)
    card = (out / CARD).read_text()
    gate = json.loads((qat_run.run_dir / "gate.json").read_text())
    lo, hi = gate["drop_ci95_points"]
    assert f"95% interval {lo:+.2f} to {hi:+.2f} points" in card
    assert result.manifest["source"]["gate"]["drop_ci95_points"] == [lo, hi]
    assert f"Not benchmarked yet: `ftedge bench {out}`" in card
    assert "| red |" in card and "Data sha256: `" in card
    # owned by the folder's marker, not hashed by the manifest (bench rewrites it)
    assert CARD in read_marker(out)["files"] and CARD not in result.manifest["files"]
    read_manifest(out)  # every hashed file checks out
    assert refresh_latency(out, REPORT, ROW, report_path=tmp_path / "r.json") == "updated"
    read_manifest(out)
    export_run(qat_run.run_dir, "onnxruntime-cpu", precision="int8", out=out, force=True,
               log=lambda m: None)
    assert "Not benchmarked yet" in (out / CARD).read_text()  # a fresh export, a fresh card
    (out / CARD).write_text("mine\n")
    with pytest.raises(RunError, match="changed since ftedge wrote them"):
        export_run(qat_run.run_dir, "onnxruntime-cpu", precision="int8", out=out, force=True,
                   log=lambda m: None)
