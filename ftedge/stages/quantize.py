"""`ftedge quantize`: post-training quantization of a run's FP32 model into a gated Q/DQ ONNX."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from ftedge.config import (CALIB_METHOD, CALIB_PERCENTILE, CALIB_RECIPE, EVAL_BATCH, FALLBACK_CAP,
                           MAX_DROP, OPSET, WEIGHT_BITS, or_default, require_finite)
from ftedge.console import console
from ftedge.data.folder import Sample
from ftedge.data.transforms import preprocess_samples, split_arrays
from ftedge.errors import ConfigError, RunError
from ftedge.formats.run import (CALIBRATION, FP32_ONNX, INT8_ONNX, RunFolder, data_root,
                               load_onnx, recreate_hint)
from ftedge.graph.metadata import contract_metadata
from ftedge.io import atomic_write_json, folder_lock, memoised_reads
from ftedge.quant.calibrate import METHODS
from ftedge.quant.calibset import build_manifest, load_recipe
from ftedge.quant.gate import gate_graphs, onnx_logits
from ftedge.quant.onnx_export import ensure_fp32, export_onnx
from ftedge.quant.ptq import bias_correction, calibrate_ptq
from ftedge.quant.qat import DEPTHWISE_RULE
from ftedge.quant.sensitivity import layer_sensitivity, write_sensitivity
from ftedge.runtime.pytorch.runner import load_run
from ftedge.stages.common import layer_progress, publish_gate

PTQ_SCHEME = {"weights": "int8 symmetric per-channel (axis 0), max calibration",
              **DEPTHWISE_RULE,
              "activations": "int8 symmetric per-tensor, zero-point 0",
              "batchnorm": "folded"}


def check_gate_options(max_drop: float, fallback_cap: float, percentile: float) -> None:
    """--max-drop, --fallback-cap and --percentile checked before anything is written (NaN
    passes a range)."""
    require_finite("--max-drop", max_drop)
    require_finite("--fallback-cap", fallback_cap)
    require_finite("--percentile", percentile)
    if not 0 < fallback_cap <= 1:
        raise ConfigError(f"--fallback-cap is a fraction of the quantized layers in (0, 1], "
                          f"got {fallback_cap!r}", "give e.g. --fallback-cap 0.1 (10%)")
    if not 0 < percentile <= 100:
        raise ConfigError(f"--percentile is the share of activation values kept in range, in "
                          f"(0, 100], got {percentile!r}",
                          f"give e.g. --percentile {CALIB_PERCENTILE}")


@memoised_reads()  # each input hashed and parsed once per command
def quantize(run: str | Path, *, method: str = "ptq", calib: str | None = None,
             calib_method: str | None = None, percentile: float | None = None,
             max_drop: float | None = None, opset: int | None = None,
             weight_bits: int | None = None, fallback: bool = True,
             fallback_cap: float | None = None, bias_correct: bool = True) -> dict:
    """Calibrate the run's best FP32 model, export model.ptq.int8.onnx and gate it.

    Args:
        run: run folder written by `ftedge tune`.
        method: "ptq" (QAT is `ftedge tune --qat`).
        calib: calibration recipe name in calibration/ or a recipe YAML file.
        calib_method: minmax, percentile or entropy (activation ranges).
        max_drop: accuracy gate budget in top-1 points.
        bias_correct: remove the per-channel output shift of weight quantization (NNCF's
            fast bias correction) on the calibration set.
        fallback: when the gate fails, keep the most sensitive layers in float (at most
            `fallback_cap` of the quantized layers) until it passes.
    Returns:
        the gate result, with the manifest's hash and warnings.

    Every None takes its default from ftedge/config.py (CALIB_RECIPE, CALIB_METHOD,
    CALIB_PERCENTILE, MAX_DROP, OPSET, WEIGHT_BITS, FALLBACK_CAP).
    """
    calib, calib_method = or_default(calib, CALIB_RECIPE), or_default(calib_method, CALIB_METHOD)
    percentile, max_drop = or_default(percentile, CALIB_PERCENTILE), or_default(max_drop, MAX_DROP)
    opset, weight_bits = or_default(opset, OPSET), or_default(weight_bits, WEIGHT_BITS)
    fallback_cap = or_default(fallback_cap, FALLBACK_CAP)
    check_gate_options(max_drop, fallback_cap, percentile)
    if method != "ptq":
        raise ConfigError(f"--method {method!r} is not a post-training method",
                          "use --method ptq; quantization-aware training is `ftedge tune --qat`")
    if calib_method not in METHODS:
        raise ConfigError(f"unknown calibration method {calib_method!r}",
                          f"use one of {', '.join(METHODS)}")
    loaded = load_run(run)
    with folder_lock(loaded.path):  # one writer per run folder
        return _quantize(loaded, calib, calib_method, percentile, max_drop, opset, weight_bits,
                         fallback, fallback_cap, bias_correct)


def _quantize(loaded, calib, calib_method, percentile, max_drop, opset, weight_bits, fallback,
              fallback_cap, bias_correct) -> dict:
    folder = RunFolder(loaded.path)
    run = loaded.path
    split = folder.split()
    root = data_root(split, run)
    recipe, recipe_path = load_recipe(calib)
    manifest = build_manifest({**split, "root": str(root)}, recipe, recipe_path)
    atomic_write_json(run / CALIBRATION, manifest)
    for w in manifest["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")
    root = Path(manifest["root"])
    index = {c: i for i, c in enumerate(loaded.classes)}
    calib_x = preprocess_samples([Sample(root / f["path"], index[f["class"]])
                                  for f in manifest["files"]], loaded.contract)
    model = copy.deepcopy(loaded.runner.model)
    batches = [torch.from_numpy(calib_x[i:i + EVAL_BATCH])
               for i in range(0, len(calib_x), EVAL_BATCH)]
    coverage, _ = calibrate_ptq(model, batches, calib_method, percentile=percentile,
                                weight_bits=weight_bits)
    corrected = bias_correction(model, batches) if bias_correct else 0
    fp32_path, int8_path = run / FP32_ONNX, run / INT8_ONNX["ptq"]
    ensure_fp32(loaded, fp32_path, opset=opset, log=console.print)
    meta = contract_metadata(loaded.model_name, loaded.classes, loaded.contract, precision="int8",
                             checkpoint=loaded.checkpoint, quantization={**PTQ_SCHEME,
                                                              "calibration": calib_method,
                                                              "weight_bits": weight_bits,
                                                              "bias_corrected_layers": corrected},
                             calibration_sha256=manifest["sha256"])
    info = export_onnx(model, torch.zeros(1, *loaded.contract["input_size"]), int8_path,
                       opset=opset,
                       metadata=meta)
    x, labels = split_arrays(folder.samples("val", loaded.classes), loaded.contract)
    with layer_progress() as on_layer:
        result = gate_graphs(fp32_path, int8_path, x, labels=labels, classes=loaded.classes,
                             max_drop=max_drop, fallback=fallback, cap_fraction=fallback_cap,
                             on_layer=on_layer).result
    result.update(method="ptq", calibration=calib_method, calibration_sha256=manifest["sha256"],
                  calibration_images=len(manifest["files"]), warnings=manifest["warnings"],
                  bias_corrected_layers=corrected, prepared=coverage.to_dict(), onnx=info,
                  size_ratio=int8_path.stat().st_size / fp32_path.stat().st_size)
    publish_gate(int8_path, result, kind="ptq", title=f"PTQ ({calib_method}) INT8 gate")
    return result


def analyse_sensitivity(run: str | Path, graph: str | None = None) -> dict:
    """`ftedge quantize RUN --sensitivity`: per-layer INT8 sensitivity of the run's QAT graph
    (model.int8.onnx) or PTQ graph (model.ptq.int8.onnx) on the val split, in ONNX Runtime."""
    loaded = load_run(run)
    folder = RunFolder(loaded.path)
    kinds = [graph] if graph else [k for k in ("qat", "ptq") if folder.int8_onnx(k).is_file()]
    if graph and not folder.int8_onnx(graph).is_file():
        make = (f"ftedge quantize {loaded.path}" if graph == "ptq"
                else "ftedge tune --qat ... (or analyse the PTQ graph: --graph ptq)")
        raise ConfigError(f"{loaded.path} has no {INT8_ONNX[graph]} to analyse (--graph {graph})",
                          f"make it first: {make}")
    if not kinds:
        raise ConfigError(f"{loaded.path} has no INT8 graph to analyse",
                          f"make one: ftedge tune --qat ..., or ftedge quantize {loaded.path}")
    int8_path, fp32_path = folder.int8_onnx(kinds[0]), folder.file(FP32_ONNX)
    stale = folder.stale_reason(int8_path)
    if stale:
        raise RunError(f"{int8_path} is out of date: {stale}", recreate_hint(int8_path))
    with folder_lock(loaded.path):
        ensure_fp32(loaded, fp32_path, log=console.print)
        return _sensitivity(loaded, folder, int8_path, fp32_path)


def _sensitivity(loaded, folder: RunFolder, int8_path: Path, fp32_path: Path) -> dict:
    x, labels = split_arrays(folder.samples("val", loaded.classes), loaded.contract)
    with layer_progress() as on_layer:
        sens = layer_sensitivity(load_onnx(int8_path), x, labels,
                                 fp32_logits=onnx_logits(fp32_path, x), on_layer=on_layer)
    paths = write_sensitivity(loaded.path, sens, int8_path.name)
    console.print(f"sensitivity of {int8_path.name} ({len(sens['layers'])} layers) written to "
                  f"{paths['md']} ({paths['json'].name}, {paths['png'].name})", soft_wrap=True)
    return sens
