"""Which layer breaks INT8, and a float fallback that keeps the rest fast.

Sensitivity is measured on the real Q/DQ graph in ONNX Runtime: for each quantized layer, the
same graph with only that layer kept in float (graph/fallback.py), run on the val split, gives
the top-1 change and the logit error against the FP32 model. The fallback adds the layers whose
float copy helps most, one at a time, to the shared graph until the accuracy gate holds or the
cap (a fraction of the quantized layers) is reached.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ftedge.config import FALLBACK_CAP, or_default
from ftedge.graph.fallback import keep_in_float, quantized_layers
from ftedge.io import atomic_path, atomic_save_figure, atomic_write_json, atomic_write_text
from ftedge.runtime.onnxruntime.runner import onnx_logits


def layer_sensitivity(model, x: np.ndarray, labels: np.ndarray, *, fp32_logits: np.ndarray,
                      int8_logits: np.ndarray | None = None, on_layer=None) -> dict:
    """Per quantized layer: top-1 and logit error vs FP32 with only that layer in float
    (`int8_logits`: the whole graph's, when the caller has them already). `on_layer(done,
    total, name)` is called after each layer (a stage draws its progress bar with it)."""
    base = onnx_logits(model, x) if int8_logits is None else int8_logits
    base_top1 = float((base.argmax(1) == labels).mean())
    base_err = float(np.abs(base - fp32_logits).mean())
    fp32_top1 = float((fp32_logits.argmax(1) == labels).mean())
    rows = []
    layers = quantized_layers(model)
    for done, layer in enumerate(layers, 1):
        logits = onnx_logits(keep_in_float(model, [layer.name]), x)
        top1 = float((logits.argmax(1) == labels).mean())
        err = float(np.abs(logits - fp32_logits).mean())
        rows.append({"layer": layer.name, "op": layer.op_type,
                     "weight_shape": list(layer.weight_shape),
                     "top1_change_points": 100 * (top1 - base_top1),
                     "logit_error": err, "logit_error_change": err - base_err})
        if on_layer is not None:
            on_layer(done, len(layers), layer.name)
    return {"n": int(len(labels)), "fp32_top1": fp32_top1, "int8_top1": base_top1,
            "int8_logit_error": base_err, "layers": rows}


def ranked(sensitivity: dict) -> list[str]:
    """Layers by how much keeping them in float helps: top-1 (what the gate measures) first,
    then the logit error (which breaks ties on a small val split)."""
    rows = sorted(sensitivity["layers"],
                  key=lambda r: (-r["top1_change_points"], r["logit_error_change"]))
    return [r["layer"] for r in rows]


def sensitivity_markdown(s: dict, graph: str) -> str:
    lines = [f"# INT8 sensitivity of {graph}", "",
             f"{s['n']} val images; FP32 top-1 {s['fp32_top1']:.4f}, INT8 top-1 "
             f"{s['int8_top1']:.4f}, mean |logit - FP32| {s['int8_logit_error']:.4f}. Each row: "
             "the same graph with only that layer kept in float (most helpful first).", "",
             "| layer | op | top-1 change (points) | mean logit error | change |",
             "|---|---|---|---|---|"]
    order = {name: i for i, name in enumerate(ranked(s))}
    for r in sorted(s["layers"], key=lambda r: order[r["layer"]]):
        lines.append(f"| {r['layer']} | {r['op']} | {r['top1_change_points']:+.2f} | "
                     f"{r['logit_error']:.4f} | {r['logit_error_change']:+.4f} |")
    return "\n".join(lines) + "\n"


def plot_sensitivity(s: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = s["layers"]
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(rows) + 2), 3.6))
    ax.bar(range(len(rows)), [-r["logit_error_change"] for r in rows], color="tab:blue")
    ax.set_xticks(range(len(rows)), [r["layer"] for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("logit error removed\nwhen kept in float")
    ax.set_title("Per-layer INT8 sensitivity (graph order)")
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def write_sensitivity(folder: Path, s: dict, graph: str) -> dict[str, Path]:
    atomic_write_json(folder / "sensitivity.json", {"graph": graph, **s,
                                                    "ranked": ranked(s)})
    return {"json": folder / "sensitivity.json",
            "md": atomic_write_text(folder / "sensitivity.md", sensitivity_markdown(s, graph)),
            "png": plot_sensitivity(s, folder / "sensitivity.png")}


def layer_cap(layers: int, cap_fraction: float) -> int:
    """How many layers the fallback may keep in float: the fraction, at least one."""
    return max(1, math.floor(cap_fraction * layers))


def float_fallback(model, sensitivity: dict, passes, *, cap_fraction: float | None = None,
                   start: tuple[float, float] = (float("inf"), float("inf"))):
    """Greedy forward selection of layers to keep in float, most sensitive first.

    Each candidate is tried on top of the layers kept so far and kept only when the gate's
    drop gets smaller, or stays and the mean logit error against FP32 gets smaller (single-layer
    sensitivities do not add up: a layer that helps alone can hurt next to another; and when
    the loss is spread over many layers no single one moves top-1 on a small val split); it
    stops when `passes(model)` is True, when `cap_fraction` of the quantized layers are in
    float, or after trying three times that many candidates.

    Args:
        model: the INT8 Q/DQ graph (onnx.ModelProto).
        sensitivity: from `layer_sensitivity`.
        passes: model -> (bool, gate result) (the accuracy gate).
        start: the all-INT8 graph's (drop, logit error), which a kept layer must improve on.
    Returns:
        (mixed model or None when the gate never passed, float layers kept, every try).
    """
    order = ranked(sensitivity)
    cap = layer_cap(len(order), or_default(cap_fraction, FALLBACK_CAP))
    steps, chosen, best = [], [], start
    for name in order[:3 * cap]:
        trial = chosen + [name]
        mixed = keep_in_float(model, trial)
        ok, result = passes(mixed)
        score = (result["drop_points"], result.get("logit_error", float("inf")))
        kept = ok or score < best
        steps.append({"layer": name, "passed": ok, "kept": kept,
                      "drop_points": result["drop_points"], "logit_error": score[1]})
        if ok:
            return mixed, trial, steps
        if kept:
            chosen, best = trial, score
            if len(chosen) == cap:
                break
    return None, chosen, steps


def save_model(model, path: Path) -> Path:
    import onnx

    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return path
