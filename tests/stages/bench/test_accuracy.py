"""stages/bench/accuracy.py: top-1/top-5 and the gate against the reference, on known logits."""

from types import SimpleNamespace

import numpy as np
import pytest

from ftedge.stages.bench.accuracy import artifact_accuracy, device_pipeline_accuracy, top5

CLASSES = ["a", "b", "c"]


def _onehot(pred, n=3, scale=5.0):
    return np.eye(n, dtype=np.float32)[pred] * scale


def test_top5_counts_the_label_among_the_five_best():
    logits = np.array([[6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6]], np.float32)
    assert top5(logits, np.array([4, 0])) == 0.5  # rank 5 counts, rank 6 does not
    assert top5(logits[:, :3], np.array([2, 0])) == 1.0  # 3 classes: every label is in the top 3


def test_without_a_reference_only_absolute_numbers():
    labels = np.array([0, 1, 2, 0])
    out = artifact_accuracy(None, _onehot([0, 1, 1, 0]), labels, classes=CLASSES,
                            max_drop=1.0)
    assert out["n"] == 4 and out["top1"] == 0.75 and out["top5"] == 1.0
    assert out["reference"] is None and out["passed"] is None and "no FP32" in out["note"]


def test_against_the_reference_drop_agreement_and_mcnemar():
    labels = np.array([0, 1, 2] * 4)
    ref = _onehot(labels)
    pred = labels.copy()
    pred[[0, 3]] = 1  # two class-a images now wrong
    out = artifact_accuracy(ref, _onehot(pred), labels, classes=CLASSES, max_drop=1.0)
    assert out["reference_top1"] == 1.0 and out["top1"] == pytest.approx(10 / 12)
    assert out["drop_points"] == pytest.approx(100 * 2 / 12)
    assert out["top1_agreement"] == pytest.approx(10 / 12) and out["passed"] is False
    assert out["mcnemar"]["only_reference_right"] == 2
    assert out["mcnemar"]["only_artifact_right"] == 0
    assert out["per_class"]["a"]["drop_points"] == pytest.approx(50.0)
    assert out["per_class"]["b"]["drop_points"] == 0 and out["max_drop_points"] == 1.0
    same = artifact_accuracy(ref, ref.copy(), labels, classes=CLASSES, max_drop=1.0)
    assert same["drop_points"] == 0 and same["top1_agreement"] == 1.0 and same["passed"]
    assert same["max_abs_logit_diff"] == 0


def test_no_device_pipeline_no_emulated_figure():
    manifest = {"profile": {"name": "onnxruntime-cpu"}, "preprocessing": {}}
    assert device_pipeline_accuracy(SimpleNamespace(), [object()], np.zeros(1),
                                    manifest=manifest, exact_logits=np.zeros((1, 3))) is None
    manifest["profile"]["pipeline"] = {"name": "deepstream"}
    assert device_pipeline_accuracy(SimpleNamespace(), [], np.zeros(0), manifest=manifest,
                                    exact_logits=np.zeros((0, 3))) is None  # nothing to judge on
