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
