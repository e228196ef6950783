"""The unknown score appended to a graph computes what numpy computes from the same features,
in ONNX Runtime and OpenVINO; the threshold accepts the stated share; the OOD metrics."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ftedge.errors import ExportError
from ftedge.graph.unknown import (SCORES, UNKNOWN_OUTPUT, append_score, feature_tensor,
                                  fit_score, score_numpy, threshold_for_tpr, with_outputs)
from ftedge.metrics import accuracy_coverage, ood_rates

N_CLASSES, DIMS = 4, 16


def tiny_classifier() -> onnx.ModelProto:
    """input [N,3,8,8] -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> logits: the
    shape of ftedge's exported heads (features = the Gemm's input)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (DIMS, 3, 3, 3)).astype(np.float32),
                                     "cw"),
             numpy_helper.from_array(rng.normal(0, 0.5, (N_CLASSES, DIMS)).astype(np.float32),
                                     "w"),
             numpy_helper.from_array(rng.normal(0, 0.1, N_CLASSES).astype(np.float32), "b")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "cw"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["p"]),
         helper.make_node("Flatten", ["p"], ["feats"], axis=1),
         helper.make_node("Gemm", ["feats", "w", "b"], ["logits"], transB=1)],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", N_CLASSES])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def run_ort(model, x):
    from ftedge.runtime.onnxruntime.runner import inference_session

    session = inference_session(model)
    names = [o.name for o in model.graph.output]
    return dict(zip(names, session.run(names, {"input": x})))


def run_openvino(model, x, tmp_path):
    ov = pytest.importorskip("openvino")
    onnx.save(model, str(tmp_path / "m.onnx"))
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(tmp_path / "m.onnx")), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    request.infer({0: x})
    return {o.name: request.get_tensor(o.name).data.copy() for o in model.graph.output}


@pytest.fixture(scope="module")
def fitted():
    """The tiny graph, features/labels of 60 'train' images, and 20 images to score."""
    rng = np.random.default_rng(1)
    model = tiny_classifier()
    x = rng.normal(size=(80, 3, 8, 8)).astype(np.float32)
    out = run_ort(with_outputs(model, ["feats"]), x[:60])
    labels = np.arange(60) % N_CLASSES
    return model, out["feats"], labels, x[60:]


def test_features_are_the_classifiers_input():
    assert feature_tensor(tiny_classifier()) == "feats"


def test_a_graph_without_a_classifier_at_its_end_is_refused():
    model = tiny_classifier()
    model.graph.node.append(helper.make_node("Relu", ["logits"], ["out"]))
    model.graph.output[0].name = "out"
    with pytest.raises(ExportError, match="penultimate features"):
        feature_tensor(model)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("kind", SCORES)
def test_the_graph_output_is_the_numpy_score_of_the_same_features(fitted, kind, runtime,
                                                                   tmp_path):
    model, train_f, train_y, x = fitted
    params = fit_score(kind, train_f, train_y, n_classes=N_CLASSES, k=3)
    scored = with_outputs(append_score(model, kind, params), ["feats"])
    out = (run_ort(scored, x) if runtime == "onnxruntime" else run_openvino(scored, x, tmp_path))
    assert [o.name for o in scored.graph.output][:2] == ["logits", UNKNOWN_OUTPUT]
    assert out[UNKNOWN_OUTPUT].shape == (len(x), 1)
    want = score_numpy(kind, params, out["logits"], features=out["feats"])
    np.testing.assert_allclose(out[UNKNOWN_OUTPUT][:, 0], want, rtol=1e-4, atol=1e-5)
    assert np.ptp(want) > 0  # the score tells the images apart


def test_scores_rank_far_images_as_more_unknown(fitted):
    """Images far from the train features score higher on every feature score."""
    model, train_f, train_y, x = fitted
    far = (x * 40 + 20).astype(np.float32)
    for kind in ("mahalanobis", "knn"):
        params = fit_score(kind, train_f, train_y, n_classes=N_CLASSES, k=3)
        scored = append_score(model, kind, params)
        near_s = run_ort(scored, x)[UNKNOWN_OUTPUT][:, 0]
        far_s = run_ort(scored, far)[UNKNOWN_OUTPUT][:, 0]
        assert ood_rates(near_s, far_s)["auroc"] > 0.9, kind


def test_only_plain_opset17_ops_are_added(fitted):
    model, train_f, train_y, _ = fitted
    allowed = {"MatMul", "Unsqueeze", "Sub", "Mul", "ReduceSum", "ReduceMin", "ReduceMax",
               "Softmax", "Neg", "Exp", "Log", "Add", "Sqrt", "Max", "Div", "TopK", "Gather",
               "Identity"}
    for kind in SCORES:
        scored = append_score(model, kind, fit_score(kind, train_f, train_y,
                                                     n_classes=N_CLASSES, k=3))
        added = {n.op_type for n in scored.graph.node[len(model.graph.node):]}
        assert added <= allowed, (kind, added - allowed)


def test_appending_twice_and_bad_inputs_are_refused(fitted):
    model, train_f, train_y, _ = fitted
    once = append_score(model, "energy", {})
    with pytest.raises(ExportError, match="already has an output"):
        append_score(once, "energy", {})
    with pytest.raises(ExportError, match="unknown score 'cosine'"):
        fit_score("cosine", train_f, train_y, n_classes=N_CLASSES)
    with pytest.raises(ExportError, match="no image of class index 3"):
        fit_score("mahalanobis", train_f, train_y % 3, n_classes=N_CLASSES)
    bank = fit_score("knn", train_f, train_y, n_classes=N_CLASSES, k=3, max_bank=25)["bank"]
    assert bank.shape == (25, DIMS)
    assert np.allclose(np.linalg.norm(bank, axis=1), 1, atol=1e-6)
    assert {tuple(np.round(r, 5)) for r in bank} <= {
        tuple(np.round(r / np.linalg.norm(r), 5)) for r in train_f}  # rows of the train set
    with pytest.raises(ExportError, match="k=100"):
        fit_score("knn", train_f, train_y, n_classes=N_CLASSES, k=100)


@pytest.mark.parametrize("n, tpr", [(192, 0.95), (20, 0.95), (7, 0.5), (100, 0.9)])
def test_the_threshold_accepts_the_stated_share(n, tpr):
    scores = np.random.default_rng(n).normal(size=n)
    thr = threshold_for_tpr(scores, tpr)
    accepted = (scores <= thr).mean()
    assert tpr <= accepted < tpr + 1 / n + 1e-12
    assert (scores <= np.nextafter(thr, -np.inf)).mean() < tpr  # the smallest such threshold


def test_ood_rates_numbers():
    known, unknown = np.array([0.0, 1, 2, 3]), np.array([2.5, 10])
    r = ood_rates(known, unknown, target_tpr=0.95, threshold=2.0)
    assert r["auroc"] == pytest.approx(7 / 8)  # 7 of the 8 (known, unknown) pairs ordered
    assert r["fpr_at_tpr"] == pytest.approx(0.5)  # accepting all 4 knowns accepts 2.5
    assert r["at_threshold"] == {"threshold": 2.0, "tpr": 0.75, "fpr": 0.0}
    assert ood_rates(known, known + 100)["auroc"] == 1.0
    assert ood_rates(known, known + 100)["fpr_at_tpr"] == 0.0


def test_accuracy_against_coverage_keeps_the_lowest_scores():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    correct = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    points = {p["coverage"]: (p["n"], p["top1"])
              for p in accuracy_coverage(scores, correct, (1.0, 0.8, 0.5))}
    assert points == {1.0: (10, 0.8), 0.8: (8, 1.0), 0.5: (5, 1.0)}
