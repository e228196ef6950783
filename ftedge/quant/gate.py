"""The accuracy gate: an INT8 model against its FP32 reference on the same images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftedge.config import FALLBACK_CAP, or_default
from ftedge.formats.run import BEST, GATE, load_onnx
from ftedge.graph.coverage import coverage_of_file
from ftedge.io import atomic_write_json, atomic_write_text, sha256_file
from ftedge.quant.sensitivity import (float_fallback, layer_cap, layer_sensitivity, save_model,
                                      write_sensitivity)
from ftedge.runtime.openvino import runner as ov
from ftedge.runtime.onnxruntime.runner import onnx_logits

__all__ = ["GraphGate", "accuracy_gate", "drop_interval", "drop_text", "gate_graphs",
           "gate_int8_model", "gate_markdown", "gate_with_fallback", "mcnemar", "onnx_logits",
           "write_gate"]


def mcnemar(ref_correct: np.ndarray, test_correct: np.ndarray) -> dict:
    """Exact McNemar test on the images where exactly one of the two models is right."""
    from scipy.stats import binomtest

    only_ref = int(np.sum(ref_correct & ~test_correct))
    only_test = int(np.sum(~ref_correct & test_correct))
    n = only_ref + only_test
    p = binomtest(min(only_ref, only_test), n, 0.5).pvalue if n else 1.0
    return {"only_fp32_right": only_ref, "only_int8_right": only_test, "p_value": float(p)}


def drop_interval(only_ref: int, only_test: int, n: int, *, level: float = 0.95
                  ) -> tuple[float, float]:
    """An exact interval of the top-1 drop in points, given the images where exactly one of the
    two models is right (McNemar's discordant pairs, the only images the drop depends on):
    Clopper-Pearson for the share of them only the reference gets right, scaled to the drop.
    It shows what a val split of n images can tell: with 272 images and 4 such images split
    3:1, the drop is 0.74 points and its 95% interval -0.90 to +1.45. Conditional on the number
    of such images, as McNemar's exact test is."""
    from scipy.stats import binomtest

    m = only_ref + only_test
    if m == 0:
        return 0.0, 0.0
    ci = binomtest(only_ref, m, 0.5).proportion_ci(level, method="exact")
    return 100 * (2 * ci.low - 1) * m / n, 100 * (2 * ci.high - 1) * m / n


def accuracy_gate(ref_logits: np.ndarray, test_logits: np.ndarray, labels: np.ndarray,
                  *, classes: list[str], max_drop: float) -> dict:
    """Top-1 of each, drop in points, agreement, per-class drop, McNemar; passed = drop <= max_drop."""
    ref_pred, test_pred = ref_logits.argmax(1), test_logits.argmax(1)
    ref_ok, test_ok = ref_pred == labels, test_pred == labels
    per_class = {}
    for i, c in enumerate(classes):
        mask = labels == i
        if mask.any():
            r, t = float(ref_ok[mask].mean()), float(test_ok[mask].mean())
            per_class[c] = {"fp32_top1": r, "int8_top1": t, "drop_points": 100 * (r - t),
                            "n": int(mask.sum())}
    drop = 100 * (float(ref_ok.mean()) - float(test_ok.mean()))
    m = mcnemar(ref_ok, test_ok)
    return {
        "n": int(len(labels)),
        "fp32_top1": float(ref_ok.mean()),
        "int8_top1": float(test_ok.mean()),
        "drop_points": drop,
        "top1_agreement": float((ref_pred == test_pred).mean()),
        "max_logit_abs_diff": float(np.abs(ref_logits - test_logits).max()),
        "mcnemar": m,
        "drop_ci95_points": list(drop_interval(m["only_fp32_right"], m["only_int8_right"],
                                               len(labels))),
        "one_image_points": 100 / len(labels),
        "per_class": per_class,
        "max_drop_points": max_drop,
        "passed": bool(drop <= max_drop),
    }


def _fallback_lines(fb: dict | None) -> list[str]:
    if not fb:
        return []
    layers = fb.get("float_layers") or []
    return [f"Float fallback: {len(layers)} layer(s) kept in float"
            + (f" ({', '.join(layers)})" if layers else "") + f": {fb['why']}", ""]


def _checkpoint_lines(sel: dict | None) -> list[str]:
    if not sel or not sel.get("candidates"):
        return []
    scored = ", ".join(f"epoch {c['epoch']} {c['onnx_runtime_top1']:.4f}"
                       for c in sel["candidates"])
    return [f"QAT checkpoint: epoch {sel['chosen_epoch']}, the best in ONNX Runtime of the "
            f"epochs with the best fake-quantized top-1 ({scored}), chosen on this val split "
            f"as {BEST} is", ""]


def _budget_below_one_image(result: dict) -> bool:
    return result["max_drop_points"] < result["one_image_points"]


def drop_text(result: dict) -> str:
    """The drop as the commands print it: value, 95% interval, budget (and when the budget is
    less than one image)."""
    lo, hi = result["drop_ci95_points"]
    below = "; the budget is less than one image here" if _budget_below_one_image(result) else ""
    return (f"drop {result['drop_points']:+.2f} points (95% interval {lo:+.2f} to {hi:+.2f}; "
            f"budget {result['max_drop_points']:.2f}{below})")


def _resolution_lines(result: dict) -> list[str]:
    """What this many images can tell: the drop's 95% interval, and a budget below one image."""
    if "drop_ci95_points" not in result:  # gate.json written before the interval existed
        return []
    lo, hi = result["drop_ci95_points"]
    lines = [f"95% interval of the drop: {lo:+.2f} to {hi:+.2f} points (exact, from the images "
             f"only one of the two got right); one image is {result['one_image_points']:.2f} "
             "points"]
    if _budget_below_one_image(result):
        lines.append(f"The budget ({result['max_drop_points']:.2f} points) is less than one "
                     f"image on these {result['n']} images: a single image decides pass or "
                     "fail; a larger val split measures it")
    return [*lines, ""]


def gate_markdown(result: dict, title: str) -> str:
    """A readable table of the gate result."""
    m = result["mcnemar"]
    lines = [
        f"# {title}", "",
        f"{'PASSED' if result['passed'] else 'FAILED'}: INT8 top-1 drop "
        f"{result['drop_points']:+.2f} points (budget {result['max_drop_points']:.2f}) "
        f"on {result['n']} images", "",
        "| | FP32 | INT8 |", "|---|---|---|",
        f"| top-1 | {result['fp32_top1']:.4f} | {result['int8_top1']:.4f} |", "",
        f"top-1 agreement {result['top1_agreement']:.4f}; McNemar: {m['only_fp32_right']} images "
        f"only FP32 got right, {m['only_int8_right']} only INT8, p = {m['p_value']:.3g}", "",
        *_resolution_lines(result),
        *([f"OpenVINO (CPU): INT8 top-1 {result['openvino']['int8_top1']:.4f}, drop "
           f"{result['openvino']['drop_points']:+.2f} points, "
           f"{'passed' if result['openvino']['passed'] else 'FAILED'}", ""]
          if "openvino" in result else ["OpenVINO not installed: gated in ONNX Runtime only", ""]),
        *_checkpoint_lines(result.get("qat_checkpoint")),
        *_fallback_lines(result.get("fallback")),
        "| class | n | FP32 | INT8 | drop (points) |", "|---|---|---|---|---|",
    ]
    for c, v in result["per_class"].items():
        lines.append(f"| {c} | {v['n']} | {v['fp32_top1']:.4f} | {v['int8_top1']:.4f} | "
                     f"{v['drop_points']:+.2f} |")
    emulated = result.get("device_pipeline")
    if emulated:
        lines += ["", f"## As the device preprocesses ({emulated['pipeline']}, emulated)", "",
                  f"INT8 top-1 {emulated['top1_emulated']:.4f} with the frames {emulated['geometry']}"
                  f"ed as the target's pipeline does, against {emulated['top1_exact_contract']:.4f}"
                  f" under the exact contract ({emulated['drop_points']:+.2f} points; top-1 "
                  f"agreement {emulated['top1_agreement']:.4f}). The emulation reproduces: "
                  + "; ".join(emulated["emulation"]["reproduces"]) + ". It cannot reproduce: "
                  + "; ".join(emulated["emulation"]["cannot"]) + "."]
    return "\n".join(lines) + "\n"


def write_gate(graph: Path, result: dict, *, name: str = GATE["qat"],
               title: str = "INT8 accuracy gate") -> tuple[Path, Path]:
    """gate.json / gate.md (or `name`.*) beside `graph`, recording the graph's name and sha256 so
    a reader can tell the gate is this graph's (formats/run.py RunFolder.int8_gate)."""
    result.update(graph=graph.name, graph_sha256=sha256_file(graph))
    folder = graph.parent
    return (atomic_write_json(folder / f"{name}.json", result),
            atomic_write_text(folder / f"{name}.md", gate_markdown(result, title)))


def gate_int8_model(fp32_logits: np.ndarray, int8_logits: np.ndarray, int8_path: str | Path,
                    *, x: np.ndarray, labels: np.ndarray, classes: list[str], max_drop: float
                    ) -> dict:
    """The gate on `int8_logits` (ONNX Runtime's), plus OpenVINO on `int8_path` where it is
    installed: a graph that loses accuracy in either runtime fails (their CPU INT8 kernels
    differ, see runtime/onnxruntime/runner.py)."""
    result = accuracy_gate(fp32_logits, int8_logits, labels, classes=classes, max_drop=max_drop)
    ov_logits = ov.openvino_logits(int8_path, x)
    if ov_logits is not None:
        ov_gate = accuracy_gate(fp32_logits, ov_logits, labels, classes=classes, max_drop=max_drop)
        result["openvino"] = {k: ov_gate[k] for k in ("int8_top1", "drop_points",
                                                      "top1_agreement", "mcnemar", "passed")}
        result["passed"] = result["passed"] and ov_gate["passed"]
    return result


def gate_with_fallback(int8_path: Path, int8_logits: np.ndarray, fp32_logits: np.ndarray,
                       *, x: np.ndarray, labels: np.ndarray, classes: list[str], max_drop: float,
                       fallback: bool = True, cap_fraction: float | None = None,
                       on_layer=None) -> dict:
    """The INT8 gate; when it fails and `fallback` is on, the float fallback on the shared
    graph (written over `int8_path` only when the gate then passes). The result says which
    layers stayed in float and why (`cap_fraction` None: config.FALLBACK_CAP)."""
    cap_fraction = or_default(cap_fraction, FALLBACK_CAP)
    result = gate_int8_model(fp32_logits, int8_logits, int8_path, x=x, labels=labels,
                             classes=classes, max_drop=max_drop)
    if result["passed"] or not fallback:
        result["fallback"] = {"float_layers": [], "why": "the all-INT8 graph passed the gate"
                              if result["passed"] else "off (--no-fallback)"}
        return result
    model = load_onnx(int8_path)
    sens = layer_sensitivity(model, x, labels, fp32_logits=fp32_logits, int8_logits=int8_logits,
                             on_layer=on_layer)
    write_sensitivity(int8_path.parent, sens, int8_path.name)
    probe = int8_path.with_name(f".{int8_path.stem}.fallback.onnx")
    last: dict = {}  # the gate of the last graph tried: when it passed, the final gate

    def passes(mixed):
        save_model(mixed, probe)
        logits = onnx_logits(mixed, x)
        try:
            gate = gate_int8_model(fp32_logits, logits, probe, x=x, labels=labels, classes=classes,
                                   max_drop=max_drop)
        finally:
            probe.unlink(missing_ok=True)
        gate["logit_error"] = float(np.abs(logits - fp32_logits).mean())
        last["gate"] = gate
        return gate["passed"], gate

    mixed, layers, steps = float_fallback(model, sens, passes, cap_fraction=cap_fraction,
                                          start=(result["drop_points"], sens["int8_logit_error"]))
    info = {"cap_fraction": cap_fraction, "quantized_layers": len(sens["layers"]),
            "cap": layer_cap(len(sens["layers"]), cap_fraction),
            "steps": steps, "all_int8_drop_points": result["drop_points"]}
    if mixed is None:
        result["fallback"] = {**info, "float_layers": [], "why": (
            f"no set of up to {info['cap']} float layer(s) passed ({len(steps)} tried, best "
            f"drop {min([s['drop_points'] for s in steps] or [result['drop_points']]):.2f} "
            "points): the graph stays all-INT8")}
        return result
    save_model(mixed, int8_path)
    final = last["gate"]  # the mixed graph just written, gated in both runtimes
    final["fallback"] = {**info, "float_layers": layers, "why": (
        f"the all-INT8 graph lost {result['drop_points']:.2f} points (> {max_drop:.2f}); "
        f"keeping {len(layers)} most sensitive layer(s) in float (sensitivity.md) passes")}
    return final


@dataclass(frozen=True)
class GraphGate:
    """An INT8 graph gated against its FP32 graph on the same images."""

    result: dict  # the gate (gate_with_fallback's) with "coverage" of the graph as it now is
    fp32_logits: np.ndarray  # ONNX Runtime's, of the FP32 graph
    int8_logits: np.ndarray  # ONNX Runtime's, of the all-INT8 graph before any fallback


def gate_graphs(fp32_path: Path, int8_path: Path, x: np.ndarray, *, labels: np.ndarray,
                classes: list[str], max_drop: float, fallback: bool = True,
                cap_fraction: float | None = None, on_layer=None) -> GraphGate:
    """The INT8 gate of tune --qat and quantize: both graphs run in ONNX Runtime on `x`, the
    gate with its float fallback (which may rewrite `int8_path`), and the coverage read from
    the graph as shipped, not counted from the preparation. Writes no gate file: the stage
    adds what it knows and calls write_gate. `on_layer`: layer_sensitivity's, for a stage's
    progress bar over the fallback's sensitivity scan."""
    fp32_logits, int8_logits = onnx_logits(fp32_path, x), onnx_logits(int8_path, x)
    result = gate_with_fallback(int8_path, int8_logits, fp32_logits, x=x, labels=labels,
                                classes=classes, max_drop=max_drop, fallback=fallback,
                                cap_fraction=cap_fraction, on_layer=on_layer)
    result["coverage"] = coverage_of_file(int8_path)
    return GraphGate(result, fp32_logits, int8_logits)
