import json

import numpy as np
import pytest
import torch

import ftedge
from ftedge.errors import ConfigError
from ftedge.quant.calibrate import AbsHistogram, entropy_amax
from ftedge.quant.calibset import CalibRecipe, build_manifest, load_recipe, pick
from ftedge.graph.metadata import read_metadata
from tests.conftest import tiny_options, write_class_folders


def test_histogram_methods_order_on_an_outlier():
    h = AbsHistogram()
    h.add(torch.cat([torch.randn(200_000, generator=torch.Generator().manual_seed(0)),
                     torch.tensor([40.0])]))
    mx, pc, en = h.amax("minmax"), h.amax("percentile"), h.amax("entropy")
    assert mx == 40.0 and 3.0 < pc < 5.0 and 2.5 < en < 8.0


def test_histogram_grows_without_losing_counts():
    h = AbsHistogram(bins=64)
    for scale in (1, 3, 10):
        h.add(torch.randn(1000) * scale)
    assert h.counts.sum() == 3000 and h.edge >= h.max


def test_entropy_keeps_the_whole_range_of_a_uniform_histogram():
    counts = np.ones(2048)
    assert entropy_amax(counts, edge=2.0) == pytest.approx(2.0, rel=0.02)


def test_stratified_pick_takes_equal_shares_and_is_seeded():
    rows = [(f"{c}/{i}.png", c) for c in "abc" for i in range(50)]
    chosen = pick(rows, CalibRecipe(images=30, seed=1))
    assert [sum(1 for _, c in chosen if c == k) for k in "abc"] == [10, 10, 10]
    assert chosen == pick(rows, CalibRecipe(images=30, seed=1))
    assert chosen != pick(rows, CalibRecipe(images=30, seed=2))


def test_manifest_warns_on_few_images_and_missing_classes(tmp_path):
    root = write_class_folders(tmp_path / "d", per_class=3)
    record = {"root": str(root), "classes": ["blue", "green", "red", "violet"],
              "train": [[f"{c}/{i:03d}.png", c] for c in ("blue", "green", "red") for i in range(3)]}
    m = build_manifest(record, CalibRecipe(images=6), "inline")
    assert len(m["files"]) == 6 and all(len(f["sha256"]) == 64 for f in m["files"])
    assert m["classes_missing"] == ["violet"]
    assert any("fewer than 100" in w for w in m["warnings"])
    assert any("violet" in w for w in m["warnings"])
    assert build_manifest(record, CalibRecipe(images=6), "inline")["sha256"] == m["sha256"]


def test_recipe_lookup():
    recipe, path = load_recipe("stratified-256")
    assert recipe.images == 256 and path.endswith("stratified-256.yaml")
    with pytest.raises(ConfigError, match="not found") as e:
        load_recipe("nope")
    assert "stratified-256" in e.value.hint


@pytest.fixture(scope="module")
def fp32_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ptq")
    data = write_class_folders(root / "colours", per_class=12)
    return ftedge.tune(data=str(data), **tiny_options(root)).run_dir


@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_ptq_writes_a_gated_qdq_model(fp32_run, method):
    res = ftedge.quantize(fp32_run, calib="stratified-256", calib_method=method, max_drop=1.0)
    assert (fp32_run / "model.ptq.int8.onnx").is_file() and (fp32_run / "gate_ptq.md").is_file()
    manifest = json.loads((fp32_run / "calibration_manifest.json").read_text())
    assert len(manifest["files"]) == 30  # the whole (tiny) training split
    assert any("fewer than 100" in w for w in res["warnings"])
    meta = read_metadata(fp32_run / "model.ptq.int8.onnx")
    assert meta["ftedge.calibration_sha256"] == manifest["sha256"] == res["calibration_sha256"]
    assert json.loads(meta["ftedge.quantization"])["calibration"] == method
    assert "full int8 range" in json.loads(meta["ftedge.quantization"])["depthwise_weights"]
    # measured on the exported graph: every Conv/Gemm reads INT8 weights and inputs
    assert res["coverage"]["int8_layers"] == res["coverage"]["compute_layers"] == 50
    assert res["coverage"]["float_layers"] == [] and res["size_ratio"] <= 0.3
    assert res["drop_points"] <= 1.0 and res["passed"]
    gate = json.loads((fp32_run / "gate_ptq.json").read_text())
    assert gate["passed"] == (gate["drop_points"] <= 1.0 and gate.get("openvino", {}).get(
        "passed", True))


def test_ptq_gate_fails_when_the_budget_is_exceeded(fp32_run):
    # no drop fits; a cap of one float layer keeps the (hopeless) fallback search to 3 tries
    res = ftedge.quantize(fp32_run, calib_method="minmax", max_drop=-200, fallback_cap=0.02)
    assert not res["passed"] and "FAILED" in (fp32_run / "gate_ptq.md").read_text()
    fallback = res["fallback"]
    assert fallback["cap"] == 1 and fallback["float_layers"] == []
    assert 1 <= len(fallback["steps"]) <= 3 and not any(s["passed"] for s in fallback["steps"])
    assert "no set of up to 1 float layer(s) passed" in fallback["why"]


def test_ptq_checks_the_gate_options_before_writing_anything(fp32_run):
    before = {p.name: p.stat().st_mtime_ns for p in fp32_run.iterdir()}
    with pytest.raises(ConfigError, match="--fallback-cap must be a finite number"):
        ftedge.quantize(fp32_run, max_drop=-20, fallback_cap=float("nan"))
    with pytest.raises(ConfigError, match=r"--fallback-cap .* \(0, 1\]"):
        ftedge.quantize(fp32_run, fallback_cap=1.5)
    with pytest.raises(ConfigError, match="--max-drop must be a finite number"):
        ftedge.quantize(fp32_run, max_drop=float("nan"))
    with pytest.raises(ConfigError, match="--percentile must be a finite number"):
        ftedge.quantize(fp32_run, calib_method="percentile", percentile=float("nan"))
    with pytest.raises(ConfigError, match=r"--percentile .* \(0, 100\]"):
        ftedge.quantize(fp32_run, calib_method="percentile", percentile=0)
    assert {p.name: p.stat().st_mtime_ns for p in fp32_run.iterdir()} == before


def test_ptq_refuses_qat_as_a_method(fp32_run):
    with pytest.raises(ConfigError, match="tune --qat"):
        ftedge.quantize(fp32_run, method="qat")


def test_entropy_is_not_fooled_by_relu_zeros():
    x = torch.relu(torch.randn(200_000, generator=torch.Generator().manual_seed(0)))
    h = AbsHistogram()
    h.add(x)
    assert 2.0 < h.amax("entropy") <= h.amax("minmax")


def test_bias_correction_removes_the_mean_shift_of_int8_weights():
    import copy

    from ftedge.quant.ptq import bias_correction, calibrate_ptq
    from ftedge.quant.qat import input_quantizers

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 4, 3, padding=1))
    batches = [torch.randn(8, 3, 12, 12) + 0.5 for _ in range(4)]
    reference = copy.deepcopy(net).eval()
    calibrate_ptq(net, batches, "minmax", weight_bits=7)

    def channel_shift(model):
        x = torch.cat(batches)
        for q in input_quantizers(model):  # activations in float: the weights are compared
            q.disable_fake_quant()
        with torch.no_grad():
            out = model(x) - reference(x)
        for q in input_quantizers(model):
            q.enable_fake_quant()
        return out.mean((0, 2, 3)).abs().max().item()

    first = torch.nn.Sequential(net[0])
    first_ref = torch.nn.Sequential(reference[0])
    x = torch.cat(batches)

    def first_shift():  # the first layer sees the image itself: its shift is removed
        for q in input_quantizers(net):
            q.disable_fake_quant()
        with torch.no_grad():
            out = (first(x) - first_ref(x)).mean((0, 2, 3)).abs().max().item()
        for q in input_quantizers(net):
            q.enable_fake_quant()
        return out

    before, before_first = channel_shift(net), first_shift()
    assert bias_correction(net, batches) == 2
    assert first_shift() < 0.1 * before_first
    assert channel_shift(net) < 0.5 * before  # and most of it at the output
