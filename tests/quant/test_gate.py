import numpy as np
import pytest

from ftedge.quant.gate import accuracy_gate, gate_markdown, mcnemar


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
    res = accuracy_gate(ref, test, labels, ["a", "b", "c"], max_drop=5.0)
    assert res["fp32_top1"] == 1.0 and res["int8_top1"] == 0.9
    assert res["drop_points"] == pytest.approx(10.0) and not res["passed"]
    assert res["top1_agreement"] == 0.9
    assert res["per_class"]["b"]["drop_points"] == pytest.approx(100 / 3)
    assert res["per_class"]["a"]["drop_points"] == 0.0
    assert accuracy_gate(ref, test, labels, ["a", "b", "c"], max_drop=10.0)["passed"]
    md = gate_markdown(res, "gate")
    assert "FAILED" in md and "| b | 3 |" in md


def test_a_runtime_that_loses_accuracy_fails_the_gate(monkeypatch, tmp_path):
    from ftedge.quant import gate

    labels = np.array([0, 1, 2, 0, 1, 2])
    good = np.eye(3)[labels]
    monkeypatch.setattr(gate.ov, "openvino_logits", lambda path, x: np.eye(3)[np.zeros(6, int)])
    res = gate.gate_int8_model(good, good, tmp_path / "m.onnx", None, labels, ["a", "b", "c"],
                               1.0)
    assert res["drop_points"] == 0 and not res["openvino"]["passed"] and not res["passed"]
    monkeypatch.setattr(gate.ov, "openvino_logits", lambda path, x: None)
    res = gate.gate_int8_model(good, good, tmp_path / "m.onnx", None, labels, ["a", "b", "c"],
                               1.0)
    assert res["passed"] and "openvino" not in res
    assert "ONNX Runtime only" in gate.gate_markdown(res, "g")
