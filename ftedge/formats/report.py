"""Bench reports: report.json (schema ftedge-bench/1) and merged reports (ftedge-report/1).

report.json: {"schema", "ftedge_version", "created", "environment" {hostname, cpu, threads,
jetson, rapl, ...}, "timer_overhead_us", "options", "artifacts": [{"artifact", "target",
"runtime", "precision", "device", "size_mb", "status" ("ok" | "gate_failed" | "error"),
"error"?, "cpu_note"? (why this host computes the artifact differently, e.g. 8-bit INT8
weights on an x86 CPU without VNNI), "load_s", "first_inference_ms", "float_layers",
"conv_kernels" (how many convolutions the runtime executes with each kernel or precision,
None where it cannot tell),
"accuracy" {top1, top5, reference_top1, drop_points, drop_ci95_points (quant/gate.py
drop_interval), top1_agreement, mcnemar, per_class, passed}, "latency" [{batch, runs, p50_ms, p90_ms, p99_ms, mean_ms, std_ms, min_ms, max_ms,
images_per_s, ...}],
"end_to_end" {same keys, batch 1}, "end_to_end_camera"? {batch, workers, source, contract?, model_only
{batch, images_per_s, p50_ms_b1}, inputs [{input, kind, width, height, latency_p50_ms,
latency_p90_ms, latency_model_share, images_per_s, throughput_model_share, ...}]}, "energy" {source, mj_per_image}, "memory" {...}}]}.
Readers go through `load_report`, which refuses anything else with a clear error.
"""

from __future__ import annotations

from pathlib import Path

from ftedge.errors import RunError
from ftedge.io import read_json

SCHEMA, MERGED_SCHEMA = "ftedge-bench/1", "ftedge-report/1"
REPORT, REPORT_MD = "report.json", "report.md"
STATUSES = ("ok", "gate_failed", "error")
CAMERA_KEYS = ("width", "height", "latency_p50_ms", "latency_model_share", "images_per_s",
               "throughput_model_share")
LATENCY_KEYS = ("batch", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms",
                "images_per_s")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _latency_ok(rows) -> bool:
    return isinstance(rows, list) and all(
        isinstance(r, dict) and all(_number(r.get(k)) for k in LATENCY_KEYS) for r in rows)


def _artifact_problem(a) -> str | None:
    if not isinstance(a, dict):
        return "an artifact entry is not an object"
    for k in ("target", "precision"):
        if not isinstance(a.get(k), str):
            return f"an artifact entry has no {k}"
    if a.get("status") not in STATUSES:
        return f"artifact {a['target']} has status {a.get('status')!r}"
    if not isinstance(a.get("accuracy", {}), dict):
        return f"artifact {a['target']}: accuracy is not an object"
    if not _latency_ok(a.get("latency", [])):
        return f"artifact {a['target']}: a latency row is damaged"
    if a.get("end_to_end") is not None and not _latency_ok([a["end_to_end"]]):
        return f"artifact {a['target']}: end_to_end is damaged"
    camera = a.get("end_to_end_camera")
    if camera is not None and not (
            isinstance(camera, dict) and _number(camera.get("batch"))
            and isinstance(camera.get("inputs"), list) and all(
                isinstance(r, dict) and isinstance(r.get("input"), str)
                and all(_number(r.get(k)) for k in CAMERA_KEYS) for r in camera["inputs"])):
        return f"artifact {a['target']}: end_to_end_camera is damaged"
    return None


def validate_report(data, where: str | Path) -> dict:
    """A bench report checked for everything the table, plots and merges read."""
    def bad(what: str) -> RunError:
        return RunError(f"{where} is not a usable ftedge bench report: {what}",
                        "point at a folder written by `ftedge bench` (or bench again)")

    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise bad(f"schema {schema!r}, expected {SCHEMA}")
    if not isinstance(data.get("environment"), dict):
        raise bad("environment is missing")
    if not _number(data.get("timer_overhead_us")):
        raise bad("timer_overhead_us is missing")
    if not isinstance(data.get("options"), dict) or not isinstance(
            data["options"].get("batches"), list):
        raise bad("options are missing")
    if not isinstance(data.get("artifacts"), list):
        raise bad("artifacts are missing")
    for a in data["artifacts"]:
        problem = _artifact_problem(a)
        if problem:
            raise bad(problem)
    return data


def load_report(path: str | Path) -> dict:
    """report.json from a bench folder (or the file itself), validated."""
    path = Path(path)
    file = path / REPORT if path.is_dir() else path
    if not file.is_file():
        raise RunError(f"{path} holds no {REPORT}", "point at folders written by ftedge bench")
    return validate_report(read_json(file), file)
