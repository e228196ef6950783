"""deploy/templates/cli.py: batch size, temperature, top-k, the unknown rule, padding."""

import numpy as np
import pytest

from ftedge.deploy.templates.artifact import ArtifactError
from ftedge.deploy.templates.cli import (batch_size, expand, run_batch, temperature_of, top_k,
                                         unknown_decision)
from tests.deploy.conftest import make_manifest


def test_batch_size_fixed_dynamic_and_default():
    fixed = make_manifest("onnxruntime", "model.fp32.onnx", batch=4)
    assert batch_size(fixed, None) == 4 and batch_size(fixed, 4) == 4
    with pytest.raises(ArtifactError, match="batches of exactly 4") as e:
        batch_size(fixed, 2)
    assert "--batch 4" in e.value.hint
    dynamic = make_manifest("onnxruntime", "model.fp32.onnx")
    assert batch_size(dynamic, 3) == 3 and batch_size(dynamic, None) == 8  # profile max_batch


def test_temperature_missing_damaged_and_given():
    m = make_manifest("onnxruntime", "model.fp32.onnx")
    t, note = temperature_of(m)
    assert t == 1.0 and "no calibration" in note
    assert temperature_of({**m, "calibration": {"temperature": 2.5}}) == (2.5, None)
    for bad in (0, -1.0, float("inf"), float("nan"), True, "2"):
        with pytest.raises(ArtifactError, match="temperature is damaged"):
            temperature_of({**m, "calibration": {"temperature": bad}})


def test_top_k_probabilities_and_temperature():
    logits = np.array([1.0, 3.0, 2.0])
    top = top_k(logits, ["a", "b", "c"], 2)
    assert [r["class"] for r in top] == ["b", "c"] and [r["index"] for r in top] == [1, 2]
    p = np.exp(logits - 3) / np.exp(logits - 3).sum()
    assert top[0]["probability"] == pytest.approx(p[1]) and top[0]["logit"] == 3.0
    hot = top_k(logits, ["a", "b", "c"], 3, temperature=100.0)
    assert hot[0]["class"] == "b" and hot[0]["probability"] == pytest.approx(1 / 3, abs=0.01)
    tie = top_k(np.array([2.0, 2.0]), ["x", "y"], 2)
    assert [r["class"] for r in tie] == ["x", "y"]  # stable on ties


def test_unknown_above_the_threshold_only():
    rule = {"threshold": 0.5}
    assert unknown_decision(0.5, rule)["is_unknown"] is False
    assert unknown_decision(0.51, rule) == {"score": 0.51, "threshold": 0.5, "is_unknown": True}


def test_a_fixed_batch_model_gets_a_zero_padded_chunk_and_only_the_real_rows_back():
    seen = []

    class Model:
        def infer_scored(self, x):
            seen.append(x.copy())
            return x.reshape(len(x), -1).sum(1, keepdims=True), x[:, 0, 0, 0]

    arrays = [np.full((1, 2, 2), i + 1, np.float32) for i in range(3)]
    logits, scores = run_batch(Model(), arrays, 4, fixed=True)
    assert seen[0].shape == (4, 1, 2, 2) and not seen[0][3].any()
    assert logits[:, 0].tolist() == [4.0, 8.0, 12.0] and scores.tolist() == [1.0, 2.0, 3.0]
    logits, _ = run_batch(Model(), arrays, 4, fixed=False)
    assert seen[1].shape == (3, 1, 2, 2) and len(logits) == 3


def test_expand_lists_image_files_of_folders_sorted(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.png", "d/sub/a.JPG", "d/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    files = expand([tmp_path / "d", tmp_path / "x.png"])
    assert files == [str(tmp_path / "d/b.png"), str(tmp_path / "d/sub/a.JPG"),
                     str(tmp_path / "x.png")]
