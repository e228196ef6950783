"""What `ftedge tune` prints and writes besides checkpoints: the announcement, per-epoch lines,
and the finished run's reports (val report, confusion matrix, curves, summary)."""

from __future__ import annotations

import numpy as np

from ftedge.config import (DEFAULT_EPOCHS, MAX_AUTO_EPOCHS, MIN_STEPS, QAT_DEFAULT_EPOCHS,
                           QAT_MIN_STEPS)
from ftedge.confidence import summary_line
from ftedge.console import console
from ftedge.data.audit_report import small_image_note
from ftedge.formats.run import AUDIT, BEST, CONFUSION, CURVES, LAST, METRICS_CSV, VAL_REPORT
from ftedge.io import atomic_write_json
from ftedge.metrics import classification_report
from ftedge.stages.tune import label_check
from ftedge.training.loop import predict_logits
from ftedge.training.outputs import plot_confusion, plot_curves


def announce(trainer) -> None:
    """What is about to be trained, on what, from which weights."""
    d = trainer.data
    console.print(f"[bold]ftedge tune[/] {trainer.cfg.model.name} on {d.audit.root}: "
                  f"{len(d.classes)} classes, {len(d.train)} train / {len(d.val)} val "
                  f"images, {trainer.contract['input_size'][-1]} px, device {trainer.device}"
                  + (f" x{trainer.ctx.world_size}" if trainer.ctx.enabled else ""))
    console.print(f"weights: {trainer.built.weights_note}", highlight=False)
    if d.audit.unusable:
        console.print(f"[yellow]{len(d.audit.unusable)} unusable file(s) skipped "
                      f"(listed in {trainer.run / AUDIT})")
    note = small_image_note(d.audit)
    if note:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    for split in ("val", "test"):
        leaked = d.leaked(split)
        if leaked:
            console.print(f"[yellow]warning: {len(leaked)} of {len(getattr(d, split))} {split} "
                          f"images also appear in train (identical or near-duplicate "
                          f"pictures): their scores measure memory, not generalisation"
                          + ("; val top-1 is reported with and without them at the end"
                             if split == "val" else "")
                          + f" (pairs listed in {trainer.run / AUDIT}; "
                          f"`ftedge data check {d.audit.root}`)", soft_wrap=True)
    if trainer.label_check is not None:
        label_check.announce(trainer, trainer.label_check)
    if trainer.bn_frozen:
        why = ("train.bn: freeze" if trainer.cfg.train.bn == "freeze" else
               "train.bn auto: pretrained weights and a small training set or batch")
        console.print(f"BatchNorm statistics frozen at the pretrained ones ({why})")
    if trainer.cfg.train.epochs is None:
        steps = len(trainer.train_loader)
        console.print(f"{trainer.epochs} epochs (train.epochs auto: {steps} steps per epoch; at "
                      f"least {DEFAULT_EPOCHS} epochs and {MIN_STEPS} steps, at most "
                      f"{MAX_AUTO_EPOCHS} epochs; early-stopping patience "
                      f"{trainer.patience or 'off'})")
    if trainer.cfg.qat.enabled and trainer.cfg.qat.epochs is None:
        console.print(f"{trainer.qat_epochs} QAT epochs (qat.epochs auto: at least "
                      f"{QAT_DEFAULT_EPOCHS} epochs and {QAT_MIN_STEPS} steps, at most "
                      f"{MAX_AUTO_EPOCHS} epochs)")


def log_epoch(row: dict, improved: bool) -> None:
    console.print(f"epoch {row['epoch']:>3} \\[{row['phase']}] loss {row['train_loss']:.4f} "
                  f"val_loss {row['val_loss']:.4f} val_top1 {row['val_top1']:.4f} "
                  f"{row['images_per_s']:.1f} img/s" + ("  [green]best" if improved else ""))


def finish(trainer, result) -> None:
    """Reports of the finished run: val report, plots, summary; QAT export and gate."""
    fp32_model = trainer.fp32_best_model()
    logits, labels = predict_logits(fp32_model, trainer.val_loader, trainer.settings)
    rep = classification_report(logits, labels, trainer.data.classes)
    leak = _leak_effect(trainer, logits, labels)
    if leak is not None:
        rep["leak"] = leak
    atomic_write_json(trainer.run / VAL_REPORT, rep)
    if len(labels) >= 2:  # the FP32 model's temperature, for predict/eval on the run
        record = trainer.run_folder.write_confidence(logits, labels, trainer.run / BEST)
        console.print(summary_line(record), highlight=False, soft_wrap=True)
    plot_confusion(trainer.run / CONFUSION, np.asarray(rep["confusion_matrix"]),
                   trainer.data.classes, title=f"val, best epoch {result.best_epoch}: "
                                      f"top-1 {rep['top1']:.4f}")
    plot_curves(trainer.run / CURVES, trainer.history)
    if trainer.stage == "qat":
        result.gate = trainer.finish_qat(fp32_model)
        chosen = result.gate["qat_checkpoint"]
        for c in chosen["candidates"]:
            if c["epoch"] == chosen["chosen_epoch"]:
                result.qat_best_epoch, result.qat_top1 = c["epoch"], c["fake_quant_top1"]
    ips = [h["images_per_s"] for h in trainer.history if h["phase"] == "full"]
    qat_ran = sum(h["phase"] == "qat" for h in trainer.history)
    trainer.run_folder.write_summary({
        "best_top1": result.best_top1, "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 1), "device": trainer.device,
        "world_size": trainer.ctx.world_size, "weights_source": trainer.built.weights_note,
        "train_images_per_s": round(float(np.median(ips)), 2) if ips else None,
        "val_leak": leak,
        "qat": None if result.gate is None else {
            "qat_val_top1": result.qat_top1, "qat_best_epoch": result.qat_best_epoch,
            "qat_epochs_planned": trainer.qat_epochs,
            "qat_epochs_run": qat_ran, "qat_checkpoint": result.gate["qat_checkpoint"],
            "coverage": result.gate["coverage"],
            "prepared": trainer.coverage.to_dict(),
            "int8_onnx_top1": result.gate["int8_top1"],
            "fp32_onnx_top1": result.gate["fp32_top1"],
            "drop_points": result.gate["drop_points"], "gate_passed": result.gate["passed"]}})
    console.print(f"best val top-1 {result.best_top1:.4f} at epoch {result.best_epoch}"
                  + (" (stopped early)" if result.stopped_early else "")
                  + f" in {result.seconds:.0f} s")
    if leak is not None:
        without = ("n/a: every val image leaks" if leak["val_top1_without_leaked"] is None
                   else f"{leak['val_top1_without_leaked']:.4f}")
        console.print(f"[yellow]val top-1 of the best FP32 model: {leak['val_top1']:.4f} with "
                      f"the {leak['leaked_val_images']} val images that also appear in train, "
                      f"{without} without them")
    if trainer.stage == "qat":
        console.print(f"QAT: shipped epoch {result.qat_best_epoch} (fake-quantized val top-1 "
                      f"{result.qat_top1:.4f}); {qat_ran} of {trainer.qat_epochs} QAT epochs run")
    console.print(f"run written to [bold]{trainer.run}[/] ({BEST}, {LAST}, {METRICS_CSV}, "
                  f"{CURVES}, {CONFUSION})", soft_wrap=True)


def _leak_effect(trainer, logits: np.ndarray, labels: np.ndarray) -> dict | None:
    """Val top-1 with and without the val images that also appear in train; None: no leak."""
    leaked = trainer.data.leaked("val")
    if not leaked:
        return None
    mask = np.array([s.path in leaked for s in trainer.data.val])
    correct = logits.argmax(1) == labels
    return {"leaked_val_images": int(mask.sum()), "val_images": len(mask),
            "val_top1": float(correct.mean()),
            "val_top1_without_leaked": float(correct[~mask].mean()) if (~mask).any() else None,
            "leaked_test_images": len(trainer.data.leaked("test"))}
