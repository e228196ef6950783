"""Thin click layer over the Python API: parse flags, call one function, print where outputs went."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import signal
import sys

import click

from ftedge.config import (DECODES, FILTERS, GEOMETRIES, INPUT_FORMATS, INPUT_LAYOUTS,
                           MIN_REDUCING_GAP, MAX_REDUCING_GAP, MIN_DRAFT_MARGIN,
                           MAX_DRAFT_MARGIN)
from ftedge.config import (BENCH_WARMUP, CALIB_METHOD, CALIB_PERCENTILE, CALIB_RECIPE, FALLBACK_CAP,
                           INT8_SOURCE, INT8_SOURCES, MAX_DROP, TOPK, WEIGHT_BITS)
from ftedge.config import (MAX_BATCH, MAX_EPOCHS, MAX_IMG_SIZE, MAX_SEED, MAX_THREADS,
                           MAX_WORKERS, disable_telemetry)
from ftedge.console import console, results
from ftedge.errors import GATE_FAILED, RUN_FAILED, FtedgeError
from ftedge.formats.report import REPORT, REPORT_MD
from ftedge.formats.run import GATE, INT8_ONNX, SPLIT


class FiniteFloat(click.FloatRange):
    """A float in a range, and finite: NaN passes every range check (each comparison with it
    is False), inf passes a lower bound."""

    name = "float"

    def convert(self, value, param, ctx):
        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            name = param.opts[0] if param is not None and param.opts else "the value"
            self.fail(f"{name} must be a finite number, got {value!r}", param, ctx)
        return super().convert(rv, param, ctx)


# Every number a flag takes has a type with bounds here (tests/test_cli_types.py walks the
# command tree): an unbounded int overflows in C below (a traceback), NaN slips through
SEED = click.IntRange(0, MAX_SEED)
EPOCHS = click.IntRange(1, MAX_EPOCHS)
EPOCHS_OR_ZERO = click.IntRange(0, MAX_EPOCHS)
BATCH = click.IntRange(1, MAX_BATCH)
IMG_SIZE = click.IntRange(16, MAX_IMG_SIZE)
WORKERS = click.IntRange(0, MAX_WORKERS)
THREADS = click.IntRange(1, MAX_THREADS)
COUNT = click.IntRange(1, 1_000_000)  # images, runs, top-k
LR = FiniteFloat(0, 100, min_open=True)
POINTS = FiniteFloat(-100, 100)  # an accuracy budget in top-1 points (tune refuses < 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ftedge")
def cli() -> None:
    """ftedge: fine-tune a lightweight classifier, quantize it, prove it works on the device."""


def _tune_options(f):
    opts = [
        click.option("--data", type=click.Path(file_okay=False), help="Class-folder dataset (DIR/<class>/*.jpg, or DIR/train + DIR/val)."),
        click.option("--model", help="efficientnet_lite0 (default), mobilenet_v2, mobilenet_v3_small/large, efficientnet_b0, or any timm name."),
        click.option("--weights", help="imagenet (default), none, or a state_dict file."),
        click.option("--epochs", type=EPOCHS, help="Total epochs, head warm-up included (default: from the dataset size, at least 15)."),
        click.option("--head-epochs", type=EPOCHS_OR_ZERO, help="Epochs training only the new head."),
        click.option("--batch-size", type=BATCH),
        click.option("--img-size", type=IMG_SIZE, help="Input resolution (default: the model's)."),
        click.option("--lr", type=LR, help="Head learning rate (backbone: lr x backbone_lr_mult)."),
        click.option("--optimizer", type=click.Choice(["adamw", "sgd"])),
        click.option("--seed", type=SEED),
        click.option("--device", help="auto (default), cpu, cuda, cuda:N, mps."),
        click.option("--workers", type=WORKERS, help="DataLoader workers (default: auto)."),
        click.option("--patience", type=EPOCHS_OR_ZERO, help="Early-stopping patience in epochs; 0 disables."),
        click.option("--amp/--no-amp", default=None, help="Mixed precision (default: on for CUDA)."),
        click.option("--out", type=click.Path(file_okay=False), help="Run folder (default: runs/<model>-<time>)."),
        click.option("--qat/--no-qat", default=None, help="Add quantization-aware training and export FP32 + INT8 Q/DQ ONNX."),
        click.option("--qat-epochs", type=EPOCHS, help="Epochs of quantization-aware training (default: from the dataset size, "
                     "at least 3 and 200 steps)."),
        click.option("--max-drop", type=POINTS, help="INT8 accuracy gate: largest allowed top-1 drop in points (default 1.0)."),
        click.option("--distill/--no-distill", default=None, help="QAT also learns the FP32 model's logits (KL with a temperature)."),
        click.option("--fallback/--no-fallback", default=None, help="When the INT8 gate fails, keep the most sensitive layers in float (default: on, at most 10%% of them)."),
        click.option("--preprocess", type=click.Choice(GEOMETRIES), help="Geometry of the preprocessing contract: crop (short side, centre crop), stretch (whole image to HxW) or letterbox (aspect kept, padded). Default: the --target pipeline's, else crop."),
        click.option("--filter", type=click.Choice(FILTERS), help="Resize filter, Pillow's (bilinear and bicubic antialias when shrinking). Default: the --target pipeline's, with its antialiasing (the DeepStream targets: bilinear, not antialiased, as nvinfer scales), else the model's."),
        click.option("--decode", type=click.Choice(DECODES), help="full, or draft: JPEGs decoded at 1/2-1/8 scale in the DCT domain, in training and on the device alike (default full)."),
        click.option("--draft-margin", type=FiniteFloat(min=MIN_DRAFT_MARGIN, max=MAX_DRAFT_MARGIN), help="With --decode draft: the DCT scale keeps at least this many times the size the resize produces (1.0 the fastest: the smallest scale that still covers it; default 2.0)."),
        click.option("--label-check/--no-label-check", default=None, help="List suspected label errors before training (frozen pretrained features, a cross-validated linear probe, cleanlab; the check of `data check --labels`). Default: on with pretrained weights."),
        click.option("--reducing-gap", type=FiniteFloat(min=MIN_REDUCING_GAP, max=MAX_REDUCING_GAP), help="Box-reduce by an integer factor before the resize filter, keeping at least this many times the output (Pillow's reducing_gap; 1.0 fastest, 3.0 near-exact), for every source (raw frames too), in training and on the device alike (default: off)."),
        click.option("--target", help="Train for this target's pipeline: its profile's geometry and filter (e.g. the DeepStream targets: stretch, bilinear not antialiased)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@cli.command()
@_tune_options
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True),
              help="YAML config (data/model/train/augment sections); flags override it.")
@click.option("--resume", type=click.Path(exists=True),
              help="Continue an interrupted run folder with its saved config.")
def tune(config_file, resume, **options) -> None:
    """Fine-tune a pretrained classifier on your images."""
    from ftedge.stages.tune import tune as tune_api

    given = {k: v for k, v in options.items() if v is not None}
    result = tune_api(resume=resume, **given) if resume else tune_api(config_file=config_file,
                                                                       **given)
    _exit_on_failed_gate(result)




@cli.command()
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Class-folder dataset (as for tune).")
@click.option("--model", help="Network, as for tune (default efficientnet_lite0).")
@click.option("--weights", help="imagenet (default), none, or a state_dict file.")
@click.option("--img-size", type=IMG_SIZE, help="Input resolution (default: the model's).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True),
              help="The tune YAML config: the probe uses its data/model sections.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def probe(data, model, weights, *, img_size, config_file, as_json) -> None:
    """Frozen-feature linear probe: the baseline a fine-tune must beat (same net, split, size)."""
    from ftedge.config import build_tune_config, nest_overrides
    from ftedge.stages.tune.probe import linear_probe

    given = {k: v for k, v in dict(data=data, model=model, weights=weights,
                                    img_size=img_size).items() if v is not None}
    result = linear_probe(build_tune_config(config_file, nest_overrides(given)))
    if as_json:
        click.echo(json.dumps(result))
    else:
        results.print(f"linear probe val top-1 {result['val_top1']:.4f} ({result['model']}, "
                      f"{result['val_images']} val images)", markup=False)


def _exit_on_failed_gate(result) -> None:
    if result.gate is not None and not result.gate["passed"]:
        console.print(f"[red]INT8 accuracy gate failed[/]: see "
                      f"{result.run_dir / (GATE['qat'] + '.md')}; "
                      "train longer (--qat-epochs), or raise --max-drop if the loss is acceptable")
        sys.exit(GATE_FAILED)


@cli.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--data", type=click.Path(file_okay=False), help="Where the demo images go.")
@click.option("--device", help="auto (default), cpu, cuda.")
def demo(out, data, device) -> None:
    """Run the pipeline end to end on the built-in digits data."""
    from ftedge.pipeline import demo as demo_api

    result = demo_api(out=out, data=data, device=device)
    console.print(f"demo finished: val top-1 {result.tune.best_top1:.4f}; run in "
                  f"{result.run_dir}, artifacts in {result.run_dir / 'exports'}, bench report "
                  f"in {result.report_dir / REPORT_MD}", soft_wrap=True)
    _exit_on_failed_gate(result.tune)
    statuses = [a["status"] for a in result.report["artifacts"]]
    if any(e.passed is False for e in result.exports) or "gate_failed" in statuses:
        sys.exit(GATE_FAILED)
    if "error" in statuses:
        sys.exit(RUN_FAILED)


@cli.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--force", "--overwrite", "overwrite", is_flag=True,
              help="Replace an earlier demo-data folder (only one ftedge wrote).")
@click.option("--train-per-class", type=COUNT,
              help="Write OUT/train with N images per class and OUT/val with the rest.")
@click.option("--seed", default=0, show_default=True, type=SEED,
              help="Seed of the --train-per-class pick.")
def demo_data(out, overwrite, train_per_class, *, seed) -> None:
    """Write scikit-learn's digits (1,797 images, 10 classes) as a PNG class-folder dataset."""
    from ftedge.data.demo import write_demo_data

    path = write_demo_data(out, overwrite=overwrite, train_per_class=train_per_class, seed=seed)
    layout = (f"train ({train_per_class} per class) + val folders" if train_per_class
              else "10 class folders")
    console.print(f"1,797 digit images in {layout} written to {path}", markup=False)


@cli.group()
def data() -> None:
    """Dataset tools."""


@data.command("check")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON on stdout.")
@click.option("--labels", is_flag=True,
              help="Also look for suspected label errors (runs a frozen pretrained network "
                   "over every image: one evaluation pass over the data).")
@click.option("--model", default=None,
              help="Network whose frozen features --labels uses (default: tune's default).")
def data_check(root, as_json, labels, *, model) -> None:
    """Audit a dataset: images per class, imbalance, sizes, unusable files, duplicate and
    leaked images across train/val/test, outliers; --labels adds suspected label errors."""
    from ftedge.config import ModelConfig
    from ftedge.console import print_view
    from ftedge.data.audit import audit_dataset
    from ftedge.stages.common.audit_view import audit_view

    audit = audit_dataset(root, duplicates=True)
    if labels:
        from ftedge.data.labels import check_labels

        audit.label_issues = check_labels(audit, model=model or ModelConfig().name)
    if as_json:
        click.echo(json.dumps(audit.to_dict(), indent=2))
    else:
        print_view(results, audit_view(audit))


@cli.command("eval")
@click.argument("run", type=click.Path(exists=True))
@click.option("--data", type=click.Path(file_okay=False), help="Dataset to evaluate on (default: the run's own split).")
@click.option("--split", default="val", show_default=True, type=click.Choice(["val", "test", "train"]),
              help="Which split: the run's recorded one, or that folder of --data (test: a held-out test/ folder).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout (top1, top5, per_class, ...).")
@click.option("--unknown", "unknown_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder of images of none of the classes: report how the unknown score "
                   "separates them (AUROC, FPR at 95% TPR, top-1 against coverage).")
def eval_cmd(run, data, split, *, as_json, unknown_dir) -> None:
    """Top-1/top-5, per-class precision/recall and the confusion matrix of a run or artifact."""
    from ftedge.console import literal, plain
    from ftedge.stages.inference import calibration_line, evaluate

    rep = evaluate(run, data, split=split, unknown=unknown_dir)
    if as_json:
        click.echo(json.dumps(rep))
        return
    from rich.table import Table

    results.print(f"{rep['n']} images: top-1 {rep['top1']:.4f}  top-5 {rep['top5']:.4f}")
    results.print(calibration_line(rep["calibration"]), highlight=False, markup=False,
                  soft_wrap=True)
    if "unknown" in rep:
        _print_unknown(rep["unknown"])
    table = Table("class", "precision", "recall", "support")
    for c, m in rep["per_class"].items():
        table.add_row(plain(c), f"{m['precision']:.3f}", f"{m['recall']:.3f}", str(m["support"]))
    results.print(table)
    results.print("confusion matrix (rows: true, columns: predicted):")
    for c, row in zip(rep["classes"], rep["confusion_matrix"]):
        results.print(f"  {literal(c):>12} " + " ".join(f"{v:4d}" for v in row), highlight=False,
                      markup=False)


def _print_unknown(u: dict) -> None:
    from rich.table import Table

    from ftedge.console import plain

    results.print(f"unknown score {plain(str(u['score']))} ({plain(u['measured_on'])}), "
                  f"{u['n_known']} known vs {u['n_unknown']} unknown images: AUROC "
                  f"{u['auroc']:.4f}, FPR at 95% TPR {u['fpr95']:.4f}; at the threshold "
                  f"{u['threshold']:.6g}: {u['known_accepted']:.1%} of the knowns and "
                  f"{u['accepted']:.1%} of the unknowns accepted", highlight=False)
    table = Table("coverage", "images kept", "top-1 of the kept")
    for p in u["accuracy_coverage"]:
        table.add_row(f"{p['coverage']:.2f}", str(p["n"]), f"{p['top1']:.4f}")
    results.print(table)


@cli.command()
@click.argument("run", type=click.Path(exists=True))
def calibrate(run) -> None:
    """Fit a run's temperature (calibrated confidence) on its val split: confidence.json and
    reliability.png in the run. `tune` does this itself; artifacts get theirs at export."""
    from ftedge.confidence import summary_line
    from ftedge.stages.inference import calibrate as calibrate_api

    record = calibrate_api(run)
    results.print(summary_line(record), highlight=False, markup=False, soft_wrap=True)


@cli.command()
@click.argument("run", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--topk", default=TOPK, show_default=True, type=COUNT)
@click.option("--json", "as_json", is_flag=True)
@click.option("--batch", type=BATCH,
              help="Images per inference (default: the artifact's fixed batch, else 8).")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS),
              help="Threads decoding images while the model runs (default: one per core).")
@click.option("--threads", type=THREADS, help="CPU threads for the runtime.")
def predict(run, images, topk, *, as_json, batch, workers, threads) -> None:
    """Print the top-k classes for each image (exit code 1 when no image could be read)."""
    from ftedge.console import literal
    from ftedge.stages.inference import predict as predict_api

    results = predict_api(run, list(images), topk, batch=batch, workers=workers,
                          threads=threads)
    if as_json:
        click.echo(json.dumps(results))
    else:
        for r in results:
            if "error" in r:
                click.echo(f"{literal(r['image'])}: error: {literal(r['error'])}")
            else:
                u = r.get("unknown")
                head = (f"unknown (score {u['score']:.6g} > threshold {u['threshold']:.6g}); "
                        "nearest: " if u and u["is_unknown"] else "")
                click.echo(f"{literal(r['image'])}: {head}" + ", ".join(
                    f"{literal(t['class'])} {t['prob']:.3f}" for t in r["top"]))
    if all("error" in r for r in results):
        console.print("error: no image could be read", style="red")
        sys.exit(1)


@cli.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--method", default="ptq", show_default=True, type=click.Choice(["ptq"]),
              help="Post-training quantization (QAT is `ftedge tune --qat`).")
@click.option("--calib", default=CALIB_RECIPE, show_default=True,
              help="Calibration recipe: a name in calibration/ or a recipe YAML file.")
@click.option("--calib-method", default=CALIB_METHOD, show_default=True,
              type=click.Choice(["minmax", "percentile", "entropy"]))
@click.option("--percentile", default=CALIB_PERCENTILE, show_default=True,
              type=FiniteFloat(0, 100, min_open=True))
@click.option("--max-drop", default=MAX_DROP, show_default=True, type=POINTS,
              help="Accuracy gate budget, top-1 points.")
@click.option("--weight-bits", default=str(WEIGHT_BITS), show_default=True,
              type=click.Choice(["7", "8"]),
              help="7: safe for u8 x s8 CPU kernels without VNNI (depthwise layers keep 8, "
                   "their kernels cannot saturate); 8: full range (TensorRT).")
@click.option("--fallback/--no-fallback", default=True, show_default=True,
              help="When the gate fails, keep the most sensitive layers in float.")
@click.option("--fallback-cap", default=FALLBACK_CAP, show_default=True,
              type=FiniteFloat(0, 1, min_open=True),
              help="Most layers kept in float, as a fraction of the quantized layers.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="Correct the per-channel output shift of INT8 weights (as NNCF does).")
@click.option("--sensitivity", is_flag=True, help="Only measure per-layer INT8 sensitivity of "
              "an existing graph (sensitivity.json/.md/.png); no new quantization.")
@click.option("--graph", type=click.Choice(["qat", "ptq"]),
              help=f"With --sensitivity: {INT8_ONNX['qat']} (qat) or {INT8_ONNX['ptq']} (ptq).")
def quantize(run, method, calib, *, calib_method, percentile, max_drop, weight_bits, fallback,
             fallback_cap, bias_correction, sensitivity, graph) -> None:
    """Post-training INT8 quantization of a run into model.ptq.int8.onnx, with its gate."""
    from ftedge.stages.quantize import analyse_sensitivity
    from ftedge.stages.quantize import quantize as quantize_api

    if sensitivity:
        analyse_sensitivity(run, graph)
        return
    if graph:
        raise click.UsageError("--graph picks the graph --sensitivity analyses: give it with "
                               "--sensitivity, or leave it out")
    result = quantize_api(run, method=method, calib=calib, calib_method=calib_method,
                          percentile=percentile, max_drop=max_drop, weight_bits=int(weight_bits),
                          fallback=fallback,
                          fallback_cap=fallback_cap, bias_correct=bias_correction)
    if not result["passed"]:
        console.print(f"[red]INT8 accuracy gate failed[/]: see {run}/{GATE['ptq']}.md; try another "
                      "--calib-method, more calibration images, or `ftedge tune --qat`")
        sys.exit(GATE_FAILED)


@cli.command("export")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--target", "targets_", required=True, multiple=True,
              help="A profile name (ftedge targets) or a profile YAML file; repeat for several.")
@click.option("--precision", help="fp32, fp16 or int8, or several comma-separated "
              "(default: the target's default precision); auto: export and bench every "
              "precision here, keep the fastest within --max-drop in <target>-auto.")
@click.option("--batch", help="A fixed batch size N, or 'dynamic' (default: the target's).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Artifact folder (default: RUN/exports/<target>-<precision>).")
@click.option("--int8-source", default=INT8_SOURCE, show_default=True,
              type=click.Choice(INT8_SOURCES),
              help=f"Which INT8 graph of the run: QAT ({INT8_ONNX['qat']}) or PTQ "
              f"({INT8_ONNX['ptq']}).")
@click.option("--force", is_flag=True, help="Replace an earlier artifact folder (only one ftedge wrote).")
@click.option("--allow-failed-gate", is_flag=True,
              help="Export an INT8 graph whose accuracy gate failed (the manifest records it).")
@click.option("--max-drop", default=MAX_DROP, show_default=True, type=POINTS,
              help="With --precision auto: accuracy budget, top-1 points vs FP32.")
@click.option("--input-format", type=click.Choice(INPUT_FORMATS),
              help="What the artifact's input takes: normalized (float32 (x/255-mean)/std), or "
                   "8-bit RGB pixels as float255 (float32 0..255) or uint8, normalised by the "
                   "graph's first nodes (default: the target's; TensorRT/DeepStream: float255).")
@click.option("--input-layout", type=click.Choice(INPUT_LAYOUTS, case_sensitive=False),
              help="NCHW (default) or NHWC (camera frames as they come; with 8-bit input).")
@click.option("--unknown-score",
              help="The out-of-distribution score appended to the graph as a second output: "
                   "knn (default), mahalanobis, msp, maxlogit, energy, or off.")
@click.option("--unknown-tpr", type=FiniteFloat(0.5, 1, max_open=True),
              help="Share of the val images the unknown threshold accepts (default: 0.95).")
def export_cmd(run, targets_, precision, *, batch, out, int8_source, force, allow_failed_gate,
               max_drop, input_format, input_layout, unknown_score, unknown_tpr) -> None:
    """Build the artifact a device/runtime wants, check it against PyTorch, write its manifest."""
    from ftedge.stages.export.exporter import export_run

    precisions = [p.strip() for p in precision.split(",")] if precision else [None]
    if "auto" in precisions:
        if len(precisions) > 1 or batch:
            raise click.UsageError("--precision auto picks one precision by measurement: give "
                                   "it alone, without --batch")
        from ftedge.pick import pick_precision

        codes = [pick_precision(run, t, max_drop=max_drop, force=force,
                                out=out if len(targets_) == 1 else None).exit_code
                 for t in targets_]
        sys.exit(max(codes))
    jobs = [(t, p) for t in targets_ for p in precisions]
    if out and len(jobs) > 1:
        raise click.UsageError("--out names one folder: give one --target and one --precision")
    failed = False
    for target, prec in jobs:
        result = export_run(run, target, precision=prec, batch=batch, out=out, force=force,
                            int8_source=int8_source,
                            log=lambda m: console.print(m, soft_wrap=True),
                            allow_failed_gate=allow_failed_gate, input_format=input_format,
                            input_layout=input_layout, unknown_score=unknown_score,
                            unknown_tpr=unknown_tpr)
        _print_export(result)
        failed |= result.passed is False
    if failed:
        from ftedge.formats.artifact import PARITY

        console.print(f"[red]an artifact failed its parity check[/]: see {PARITY} in its folder")
        sys.exit(GATE_FAILED)


def _print_export(result) -> None:
    from ftedge.formats.artifact import MANIFEST
    from ftedge.stages.export.parity import agreement_line

    m, p = result.manifest, result.manifest["parity"]
    if p.get("status") == "checked":
        verdict = "[green]passed[/]" if p["passed"] else "[red]FAILED[/]"
        console.print(f"parity {verdict} vs {p['reference']}: {agreement_line(p)}, max |logit "
                      f"diff| {p['max_abs_logit_diff']:.2e}; artifact top-1 "
                      f"{p['artifact_top1']:.4f}", soft_wrap=True)
    else:
        console.print(f"parity {p.get('status')}: {p.get('reason')}", soft_wrap=True)
    if not m["built"]:
        console.print(f"engine build plan and trtexec line: {result.folder}/build_plan.json, "
                      f"{result.folder}/trtexec.sh", soft_wrap=True)
    u = m.get("unknown")
    if u:
        console.print(f"unknown score {u['score']} (output {u['output']!r}): an image scoring "
                      f"above {u['threshold']:.6g} is unknown; {u['val']['tpr']:.1%} of "
                      f"{u['val']['n']} val images accepted (target {u['target_tpr']:.0%}, "
                      f"measured on {u['measured_on']})", soft_wrap=True, markup=False,
                      highlight=False)
    else:
        console.print("no unknown score in this artifact", soft_wrap=True)
    what = f"({m['artifact']}, {MANIFEST})" if m["built"] else \
        f"(ONNX + build plan, {MANIFEST}; {m['artifact']} is built on the device)"
    results.print(f"{m['target']} {m['precision']} artifact written to {result.folder} {what}",
                  soft_wrap=True)


def _int_list(ctx, param, value: str) -> tuple[int, ...]:
    """--batch 1,8,32 as batch sizes, checked as the flags are parsed."""
    try:
        out = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give positive integers like 1,8,32") from None
    if not out or min(out) < 1 or max(out) > MAX_BATCH:
        raise click.BadParameter(f"{value!r}: give integers in 1..{MAX_BATCH} like 1,8,32")
    return out


@cli.command("bench")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--target", "targets_", multiple=True,
              help="Bench this target for the RUN(s) given: exports what is missing first.")
@click.option("--precision", help="With --target: fp32,fp16,int8 (default: every precision the target has).")
@click.option("--data", type=click.Path(file_okay=False), help="Val images (default: the run's val split).")
@click.option("--batch", "batches", default="1,8,32", show_default=True, callback=_int_list,
              help="Batch sizes.")
@click.option("--warmup", default=BENCH_WARMUP, show_default=True, type=click.IntRange(0,
                                                                                       1_000_000),
              help="Untimed calls per batch size before timing (0: none).")
@click.option("--runs", type=COUNT, help="Timed runs per batch size (default 100).")
@click.option("--time", "seconds", type=FiniteFloat(0, 86_400, min_open=True), help="Seconds of timed runs per batch size, instead of --runs.")
@click.option("--threads", type=THREADS, help="CPU threads for the runtimes (default: theirs).")
@click.option("--camera-images", type=click.IntRange(0, 100_000),
              help="Camera-size inputs (1080p and 12 MP JPEGs, raw 1080p frames) timed end to "
                   "end per kind (default 8); 0: skip them.")
@click.option("--workers", type=click.IntRange(1, 256),
              help="Decode threads in the end-to-end pipeline (default: one per core).")
@click.option("--max-drop", default=MAX_DROP, show_default=True, type=POINTS,
              help="Accuracy budget: top-1 points vs FP32.")
@click.option("--out", type=click.Path(file_okay=False), help="Report folder (default: RUN/bench/<host>-<time>).")
@click.option("--force", is_flag=True, help="Replace an earlier bench report folder at --out.")
@click.option("--pick", is_flag=True, help="With --target: export every precision, bench each, "
              "and copy the fastest within --max-drop to RUN/exports/<target>-auto.")
def bench_cmd(paths, targets_, precision, *, data, batches, warmup, runs, seconds, threads,
              camera_images, workers, max_drop, out, force, pick) -> None:
    """Accuracy, latency, memory and energy of artifact folders, written as a report."""
    from pathlib import Path

    from ftedge.stages.bench.bench import BenchOptions
    from ftedge.stages.bench.cli_support import run_bench

    if runs is not None and seconds is not None:
        raise click.UsageError("give --runs or --time, not both")
    if pick:
        if not targets_ or precision:
            raise click.UsageError("--pick needs --target NAME and RUN folders, and no "
                                   "--precision (it tries every precision)")
        from ftedge.pick import pick_precision

        opts = BenchOptions(batches=batches, warmup=warmup, runs=runs,
                            seconds=seconds, threads=threads, max_drop=max_drop, e2e_images=20,
                            camera_images=0)  # the pick is on the model alone
        sys.exit(max(pick_precision(r, t, max_drop=max_drop, data=data, opts=opts,
                                    force=force).exit_code
                     for r in paths for t in targets_))
    extra = {} if camera_images is None else {"camera_images": camera_images}
    opts = BenchOptions(batches=batches, warmup=warmup, runs=runs, seconds=seconds,
                        threads=threads, max_drop=max_drop, workers=workers,
                        **extra)  # checked before any export
    if targets_:
        from ftedge.pick import artifacts_for_targets

        folders = artifacts_for_targets(list(paths), list(targets_), precision)
    else:
        folders = [Path(p) for p in paths]
    sys.exit(run_bench(folders, data, opts, out=out, force=force))


@cli.command("report")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", type=click.Path(),
              help="The merged report folder (default: report); with --html the page file "
                   "(default: RUN/report.html).")
@click.option("--force", is_flag=True, help="Replace an earlier merged report at --out (with "
              "--html an earlier page is replaced anyway; any other file never is).")
@click.option("--html", "as_html", is_flag=True, help="One self-contained HTML page of a RUN "
              "folder: worst errors, INT8 flips, calibration, per-class metrics, unknowns, data "
              "issues.")
@click.option("--unknown", type=click.Path(exists=True, file_okay=False),
              help="With --html: images of none of the classes (the unknowns the model accepts).")
@click.option("--audit", type=click.Path(exists=True, dir_okay=False),
              help="With --html: the JSON of `ftedge data check DATA --json`.")
def report_cmd(folders, out, force, *, as_html, unknown, audit) -> None:
    """Merge bench folders into one table and plot; or, with --html, a run's page."""
    from pathlib import Path

    if as_html:
        if len(folders) != 1:
            raise click.UsageError("--html takes one RUN folder")
        from ftedge.stages.page import write_page

        path = write_page(folders[0], out, force=force, unknown=unknown, audit=audit,
                          log=lambda m: console.print(m, soft_wrap=True, markup=False))
        size = path.stat().st_size / 2**20
        results.print(f"page written to {path} ({size:.2f} MB; open it in a browser)",
                      soft_wrap=True, markup=False, highlight=False)
        return
    if unknown or audit:
        raise click.UsageError("--unknown and --audit go with --html RUN")
    runs = [f for f in folders if (Path(f) / SPLIT).is_file()
            and not (Path(f) / REPORT).is_file()]
    if runs:
        raise click.UsageError(f"{runs[0]} is a run folder: `ftedge report {runs[0]} --html` "
                               "writes its page; without --html, ftedge report merges bench "
                               "folders")
    from ftedge.stages.bench.report import merge_reports

    paths = merge_reports(list(folders), Path(out or "report"), force)
    results.print(paths["md"].read_text(), highlight=False, markup=False)
    results.print(f"report written to {paths['md']}, {paths['json']}, {paths['pareto_png']}")


@cli.group(invoke_without_command=True)
@click.pass_context
def targets(ctx) -> None:
    """List the target profiles (targets/); `ftedge targets show NAME` prints one."""
    if ctx.invoked_subcommand is None:
        from ftedge.runtime.profiles import load_profile, profile_names

        for name in profile_names():
            p = load_profile(name)
            click.echo(f"{name:22} {p.runtime:12} {'/'.join(p.precisions):15} {p.description}")


@targets.command("show")
@click.argument("name")
def targets_show(name) -> None:
    """Print one profile (a name or a YAML file) as YAML, with its defaults filled in."""
    import yaml

    from ftedge.runtime.profiles import load_profile

    p = load_profile(name)
    click.echo(f"# {p.source}")
    click.echo(yaml.safe_dump(p.to_dict(), sort_keys=False).rstrip())


@cli.command()
def models() -> None:
    """List registered models (any timm model name works too)."""
    from ftedge.models import available_models, get_spec

    for name in available_models():
        s = get_spec(name)
        click.echo(f"{name:22} {s.source}:{s.arch}  weights: {s.weights_source}")


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, a CI cancel, `docker stop`): raised like Ctrl-C, so every staged
    folder and atomic write cleans up on the way out as it does for an interrupt."""


_MAIN_PID: int | None = None  # the process main() runs in


def _terminate(signum, frame) -> None:
    if os.getpid() != _MAIN_PID:
        # a forked child (a DataLoader or process-pool worker) inherited this handler; its
        # parent stops it with SIGTERM when done: die of it quietly, as by default, instead
        # of raising in the child and printing its traceback
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


def main() -> None:
    global _MAIN_PID
    disable_telemetry()  # OpenVINO's usage telemetry, for this whole process (README, Privacy)
    _MAIN_PID = os.getpid()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _main()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main() -> None:
    try:
        cli(standalone_mode=False)
    except FtedgeError as e:
        _print_error(e)
        sys.exit(2)
    except OSError as e:  # a path the OS refused where no step named it: never a traceback
        from ftedge.io import os_error_message

        if e.filename is None and e.errno in (errno.EPIPE, errno.ENOSPC, errno.EDQUOT):
            _output_failed(e)
        _print_error(os_error_message(e))
        sys.exit(2)
    except click.exceptions.Abort as e:  # click turns Ctrl-C (and so SIGTERM) into Abort
        _exit_if_terminated(e.__cause__)
        console.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt as e:
        _exit_if_terminated(e)
        console.print("interrupted; continue with `ftedge tune --resume RUN`"
                      if _command() == "tune" else "interrupted; nothing half-written was kept")
        sys.exit(130)


def _output_failed(e: OSError) -> None:
    """The standard output could not take the results: `| head` closed the pipe (the reader
    took what it wanted: end quietly), or it goes to a full disk (> FILE, /dev/full). What is
    still buffered goes to /dev/null instead of failing again at exit."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if isinstance(e, BrokenPipeError):
        sys.exit(1)  # as click ends a broken pipe it meets itself
    _print_error(FtedgeError(f"cannot write the output: {e.strerror or e}",
                             "free some space, or send the output to another disk (> FILE)"))
    sys.exit(2)


def _command() -> str | None:
    """The subcommand on the command line (tune, export, ...), for messages."""
    return next((a for a in sys.argv[1:] if not a.startswith("-")), None)


def _print_error(e: FtedgeError) -> None:
    from ftedge.console import literal

    console.print("error: ", style="red", end="")
    console.print("\n".join(literal(line) for line in str(e).split("\n")),
                  highlight=False, markup=False, soft_wrap=True)


def _exit_if_terminated(e: BaseException | None) -> None:
    if isinstance(e, Terminated):
        console.print("terminated (SIGTERM); nothing half-written was kept")
        sys.exit(128 + signal.SIGTERM)
