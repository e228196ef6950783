"""Accuracy of one artifact against the FP32 PyTorch reference: the quantization gate, per artifact."""

from __future__ import annotations

import numpy as np

from ftedge.quant.gate import accuracy_gate
from ftedge.formats.run import BEST


def top5(logits: np.ndarray, labels: np.ndarray) -> float:
    k = min(5, logits.shape[1])
    return float((np.argsort(-logits, 1)[:, :k] == labels[:, None]).any(1).mean())


def artifact_accuracy(ref_logits: np.ndarray | None, logits: np.ndarray, labels: np.ndarray,
                      *, classes: list[str], max_drop: float) -> dict:
    """Top-1/top-5, and against the reference: drop, agreement, per-class drop, McNemar."""
    out = {"n": int(len(labels)), "top1": float((logits.argmax(1) == labels).mean()),
           "top5": top5(logits, labels)}
    if ref_logits is None:
        return {**out, "reference": None, "passed": None,
                "note": "no FP32 reference (the source run is not here): absolute numbers only"}
    gate = accuracy_gate(ref_logits, logits, labels, classes=classes, max_drop=max_drop)
    per_class = {c: {"reference_top1": v["fp32_top1"], "top1": v["int8_top1"],
                     "drop_points": v["drop_points"], "n": v["n"]}
                 for c, v in gate["per_class"].items()}
    m = gate["mcnemar"]
    return {**out, "reference": f"PyTorch FP32 ({BEST})", "reference_top1": gate["fp32_top1"],
            "reference_top5": top5(ref_logits, labels), "drop_points": gate["drop_points"],
            "drop_ci95_points": gate["drop_ci95_points"],
            "top1_agreement": gate["top1_agreement"],
            "max_abs_logit_diff": gate["max_logit_abs_diff"],
            "mcnemar": {"only_reference_right": m["only_fp32_right"],
                        "only_artifact_right": m["only_int8_right"], "p_value": m["p_value"]},
            "per_class": per_class, "max_drop_points": max_drop, "passed": gate["passed"]}



def device_pipeline_accuracy(runner, samples, labels: np.ndarray, *, manifest: dict,
                             exact_logits: np.ndarray) -> dict | None:
    """Top-1 of the artifact on the images preprocessed as its target's own pipeline does
    (the profile's `pipeline`: DeepStream's nvinfer, emulated), beside the exact contract's;
    None when the target runs ftedge's contract itself."""
    from ftedge.deploy.deepstream import emulate_samples, emulated_top1, in_graph
    from ftedge.runtime import infer_batches

    pipeline = (manifest.get("profile") or {}).get("pipeline")
    if not pipeline or not len(samples):
        return None
    contract = manifest["preprocessing"]
    x = emulate_samples(samples, contract, in_graph(manifest))
    return emulated_top1(labels, exact_logits, infer_batches(runner, x), contract=contract,
                         pipeline_name=pipeline.get("name", "deepstream"))
