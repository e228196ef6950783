"""bench/camera.py: camera-size inputs end to end, in the report beside the model alone."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from PIL import Image

from ftedge.stages.bench.bench import BenchOptions, bench
from ftedge.stages.bench.camera import camera_pixels, write_camera_inputs
from ftedge.errors import ConfigError, RunError
from ftedge.formats.report import validate_report


def test_camera_inputs_are_photo_like_and_camera_sized(tmp_path):
    inputs = write_camera_inputs(tmp_path, per_size=1)
    assert set(inputs) == {"jpeg_1920x1080", "jpeg_4032x3024", "frame_1920x1080"}
    for kind, (w, h) in (("jpeg_1920x1080", (1920, 1080)), ("jpeg_4032x3024", (4032, 3024))):
        path = inputs[kind][0]
        assert Image.open(path).size == (w, h) and Image.open(path).format == "JPEG"
        bits_per_pixel = 8 * path.stat().st_size / (w * h)
        assert 1.2 < bits_per_pixel < 4  # a camera's file size, not a smooth upscale's
    frame = inputs["frame_1920x1080"][0]
    assert frame.shape == (1080, 1920, 3) and frame.dtype == np.uint8
    assert frame.std() > 30  # a photo, not a flat field
    np.testing.assert_array_equal(camera_pixels(64, 48, 3), camera_pixels(64, 48, 3))
    assert not np.array_equal(camera_pixels(64, 48, 0), camera_pixels(64, 48, 1))


def test_bench_reports_end_to_end_on_camera_inputs(qat_run, tmp_path):
    from ftedge.stages.export.exporter import export_run

    folder = export_run(qat_run.run_dir, "onnxruntime-cpu", precision="int8", out=tmp_path / "ort",
                        log=lambda m: None).folder
    opts = BenchOptions(batches=(1, 4), warmup=2, runs=5, e2e_images=2, camera_images=4,
                        e2e_batch=4, workers=2)
    rep = bench([folder], opts=opts)
    art = rep["artifacts"][0]
    assert art["status"] == "ok", art.get("error")
    cam = art["end_to_end_camera"]
    assert cam["batch"] == 4 and cam["workers"] == 2
    model = {r["batch"]: r for r in art["latency"]}
    assert cam["model_only"]["images_per_s"] == model[4]["images_per_s"]
    assert cam["model_only"]["p50_ms_b1"] == model[1]["p50_ms"]
    rows = {r["input"]: r for r in cam["inputs"]}
    assert list(rows) == ["jpeg_1920x1080", "jpeg_4032x3024", "frame_1920x1080"]
    for r in rows.values():
        assert r["latency_p50_ms"] > 0 and r["images_per_s"] > 0 and r["images"] == 8
        assert 0 < r["latency_model_share"] < 1.5 and 0 < r["throughput_model_share"] < 1.5
        # the share is what the numbers say it is
        assert r["throughput_model_share"] == pytest.approx(
            r["images_per_s"] / cam["model_only"]["images_per_s"])
    assert rows["jpeg_4032x3024"]["width"] == 4032 and rows["frame_1920x1080"]["kind"] == "frame"
    # decoding a 12 MP JPEG costs more than a 1080p one, and a raw frame none
    assert (rows["jpeg_4032x3024"]["latency_p50_ms"] > rows["jpeg_1920x1080"]["latency_p50_ms"]
            > rows["frame_1920x1080"]["latency_p50_ms"])
    assert rows["jpeg_4032x3024"]["file_kb_mean"] > 1000
    assert validate_report(rep, "r") is rep
    damaged = copy.deepcopy(rep)
    damaged["artifacts"][0]["end_to_end_camera"]["inputs"][0]["images_per_s"] = "fast"
    with pytest.raises(RunError, match="end_to_end_camera is damaged"):
        validate_report(damaged, "r")
    from ftedge.stages.bench.report import markdown

    assert "| jpeg_4032x3024 |" in markdown(rep)
    # the report names how each artifact decodes and resizes (a draft or reducing gap is
    # why one is fast), and one written before it recorded that still renders
    assert cam["contract"].startswith("crop: short side to")
    assert "as its contract says: " in markdown(rep) and cam["contract"] in markdown(rep)
    older = copy.deepcopy(rep)
    del older["artifacts"][0]["end_to_end_camera"]["contract"]
    assert "as its contract says" not in markdown(validate_report(older, "r"))


@pytest.mark.parametrize("bad", [dict(camera_images=-1), dict(e2e_batch=0), dict(workers=0)])
def test_bench_options_refuse_bad_camera_settings(bad):
    with pytest.raises(ConfigError):
        BenchOptions(**bad)
