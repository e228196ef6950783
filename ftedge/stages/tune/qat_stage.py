"""The QAT stage of `ftedge tune --qat`: from the best FP32 weights to a gated INT8 Q/DQ ONNX."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ftedge.console import console
from ftedge.data.transforms import preprocess_samples
from ftedge.errors import RunError
from ftedge.formats.run import BEST, FP32_ONNX, QAT_BEST, QAT_CANDIDATES, RunFolder
from ftedge.quant.gate import drop_text, onnx_logits, write_gate
from ftedge.quant.sensitivity import gate_with_fallback
from ftedge.graph.coverage import coverage_of_file
from ftedge.graph.metadata import contract_metadata
from ftedge.quant.onnx_export import export_onnx
from ftedge.quant.ptq import bias_correction, set_activation_ranges
from ftedge.quant.qat import (DEPTHWISE_KEY, DEPTHWISE_RULE, QatCoverage,
                              calibrate_activations, prepare_qat, set_activation_observers)
from ftedge.training.checkpoint import (CheckpointKeeper, load_checkpoint, rank_later,
                                       save_best, unwrap)
from ftedge.training.loop import predict_logits, to_device

SCHEME = {"weights": "int8 symmetric per-channel (axis 0); 7-bit magnitudes unless "
                      "qat.weight_bits is 8",
          **DEPTHWISE_RULE,
          "activations": "int8 symmetric per-tensor, zero-point 0",
          "placement": "inputs of every Conv/Gemm; both inputs of residual Adds (the shortcut "
                       "shares the block input's Q/DQ, the branch's last Conv output has its own); "
                       "inputs of hardswish/hardsigmoid/SiLU-like activations; input and gate "
                       "output of squeeze-excite blocks; input of the global pooling",
          "batchnorm": "folded before QAT"}


def example_input(trainer) -> torch.Tensor:
    x = next(iter(trainer.val_loader))[0][:2]
    return to_device(x, trainer.settings)


def narrow_depthwise(checkpoint: dict) -> bool:
    """Whether a QAT checkpoint was made when depthwise weights were 7-bit too (its
    quantization record predates DEPTHWISE_KEY)."""
    return DEPTHWISE_KEY not in (checkpoint.get("quantization") or {})


def prepare_model(trainer, resumed: dict | None = None) -> QatCoverage:
    """Turn the trainer's model into its QAT form (BatchNorm folded, fake quantizers), the
    form `resumed` (a QAT-stage last.pt) was trained in when given."""
    model = unwrap(trainer.model)
    cov = prepare_qat(model, example_input(trainer), weight_bits=trainer.cfg.qat.weight_bits,
                      narrow_depthwise=resumed is not None and narrow_depthwise(resumed))
    model.to(trainer.device)
    if trainer.channels_last:
        model.to(memory_format=torch.channels_last)
    return cov


class DistillLoss(nn.Module):
    """(1 - w) * the usual loss + w * T^2 * KL(teacher || student) on softened logits: the QAT
    model learns the FP32 model's full output distribution, not only the labels."""

    needs_input = True

    def __init__(self, teacher: nn.Module, base: nn.Module, temperature: float, *, weight: float):
        super().__init__()
        self.teacher, self.base, self.t, self.w = teacher.eval(), base, temperature, weight
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def forward(self, logits, y, x):
        with torch.no_grad():
            target = torch.log_softmax(self.teacher(x).float() / self.t, dim=1)
        student = torch.log_softmax(logits.float() / self.t, dim=1)
        kl = nn.functional.kl_div(student, target, log_target=True, reduction="batchmean")
        return (1 - self.w) * self.base(logits, y) + self.w * self.t ** 2 * kl


def qat_criterion(trainer) -> nn.Module:
    """The QAT stage's loss: distillation from best.pt when qat.distill is on."""
    q = trainer.cfg.qat
    base = nn.CrossEntropyLoss(label_smoothing=trainer.cfg.train.label_smoothing)
    if not q.distill:
        return base
    return DistillLoss(trainer.fp32_best_model(), base, q.distill_temperature,
                       weight=q.distill_weight)


def qat_optimizer(trainer):
    t, q = trainer.cfg.train, trainer.cfg.qat
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    group = {"params": params, "base_lr": q.lr, "lr": q.lr, "role": "qat",
             "weight_decay": 0.0}  # no decay: weights sit on a quantization grid
    if t.optimizer == "sgd":
        return torch.optim.SGD([group], lr=q.lr, momentum=t.momentum, nesterov=True)
    return torch.optim.AdamW([group], lr=q.lr)


def enter_qat(trainer) -> QatCoverage:
    """Load the best FP32 weights, prepare QAT, set activation ranges, new optimizer."""
    best = load_checkpoint(trainer.run / BEST) if trainer.ctx.is_main else None
    state = best["model_state"] if best else None
    if trainer.ctx.enabled:
        from ftedge.training.dist import broadcast_object

        state = broadcast_object(state, trainer.ctx)
    unwrap(trainer.model).load_state_dict(state)
    cov = prepare_model(trainer)
    if trainer.cfg.qat.init == "ptq":
        seen, corrected = ptq_start(trainer)
        how = (f"entropy-calibrated on {seen} training images, fixed; {corrected} biases "
               "corrected")
    else:
        seen = calibrate_activations(unwrap(trainer.model),
                                     itertools.islice(iter(trainer.train_loader),
                                                      trainer.cfg.qat.calib_batches),
                                     lambda x: to_device(x, trainer.settings))
        how = f"set from {seen} training images"
    trainer.optimizer = qat_optimizer(trainer)
    trainer.criterion = qat_criterion(trainer)
    if trainer.ctx.is_main:
        console.print(f"QAT: {cov}; activation ranges {how}")
    return cov


PTQ_START_IMAGES = 256


def ptq_start_samples(train: list) -> list:
    """Up to PTQ_START_IMAGES training samples, spread evenly over the split."""
    return train[::max(1, len(train) // PTQ_START_IMAGES)][:PTQ_START_IMAGES]


def ptq_start(trainer) -> tuple[int, int]:
    """QAT from the PTQ model: activation ranges from entropy histograms and bias correction on
    up to 256 training images (eval transform, spread over the split), as `ftedge quantize`
    does. The ranges stay fixed; weight scales keep following the weights. Returns (images,
    corrected layers)."""
    model = unwrap(trainer.model)
    samples = ptq_start_samples(trainer.data.train)
    x = torch.from_numpy(preprocess_samples(samples, trainer.contract))
    batches = [to_device(x[i:i + 32], trainer.settings) for i in range(0, len(x), 32)]
    was_training = model.training
    model.eval()
    set_activation_ranges(model, batches, "entropy")
    corrected = bias_correction(model, batches)
    model.train(was_training)
    return len(samples), corrected


def observers_on(trainer, epoch: int) -> None:
    """Activation ranges follow the data for the first epochs, then stay fixed."""
    done = epoch - trainer.qat_start_epoch
    q = trainer.cfg.qat
    set_activation_observers(unwrap(trainer.model),
                             q.init != "ptq" and done < q.freeze_observers_after)


def _cpu_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(unwrap(model)).cpu().to(memory_format=torch.contiguous_format).eval()


def onnx_metadata(trainer, precision: str, checkpoint: Path) -> dict:
    return contract_metadata(trainer.cfg.model.name, trainer.data.classes, trainer.contract,
                             precision=precision, checkpoint=checkpoint,
                             quantization=SCHEME if precision == "int8" else "none")


CANDIDATE_PREFIX = "epoch_"


def candidate_keeper(run: RunFolder, q, kept: list[dict]) -> CheckpointKeeper:
    """The QAT epochs kept in qat_candidates/ for scoring in ONNX Runtime: the best
    `q.candidates` by fake-quantized val top-1 (none when it is 1 or less); `kept` (best first)
    is the list the training state saves, updated in place."""
    return CheckpointKeeper(q.candidates if q.candidates > 1 else 0,
                            lambda epoch: run.file(QAT_CANDIDATES)
                            / f"{CANDIDATE_PREFIX}{epoch:03d}.pt",
                            rank=rank_later, kept=kept)


def _remove_candidates(folder: Path) -> None:
    """Delete the candidate checkpoints ftedge wrote (listed or left by an interrupted epoch),
    and the folder once empty: anything else in it is not ours and stays."""
    for f in folder.glob(f"{CANDIDATE_PREFIX}*.pt"):
        f.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def choose_checkpoint(trainer, x: np.ndarray, labels: np.ndarray) -> dict | None:
    """Score every kept QAT candidate as the INT8 graph ONNX Runtime runs, on the val split,
    and make the best one qat_best.pt (ties: the better fake-quantized top-1, then the later
    epoch). Returns what was scored and chosen; None when there was nothing to choose from."""
    run, q = trainer.run, trainer.cfg.qat
    folder = run / QAT_CANDIDATES
    states = {}
    for c in trainer.qat_candidates:
        try:
            states[c["epoch"]] = load_checkpoint(folder / c["file"])["model_state"]
        except RunError as e:  # deleted or damaged since it was written: score the others
            console.print(f"[yellow]QAT candidate epoch {c['epoch']} not scored: {e.message}")
    cands = [c for c in trainer.qat_candidates if c["epoch"] in states]
    if len(cands) < 2:
        return None
    example = torch.zeros(1, *trainer.contract["input_size"])
    scored = []
    for c in cands:
        unwrap(trainer.model).load_state_dict(states[c["epoch"]])
        probe = (folder / c["file"]).with_suffix(".int8.onnx")
        try:
            export_onnx(_cpu_copy(trainer.model), example, probe, opset=q.opset, metadata={})
            top1 = float((onnx_logits(probe, x).argmax(1) == labels).mean())
        finally:
            probe.unlink(missing_ok=True)
        scored.append({"epoch": c["epoch"], "fake_quant_top1": c["val_top1"],
                       "onnx_runtime_top1": top1})
    best = max(scored, key=lambda s: (s["onnx_runtime_top1"], s["fake_quant_top1"], s["epoch"]))
    unwrap(trainer.model).load_state_dict(states[best["epoch"]])
    save_best(run / QAT_BEST, trainer.model, {**trainer.meta(), "epoch": best["epoch"],
                                              "val_top1": best["fake_quant_top1"]})
    _remove_candidates(folder)
    trainer.qat_candidates = []
    console.print("INT8 checkpoint chosen in ONNX Runtime: epoch "
                  f"{best['epoch']} of " + ", ".join(
                      f"{s['epoch']} ({s['onnx_runtime_top1']:.4f}, fake-quant "
                      f"{s['fake_quant_top1']:.4f})" for s in scored)
                  + " (val top-1)", soft_wrap=True)
    return {"candidates": scored, "chosen_epoch": best["epoch"]}


def device_pipeline_gate(trainer, int8_logits: np.ndarray, labels: np.ndarray) -> dict | None:
    """For a run tuned for a target whose device preprocesses its own way (preprocess.target
    with a pipeline, DeepStream): the INT8 graph's top-1 under that pipeline's emulation,
    beside the exact contract's; None otherwise."""
    target = trainer.cfg.preprocess.target
    if target is None:
        return None
    from ftedge.deploy.deepstream import emulate_samples, emulated_top1
    from ftedge.runtime.profiles import load_profile

    profile = load_profile(target)
    if profile.pipeline is None:
        return None
    x = emulate_samples(trainer.data.val, trainer.contract,
                        pixels_in_graph=profile.input_format != "normalized")
    emulated = onnx_logits(trainer.run_folder.int8_onnx("qat"), x)
    return emulated_top1(labels, int8_logits, emulated, contract=trainer.contract,
                         pipeline_name=profile.pipeline.name)


def finish_qat(trainer, fp32_model: nn.Module) -> dict:
    """Choose the QAT checkpoint on ONNX Runtime, export model.fp32.onnx and model.int8.onnx,
    then gate INT8 against FP32 in ONNX Runtime."""
    run, q = trainer.run, trainer.cfg.qat
    fp32_path, int8_path = run / FP32_ONNX, trainer.run_folder.int8_onnx("qat")
    x, labels = trainer.val_x, trainer.val_labels
    selection = choose_checkpoint(trainer, x, labels)
    qat_best = load_checkpoint(run / QAT_BEST)
    unwrap(trainer.model).load_state_dict(qat_best["model_state"])
    qat_model = _cpu_copy(trainer.model)
    example = torch.zeros(1, *trainer.contract["input_size"])
    fp32_info = export_onnx(_cpu_copy(fp32_model), example, fp32_path, opset=q.opset,
                            metadata=onnx_metadata(trainer, "fp32", run / BEST))
    int8_info = export_onnx(qat_model, example, int8_path, opset=q.opset,
                            metadata=onnx_metadata(trainer, "int8", run / QAT_BEST))
    fp32_logits = onnx_logits(fp32_path, x)
    torch_fp32, _ = predict_logits(fp32_model, trainer.val_loader, trainer.settings)
    torch_qat, _ = predict_logits(unwrap(trainer.model), trainer.val_loader, trainer.settings)
    int8_logits = onnx_logits(int8_path, x)
    result = gate_with_fallback(int8_path, int8_logits, fp32_logits, x=x, labels=labels,
                                classes=trainer.data.classes, max_drop=q.max_drop,
                                fallback=q.fallback, cap_fraction=q.fallback_cap)
    result["qat_checkpoint"] = selection or {"candidates": [], "chosen_epoch": qat_best["epoch"]}
    result["parity"] = {
        "fp32_onnx_vs_torch_max_abs": float(np.abs(fp32_logits - torch_fp32).max()),
        "int8_onnx_vs_qat_torch_top1_agreement":
            float((int8_logits.argmax(1) == torch_qat.argmax(1)).mean()),
    }
    # coverage as shipped: read from the exported graph, not counted from the preparation
    result["coverage"] = coverage_of_file(int8_path)
    result["onnx"] = {"fp32": fp32_info, "int8": int8_info,
                      "size_ratio": int8_path.stat().st_size / fp32_path.stat().st_size}
    emulated = device_pipeline_gate(trainer, int8_logits, labels)
    if emulated:
        result["device_pipeline"] = emulated
        console.print(f"INT8 top-1 as {emulated['pipeline']} preprocesses (preprocess.target "
                      f"{trainer.cfg.preprocess.target}, emulated): "
                      f"{emulated['top1_emulated']:.4f} against {emulated['top1_exact_contract']:.4f} "
                      f"under the contract ({emulated['drop_points']:+.2f} points)",
                      soft_wrap=True)
    json_path, md_path = write_gate(int8_path, result)
    verdict = "[green]passed" if result["passed"] else "[red]FAILED"
    console.print(f"INT8 gate {verdict}[/]: FP32 top-1 {result['fp32_top1']:.4f}, INT8 (ONNX "
                  f"Runtime) {result['int8_top1']:.4f}, {drop_text(result)}; report in "
                  f"{md_path}", soft_wrap=True)
    return result
