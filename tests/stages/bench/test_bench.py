"""ftedge bench / report end to end on a tiny QAT run's artifacts."""

import json

import pytest
from click.testing import CliRunner

from ftedge.stages.bench.bench import BenchOptions, bench
from ftedge.cli import cli
from ftedge.stages.export.exporter import export_run
from ftedge.errors import FtedgeError

FAST = BenchOptions(batches=(1, 4), warmup=2, runs=5, e2e_images=5, camera_images=0)


@pytest.mark.parametrize("bad, want", [
    (dict(max_drop=float("nan")), "--max-drop must be a finite number"),
    (dict(runs=0), "--runs must be >= 1"), (dict(seconds=-1.0), "--time must be > 0"),
    (dict(seconds=float("nan")), "--time must be a finite number"),
    (dict(warmup=-1), "--warmup must be >= 0"),
    (dict(threads=1024), "--threads 1024 is more than the"), (dict(threads=0), "--threads must"),
])
def test_bench_options_refuse_what_would_measure_nothing(bad, want):
    from ftedge.errors import ConfigError

    with pytest.raises(ConfigError, match=want):
        BenchOptions(**bad)
    assert BenchOptions(warmup=0, runs=1).warmup == 0  # no warm-up is a legal choice


@pytest.fixture(scope="module")
def artifacts(qat_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("art")
    out = {}
    for target, prec in (("onnxruntime-cpu", "fp32"), ("onnxruntime-cpu", "int8"),
                         ("jetson-orin-nano", "int8")):
        out[(target, prec)] = export_run(qat_run.run_dir, target, precision=prec,
                                         out=root / f"{target}-{prec}",
                                         log=lambda m: None).folder
    return out


def test_bench_measures_each_artifact_and_reports_one_that_cannot_run(artifacts):
    rep = bench(list(artifacts.values()), opts=FAST)
    by = {(a["target"], a["precision"]): a for a in rep["artifacts"]}
    fp32, int8 = by[("onnxruntime-cpu", "fp32")], by[("onnxruntime-cpu", "int8")]
    assert fp32["status"] == int8["status"] == "ok"
    assert fp32["accuracy"]["top1_agreement"] == 1.0 and fp32["accuracy"]["drop_points"] == 0.0
    assert {"top1", "top5", "reference_top1", "mcnemar", "per_class"} <= set(int8["accuracy"])
    assert [r["batch"] for r in int8["latency"]] == [1, 4] and int8["latency"][0]["runs"] == 5
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "images_per_s"):
        assert int8["latency"][0][key] > 0 or key == "std_ms"
    assert int8["end_to_end"]["p50_ms"] > 0 and int8["load_s"] > 0
    assert int8["first_inference_ms"] > 0 and int8["memory"]["peak_rss_mb"] > 0
    assert int8["size_mb"] < fp32["size_mb"]
    # read from the graph ONNX Runtime executes: all 49 of Lite0's convolutions on integers
    assert int8["conv_kernels"] == {"QLinearConv": 49}
    assert "QLinearConv" not in fp32["conv_kernels"]
    trt = by[("jetson-orin-nano", "int8")]
    assert trt["status"] == "error" and "built on the device" in trt["error"]
    assert rep["timer_overhead_us"] > 0 and rep["environment"]["cpu"]


def test_cli_writes_report_and_exits_3_on_a_broken_budget(artifacts, tmp_path):
    runner = CliRunner()
    # camera-size inputs are test_camera.py's: here they would only add seconds
    args = ["bench", str(artifacts[("onnxruntime-cpu", "int8")]), "--batch", "1", "--runs", "3",
            "--warmup", "1", "--camera-images", "0", "--out", str(tmp_path / "b")]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    for name in ("report.json", "report.md", "latency.png", "accuracy_vs_latency.png"):
        assert (tmp_path / "b" / name).is_file()
    assert json.loads((tmp_path / "b" / "report.json").read_text())["schema"] == "ftedge-bench/1"
    res = runner.invoke(cli, [*args[:-1], str(tmp_path / "c"), "--max-drop", "-100"])
    assert res.exit_code == 3
    assert "GATE FAILED" in (tmp_path / "c" / "report.md").read_text()
    res = runner.invoke(cli, ["report", str(tmp_path / "b"), str(tmp_path / "c"),
                              "--out", str(tmp_path / "merged")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "merged" / "report.md").read_text()
    assert md.count(" | onnxruntime-cpu | int8 | ") == 2
    assert (tmp_path / "merged" / "accuracy_vs_latency.png").is_file()


def test_bench_target_exports_what_is_missing(qat_run, tmp_path):
    res = CliRunner().invoke(cli, ["bench", "--target", "onnxruntime-cpu", "--precision", "fp32",
                                   str(qat_run.run_dir), "--batch", "1", "--runs", "3",
                                   "--camera-images", "0", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert (qat_run.run_dir / "exports" / "onnxruntime-cpu-fp32" / "manifest.json").is_file()
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [a["status"] for a in rep["artifacts"]] == ["ok"]


def test_pick_chooses_the_fastest_precision_within_budget(qat_run, tmp_path):
    from ftedge.stages.bench.bench import BenchOptions
    from ftedge.pick import pick_precision
    from ftedge.stages.inference import open_model

    opts = BenchOptions(batches=(1,), warmup=2, runs=5, e2e_images=2, camera_images=0)
    res = pick_precision(qat_run.run_dir, "onnxruntime-cpu", max_drop=1.0, opts=opts,
                         out=tmp_path / "auto")
    assert [r["precision"] for r in res.table][:3] == ["fp32", "fp16", "int8"]
    fitting = [r for r in res.table if r["fits"]]
    assert res.chosen is not None and res.chosen["p50_ms"] == min(r["p50_ms"] for r in fitting)
    loaded = open_model(res.folder)  # a complete, verified artifact with its deploy kit
    assert loaded.manifest.precision == res.chosen["precision"]
    assert (res.folder / "pick.md").is_file() and (res.folder / "deploy" / "infer.py").is_file()
    with pytest.raises(FtedgeError, match="already exists"):
        pick_precision(qat_run.run_dir, "onnxruntime-cpu", max_drop=1.0, opts=opts,
                       out=tmp_path / "auto")
    none = pick_precision(qat_run.run_dir, "onnxruntime-cpu", max_drop=-200.0, opts=opts,
                          out=tmp_path / "none")
    assert none.chosen is None and none.exit_code == 3 and not (tmp_path / "none").exists()


def test_a_target_with_its_own_pipeline_gets_the_emulated_top1_beside(qat_run, tmp_path):
    """A profile that declares a DeepStream-like pipeline: export warns with the cost, bench
    reports top-1 under the emulation beside the exact contract's, for a uint8 artifact too."""
    import yaml

    profile = tmp_path / "ort-deepstream.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "ort-deepstream", "runtime": "onnxruntime", "device": "cpu",
        "input_format": "uint8",
        "pipeline": {"name": "deepstream", "geometry": "stretch", "filter": "bilinear",
                     "antialias": False}}))
    logged = []
    res = export_run(qat_run.run_dir, str(profile), precision="int8", out=tmp_path / "a",
                     log=logged.append)
    measured = res.manifest["parity"]["deepstream_preprocessing"]
    assert measured["normalization_exact"] and "in the graph" in measured["normalization"]
    assert any("preprocesses differently" in m for m in logged)  # the qat_run is a crop run
    rep = bench([res.folder], opts=FAST)
    row = rep["artifacts"][0]
    assert row["status"] == "ok", row.get("error")
    emulated = row["accuracy"]["device_pipeline"]
    assert emulated["top1_exact_contract"] == row["accuracy"]["top1"]
    assert emulated["top1_emulated"] == measured["top1_deepstream_style"]  # same graph, ORT
    assert emulated["geometry"] == "stretch" and emulated["emulation"]["cannot"]
