"""The unknown score of an artifact: fitted on the run's train split from the source graph's
own features, appended to the graph (graph/unknown.py), its threshold chosen on the val split
from the artifact's own outputs; what the manifest's `unknown` section records."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftedge.config import UNKNOWN_KNN_BANK, UNKNOWN_SCORE, UNKNOWN_TPR
from ftedge.data.transforms import preprocess_samples
from ftedge.errors import ConfigError
from ftedge.formats.run import RunFolder, load_onnx
from ftedge.graph.unknown import (SCORES, UNKNOWN_OUTPUT, append_score, feature_tensor,
                                  fit_score, threshold_for_tpr, with_outputs)
from ftedge.runtime import Runner, infer_scored
from ftedge.runtime.onnxruntime.runner import OrtRunner, inference_session

BATCH = 32


def check_unknown_options(score: str | None, tpr: float | None) -> tuple[str | None, float]:
    """(score or None for "off", target TPR); None means the defaults (config.py)."""
    score = UNKNOWN_SCORE if score is None else score
    tpr = UNKNOWN_TPR if tpr is None else tpr
    if score != "off" and score not in SCORES:
        raise ConfigError(f"--unknown-score {score!r} is not one of {', '.join(SCORES)} or off")
    if not 0.5 <= tpr < 1:  # NaN fails this too
        raise ConfigError(f"--unknown-tpr {tpr} must be in [0.5, 1): the fraction of in-"
                          "distribution images the threshold accepts (default "
                          f"{UNKNOWN_TPR})")
    return (None if score == "off" else score), float(tpr)


def _images(loaded, split: str):
    samples = RunFolder(loaded.path).samples(split, loaded.classes)
    return samples, np.array([s.label for s in samples])


def scored_graph(loaded, graph: Path, score: str, *, k: int | None = None):
    """The ONNX graph `graph` with `score` appended, fitted on the run's train split as ONNX
    Runtime computes its features from this graph. Returns (ModelProto, facts)."""
    model = load_onnx(graph)
    samples, labels = _images(loaded, "train")
    facts = {"score": score, "output": UNKNOWN_OUTPUT, "higher_is_unknown": True,
             "fitted_on": {"split": "train", "n": len(samples), "graph": graph.name}}
    feats = None
    if score not in ("msp", "energy", "maxlogit"):
        feats = feature_tensor(model)
        session = inference_session(with_outputs(model, [feats]))
        f = np.concatenate([session.run([feats], {"input": preprocess_samples(
            samples[i:i + BATCH], loaded.contract)})[0] for i in range(0, len(samples), BATCH)])
        facts["fitted_on"].update(features=feats, dims=int(f.shape[1]))
    else:
        f = None
    params = fit_score(score, f, labels, n_classes=len(loaded.classes), k=k,
                       max_bank=UNKNOWN_KNN_BANK)
    if "k" in params:
        facts.update(k=int(params["k"]), bank=int(len(params["bank"])))
    return append_score(model, score, params), facts


def val_scores(loaded, runner: Runner) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(logits, unknown scores, labels) of the run's val split through `runner`; scores None
    when the runner does not give the second output (a wrapper without infer_scored)."""
    samples, labels = _images(loaded, "val")
    logits, scores = [], []
    for i in range(0, len(samples), BATCH):
        lo, sc = infer_scored(runner, preprocess_samples(samples[i:i + BATCH], loaded.contract))
        logits.append(lo)
        scores.append(sc)
    if any(sc is None for sc in scores):
        return np.concatenate(logits), None, labels
    return np.concatenate(logits), np.concatenate(scores), labels


def threshold_record(scores: np.ndarray, logits: np.ndarray, labels: np.ndarray, *, tpr: float,
                     measured_on: str) -> dict:
    """The threshold accepting `tpr` of the val images, and what it gives on them."""
    thr = threshold_for_tpr(scores, tpr)
    accepted = scores <= thr
    correct = logits.argmax(1) == labels
    return {"threshold": thr, "target_tpr": tpr, "decision": "unknown when score > threshold",
            "val": {"n": int(len(scores)), "tpr": float(accepted.mean()),
                    "top1_accepted": float(correct[accepted].mean()) if accepted.any() else None,
                    "top1_all": float(correct.mean())},
            "measured_on": measured_on}


def source_threshold(loaded, scored, tpr: float,
                     *, why: str = "the artifact does not run here") -> dict:
    """The threshold from the scored source graph in ONNX Runtime: for artifacts that cannot
    run here (a TensorRT engine is built on the device)."""
    logits, scores, labels = val_scores(loaded, OrtRunner(scored))
    return threshold_record(scores, logits, labels, tpr=tpr,
                            measured_on=f"the source graph in ONNX Runtime ({why})")
