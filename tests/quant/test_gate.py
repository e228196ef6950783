import numpy as np
import pytest

from ftedge.quant.gate import accuracy_gate, drop_interval, drop_text, gate_markdown, mcnemar


def test_mcnemar_counts_and_exact_p_value():
    ref = np.array([1, 1, 1, 1, 0, 0, 1, 1], bool)
    test = np.array([1, 0, 0, 0, 1, 0, 1, 1], bool)
    m = mcnemar(ref, test)
    assert m["only_fp32_right"] == 3 and m["only_int8_right"] == 1
    assert m["p_value"] == pytest.approx(0.625)  # 2 * P(X <= 1), X ~ Bin(4, 0.5)
    assert mcnemar(ref, ref)["p_value"] == 1.0


def test_gate_drop_agreement_and_budget():
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 0])
    ref = np.eye(3)[labels] * 5.0
    test = ref.copy()
    test[3] = np.eye(3)[0] * 5  # one class-1 image now wrong
    res = accuracy_gate(ref, test, labels, classes=["a", "b", "c"], max_drop=5.0)
    assert res["fp32_top1"] == 1.0 and res["int8_top1"] == 0.9
    assert res["drop_points"] == pytest.approx(10.0) and not res["passed"]
    assert res["top1_agreement"] == 0.9
    assert res["per_class"]["b"]["drop_points"] == pytest.approx(100 / 3)
    assert res["per_class"]["a"]["drop_points"] == 0.0
    assert accuracy_gate(ref, test, labels, classes=["a", "b", "c"], max_drop=10.0)["passed"]
    md = gate_markdown(res, "gate")
    assert "FAILED" in md and "| b | 3 |" in md


def test_a_runtime_that_loses_accuracy_fails_the_gate(monkeypatch, tmp_path):
    from ftedge.quant import gate

    labels = np.array([0, 1, 2, 0, 1, 2])
    good = np.eye(3)[labels]
    monkeypatch.setattr(gate.ov, "openvino_logits", lambda path, x: np.eye(3)[np.zeros(6, int)])
    res = gate.gate_int8_model(good, good, tmp_path / "m.onnx", x=None, labels=labels,
                               classes=["a", "b", "c"],
                               max_drop=1.0)
    assert res["drop_points"] == 0 and not res["openvino"]["passed"] and not res["passed"]
    monkeypatch.setattr(gate.ov, "openvino_logits", lambda path, x: None)
    res = gate.gate_int8_model(good, good, tmp_path / "m.onnx", x=None, labels=labels,
                               classes=["a", "b", "c"],
                               max_drop=1.0)
    assert res["passed"] and "openvino" not in res
    assert "ONNX Runtime only" in gate.gate_markdown(res, "g")


def test_the_drop_comes_with_what_the_val_split_can_tell():
    """A 95% interval from the images only one model got right, and a budget below one image
    named as such: on 272 images 0.3 points cannot be told from 0 or from 1."""
    lo, hi = drop_interval(3, 1, 272)  # 0.74 points
    assert lo == pytest.approx(-0.8996, abs=1e-3) and hi == pytest.approx(1.4520, abs=1e-3)
    assert drop_interval(0, 0, 272) == (0.0, 0.0)
    lo, hi = drop_interval(40, 0, 100)  # every disagreement against INT8: clearly a drop
    assert 0 < lo < 40 == pytest.approx(hi)
    labels = np.arange(272) % 4
    ref = np.eye(4)[labels]
    test = ref.copy()
    test[:5] = np.eye(4)[(labels[:5] + 1) % 4]  # five images only FP32 gets right
    ref_wrong = ref.copy()
    ref_wrong[5] = np.eye(4)[(labels[5] + 1) % 4]  # the one image only INT8 gets right
    res = accuracy_gate(ref_wrong, test, labels, classes=list("abcd"), max_drop=0.3)
    assert res["mcnemar"]["only_fp32_right"] == 5 and res["mcnemar"]["only_int8_right"] == 1
    assert res["drop_ci95_points"] == pytest.approx(list(drop_interval(5, 1, 272)))
    assert res["one_image_points"] == pytest.approx(100 / 272)
    md = gate_markdown(res, "gate")
    assert "95% interval of the drop:" in md and "less than one image on these 272" in md
    assert "less than one image here" in drop_text(res)
    wide = accuracy_gate(ref_wrong, test, labels, classes=list("abcd"), max_drop=1.0)
    assert "less than one image" not in gate_markdown(wide, "g") + drop_text(wide)
    old = {k: v for k, v in res.items() if k not in ("drop_ci95_points", "one_image_points")}
    assert "interval" not in gate_markdown(old, "g")  # a gate.json from before still renders


@pytest.fixture(scope="module")
def tiny_graphs(tmp_path_factory):
    """A tiny FP32 graph, its all-INT8 Q/DQ twin, 16 images and the FP32 model's labels."""
    import copy

    import torch

    from ftedge.quant.onnx_export import export_onnx
    from ftedge.quant.qat import calibrate_activations, prepare_qat
    from tests.conftest import tiny_convnet

    folder = tmp_path_factory.mktemp("graphs")
    model = tiny_convnet()
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    export_onnx(model, x[:1], folder / "model.fp32.onnx", opset=17, metadata={})
    qat = copy.deepcopy(model)
    prepare_qat(qat, x[:2], weight_bits=7)
    calibrate_activations(qat, [(x, None)], lambda b: b)
    export_onnx(qat, x[:1], folder / "model.int8.onnx", opset=17, metadata={})
    with torch.no_grad():
        labels = model(x).argmax(1).numpy()
    return folder, x.numpy(), labels


def _gate(folder, x, labels, **kw):
    from ftedge.quant.gate import gate_graphs

    return gate_graphs(folder / "model.fp32.onnx", folder / "model.int8.onnx", x, labels=labels,
                       classes=["a", "b", "c"], **kw)


def test_gate_graphs_runs_both_graphs_and_reads_coverage_from_the_graph(tiny_graphs):
    from ftedge.quant.gate import onnx_logits

    folder, x, labels = tiny_graphs
    gated = _gate(folder, x, labels, max_drop=1.0)
    r = gated.result
    assert np.array_equal(gated.fp32_logits, onnx_logits(folder / "model.fp32.onnx", x))
    assert np.array_equal(gated.int8_logits, onnx_logits(folder / "model.int8.onnx", x))
    assert r["n"] == 16 and r["fp32_top1"] == 1.0  # the labels are the FP32 model's answers
    assert r["int8_top1"] == pytest.approx(float((gated.int8_logits.argmax(1) == labels).mean()))
    assert r["passed"] == (r["drop_points"] <= 1.0)
    assert r["coverage"]["int8_layers"] == 3 and r["coverage"]["float_layers"] == []
    assert "graph" not in r  # no file written: write_gate records the graph


def test_gate_graphs_failing_keeps_the_all_int8_graph_when_no_fallback_passes(tiny_graphs,
                                                                               tmp_path):
    import shutil

    from ftedge.io import sha256_file

    src, x, labels = tiny_graphs
    for name in ("model.fp32.onnx", "model.int8.onnx"):
        shutil.copy(src / name, tmp_path / name)
    before = sha256_file(tmp_path / "model.int8.onnx")
    off = _gate(tmp_path, x, labels, max_drop=-1.0, fallback=False).result  # below any drop
    assert not off["passed"] and off["fallback"] == {"float_layers": [],
                                                     "why": "off (--no-fallback)"}
    tried = _gate(tmp_path, x, labels, max_drop=-1.0, fallback=True, cap_fraction=0.5).result
    assert not tried["passed"] and tried["fallback"]["float_layers"] == []
    assert tried["fallback"]["steps"] and "stays all-INT8" in tried["fallback"]["why"]
    assert sha256_file(tmp_path / "model.int8.onnx") == before  # written only when it passes
    assert tried["coverage"]["int8_layers"] == 3
    assert (tmp_path / "sensitivity.json").is_file()  # the fallback's ranking, beside the graph
