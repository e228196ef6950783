"""Latency statistics, the timer's own cost, the Pareto front and the report's table."""

import numpy as np
import pytest

from ftedge.stages.bench.latency import latency_percentiles, time_calls, timer_overhead_us
from ftedge.stages.bench.report import markdown, pareto_front, table_rows


def test_percentiles_of_known_times():
    stats = latency_percentiles(np.arange(1, 101) / 1000.0, batch=4)  # 1..100 ms
    assert stats["p50_ms"] == pytest.approx(50.5) and stats["p99_ms"] == pytest.approx(99.01)
    assert stats["mean_ms"] == pytest.approx(50.5) and stats["runs"] == 100
    assert stats["images_per_s"] == pytest.approx(4 * 1000 / 50.5)


def test_time_calls_counts_runs_or_time():
    calls = []
    assert len(time_calls(lambda: calls.append(1), warmup=3, runs=7)) == 7 and len(calls) == 10
    assert len(time_calls(lambda: None, warmup=0, seconds=0.05)) >= 5


def test_timer_overhead_is_microseconds():
    assert 0 < timer_overhead_us(2000) < 50


def test_pareto_front():
    pts = [(1.0, 0.90), (2.0, 0.95), (3.0, 0.94), (0.5, 0.80), (2.0, 0.99)]
    assert pareto_front(pts) == [3, 0, 4]


def _report(status="ok"):
    lat = [dict(latency_percentiles([0.002] * 10, 1)), dict(latency_percentiles([0.01] * 10, 8))]
    art = {"target": "onnxruntime-cpu", "precision": "int8", "status": status, "size_mb": 1.2,
           "accuracy": {"top1": 0.98, "drop_points": 0.5, "max_drop_points": 1.0},
           "latency": lat, "end_to_end": lat[0],
           "energy": {"mj_per_image": None, "note": "no power reader here"}}
    if status == "error":
        art = {"target": "tensorrt-x86", "precision": "int8", "status": "error",
               "error": "ExportError: no engine"}
    return {"environment": {"hostname": "box", "cpu": "cpu", "cpu_count": 2, "threads": 2,
                            "platform": "linux"},
            "timer_overhead_us": 0.3, "options": {"batches": [1, 8]}, "artifacts": [art]}


def test_table_marks_gate_failures_apart_from_errors():
    ok, failed, error = (table_rows(_report(s))[0] for s in ("ok", "gate_failed", "error"))
    assert ok[4] == "ok" and failed[4] == "GATE FAILED" and error[4].startswith("ERROR")
    assert ok[7] == "-0.50 pt" and ok[8] == "2.00" and ok[10] == "800.0" and ok[11] == "n/a"
    assert error[6] == "n/a"
    md = markdown(_report("error"))
    assert "no engine" in md and "| Device | Artifact | Target | Precision | Status |" in md


def test_two_artifacts_of_one_target_and_precision_stay_apart():
    """An all-INT8 graph and its float-fallback twin: every table and note names the folder."""
    report = _report()
    art = report["artifacts"][0]
    mixed = dict(art, artifact="/runs/x/exports/ort|mixed", float_layers=["/features.1/Conv"])
    report["artifacts"] = [dict(art, artifact="/runs/x/exports/ort-int8"), mixed]
    assert [r[1] for r in table_rows(report)] == ["ort-int8", "ort\\|mixed"]
    md = markdown(report)
    assert "- ort\\|mixed (onnxruntime-cpu int8): 1 layer(s) kept in float" in md
    assert "| ort-int8 | onnxruntime-cpu | int8 | 1 |" in md
    assert "| ort\\|mixed | onnxruntime-cpu | int8 | 8 |" in md
