"""The unknown (out-of-distribution) score: fitted in numpy, appended to the ONNX graph as a
second output, so every artifact says "none of my classes" by itself.

Every score is "higher = more unknown" and comes out as a [batch, 1] float tensor named
UNKNOWN_OUTPUT. Logit scores (msp, energy, maxlogit) need nothing fitted; feature scores read
the penultimate features (the classifier's input, after global pooling) and carry what was
fitted on the train split as initializers:

- mahalanobis: min over classes of (f - mu_c)^T P (f - mu_c) / D, P the inverse of one
  shared covariance (Ledoit-Wolf shrinkage: 1280-d features from a few hundred images),
  computed as ||f W - mu_c W||^2 with P / D = W W^T, so the graph has no D x D quadratic
  form to cancel.
- knn: 1 - the cosine similarity to the k-th nearest normalised train feature (TopK).

Only plain opset-17 ops (MatMul, Sub, Mul, ReduceSum/Min/Max, Softmax, TopK, Gather...), so
ONNX Runtime, OpenVINO and TensorRT run it. `score_numpy` is the reference the graph is tested
against.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ftedge.errors import ExportError

UNKNOWN_OUTPUT = "unknown_score"
LOGIT_SCORES = ("msp", "energy", "maxlogit")
FEATURE_SCORES = ("mahalanobis", "knn")
SCORES = LOGIT_SCORES + FEATURE_SCORES
DEFAULT_K = 10  # k-NN: the k-th neighbour (Sun et al. 2022 use k = 50 on ImageNet-sized sets)


def _producer(model: onnx.ModelProto, tensor: str):
    return next((n for n in model.graph.node if tensor in n.output), None)


def feature_tensor(model: onnx.ModelProto, logits: str | None = None) -> str:
    """The penultimate features: the input of the Gemm/MatMul that writes the logits (in a
    Q/DQ graph its DequantizeLinear output: the features the classifier itself sees)."""
    logits = logits or model.graph.output[0].name
    node = _producer(model, logits)
    if node is not None and node.op_type == "Add":  # MatMul + Add instead of one Gemm
        node = next((p for p in map(lambda t: _producer(model, t), node.input)
                     if p is not None and p.op_type == "MatMul"), node)
    if node is None or node.op_type not in ("Gemm", "MatMul"):
        raise ExportError(f"the graph's {logits!r} is not written by a Gemm or MatMul "
                          f"({node.op_type if node else 'no node'}), so its penultimate "
                          "features cannot be found",
                          "export the run again with ftedge's own torch->ONNX export")
    return node.input[0]


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of `model` that also outputs the float tensors `names` (shape [batch, ?])."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    have = {o.name for o in out.graph.output}
    for name in names:
        if name not in have:
            out.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                                  ["batch", None]))
    return out


def fit_score(kind: str, features: np.ndarray, labels: np.ndarray, *, n_classes: int,
              k: int | None = None, max_bank: int | None = None) -> dict[str, np.ndarray]:
    """What a score needs from the train split: {} for logit scores; class means and the
    whitening W of the shared precision (mahalanobis); normalised features (knn: at most
    `max_bank` of them, a seeded sample, so the graph does not grow with the data set)."""
    if kind not in SCORES:
        raise ExportError(f"unknown score {kind!r}", f"valid: {', '.join(SCORES)}")
    if kind in LOGIT_SCORES:
        return {}
    f = np.asarray(features, np.float64)
    if kind == "knn":
        k = DEFAULT_K if k is None else k
        if max_bank is not None and len(f) > max_bank:
            f = f[np.sort(np.random.default_rng(0).choice(len(f), max_bank, replace=False))]
        if not 1 <= k <= len(f):
            raise ExportError(f"k-NN with k={k} needs at least {k} train images (has {len(f)})",
                              "use a smaller k, or another score")
        return {"bank": (f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-12)
                         ).astype(np.float32), "k": np.array(k, np.int64)}
    from sklearn.covariance import LedoitWolf

    missing = sorted(set(range(n_classes)) - set(np.asarray(labels).tolist()))
    if missing:
        raise ExportError(f"the train split has no image of class index {missing[0]}",
                          "every class needs train images for the Mahalanobis score")
    means = np.stack([f[labels == c].mean(0) for c in range(n_classes)])
    lw = LedoitWolf().fit(f - means[labels])
    # P = V diag(lam) V^T = W W^T with W = V diag(sqrt(lam)): the distance is ||(f - mu) W||^2
    lam, vec = np.linalg.eigh(lw.precision_)
    # divided by the dimension (the squared distance's expectation in distribution): scores
    # near 1, far from FP16's 65504 in FP16 artifacts and TensorRT FP16 engines
    w = vec * np.sqrt(lam.clip(0) / f.shape[1])
    return {"w": w.astype(np.float32), "centres": (means @ w).astype(np.float32)}


def score_numpy(kind: str, params: dict, logits: np.ndarray, *, features: np.ndarray | None
                ) -> np.ndarray:
    """The score as the appended graph computes it (float64 here): shape [N]."""
    z = np.asarray(logits, np.float64)
    if kind == "maxlogit":
        return -z.max(1)
    if kind in ("msp", "energy"):
        m = z.max(1, keepdims=True)
        lse = (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
        return -np.exp(z.max(1) - lse) if kind == "msp" else -lse
    f = np.asarray(features, np.float64)
    if kind == "mahalanobis":
        proj = f @ params["w"].astype(np.float64)
        d = ((proj[:, None, :] - params["centres"][None].astype(np.float64)) ** 2).sum(2)
        return d.min(1)
    fn = f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-12)
    sims = fn @ params["bank"].astype(np.float64).T
    return 1.0 - -np.sort(-sims, axis=1)[:, int(params["k"]) - 1]


class _Builder:
    """Adds nodes and initializers to a graph under one name prefix."""

    def __init__(self, model: onnx.ModelProto, prefix: str):
        self.model, self.prefix = model, prefix

    def const(self, name: str, value) -> str:
        self.model.graph.initializer.append(numpy_helper.from_array(np.asarray(value),
                                                                    self.prefix + name))
        return self.prefix + name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.model.graph.node.append(helper.make_node(op, inputs, [self.prefix + name],
                                                      name=self.prefix + name, **attrs))
        return self.prefix + name


def append_score(model: onnx.ModelProto, kind: str, params: dict, *, logits: str | None = None,
                 output: str = UNKNOWN_OUTPUT) -> onnx.ModelProto:
    """A copy of `model` with the score appended as an output `output` ([batch, 1] float,
    higher = more unknown); the logits stay the first output."""
    if kind not in SCORES:
        raise ExportError(f"unknown score {kind!r}", f"valid: {', '.join(SCORES)}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if any(o.name == output for o in out.graph.output):
        raise ExportError(f"the graph already has an output {output!r}",
                          "append the score to the run's graph, not to an artifact's")
    b = _Builder(out, f"ftedge_{output}/")
    logits = logits or out.graph.output[0].name
    if kind == "maxlogit":
        score = b.node("ReduceMax", [logits], "max_logit", axes=[1], keepdims=1)
    elif kind == "msp":
        probs = b.node("Softmax", [logits], "softmax", axis=1)
        score = b.node("ReduceMax", [probs], "max_prob", axes=[1], keepdims=1)
    elif kind == "energy":
        # log-sum-exp by hand: OpenVINO 2026.4's ReduceLogSumExp differed from ORT by ~3.8 on a 3-class graph
        top = b.node("ReduceMax", [logits], "max_logit", axes=[1], keepdims=1)
        exp = b.node("Exp", [b.node("Sub", [logits, top], "shifted")], "exp")
        total = b.node("ReduceSum", [exp, b.const("axis1", np.array([1]))], "sum_exp",
                      keepdims=1)
        score = b.node("Add", [top, b.node("Log", [total], "log_sum")], "logsumexp")
    elif kind == "mahalanobis":
        feats = feature_tensor(out, logits)
        proj = b.node("MatMul", [feats, b.const("w", params["w"])], "projected")
        proj3 = b.node("Unsqueeze", [proj, b.const("axis1", np.array([1]))], "proj3")
        diff = b.node("Sub", [proj3, b.const("centres", params["centres"])], "diff")
        sq = b.node("Mul", [diff, diff], "squared")
        dist = b.node("ReduceSum", [sq, b.const("axis2", np.array([2]))], "dist",
                     keepdims=0)
        score = b.node("ReduceMin", [dist], "score", axes=[1], keepdims=1)
    else:
        feats = feature_tensor(out, logits)
        sq = b.node("Mul", [feats, feats], "f2")
        norm2 = b.node("ReduceSum", [sq, b.const("axis1", np.array([1]))], "norm2",
                      keepdims=1)
        norm = b.node("Sqrt", [b.node("Max", [norm2, b.const(
            "eps", np.array(1e-24, np.float32))], "norm2_safe")], "norm")
        unit = b.node("Div", [feats, norm], "unit")
        sims = b.node("MatMul", [unit, b.const("bank_t", params["bank"].T.copy())],
                     "sims")
        k = b.const("k", np.array([int(params["k"])], np.int64))
        top = helper.make_node("TopK", [sims, k], [b.prefix + "top", b.prefix + "top_idx"],
                               name=b.prefix + "topk", axis=1, largest=1, sorted=1)
        out.graph.node.append(top)
        kth = b.node("Gather", [b.prefix + "top", b.const("last", np.array(
            [int(params["k"]) - 1], np.int64))], "kth", axis=1)
        score = b.node("Sub", [b.const("one", np.array(1.0, np.float32)), kth],
                      "score")
        return _finish(out, b, score, output)
    if kind in LOGIT_SCORES:  # higher logit/probability = more known: negate
        score = b.node("Neg", [score], "score")
    return _finish(out, b, score, output)


def _finish(model: onnx.ModelProto, b: _Builder, score: str, output: str) -> onnx.ModelProto:
    model.graph.node.append(helper.make_node("Identity", [score], [output],
                                             name=b.prefix + "output"))
    batch = model.graph.output[0].type.tensor_type.shape.dim[0]
    dim0 = batch.dim_param or batch.dim_value or "batch"
    model.graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT,
                                                            [dim0, 1]))
    onnx.checker.check_model(model, full_check=True)
    return model


def threshold_for_tpr(known_scores: np.ndarray, target_tpr: float) -> float:
    """The smallest threshold that accepts (score <= threshold) at least `target_tpr` of the
    in-distribution images: the ceil(target * n)-th smallest score."""
    s = np.sort(np.asarray(known_scores, np.float64))
    if not len(s):
        raise ExportError("no in-distribution images to choose the unknown threshold on",
                          "the run needs a val split")
    i = int(np.ceil(target_tpr * len(s) - 1e-9)) - 1
    return float(s[min(max(i, 0), len(s) - 1)])
