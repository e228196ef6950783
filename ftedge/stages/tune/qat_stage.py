"""The QAT stage of `ftedge tune --qat`: from the best FP32 weights to a gated INT8 Q/DQ ONNX.

A function of its inputs (QatInputs, built by the Trainer): what it makes (the QAT model's
optimizer, loss and coverage, the chosen checkpoint, the gate) it returns; it never reads or
sets the Trainer."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ftedge.config import QatConfig, TuneConfig
from ftedge.console import console
from ftedge.data.folder import Sample
from ftedge.data.transforms import preprocess_samples
from ftedge.errors import RunError
from ftedge.formats.run import BEST, FP32_ONNX, QAT_BEST, QAT_CANDIDATES, RunFolder
from ftedge.graph.metadata import contract_metadata
from ftedge.quant.gate import gate_graphs, onnx_logits
from ftedge.quant.onnx_export import export_onnx
from ftedge.quant.ptq import bias_correction, set_activation_ranges
from ftedge.quant.qat import (DEPTHWISE_KEY, DEPTHWISE_RULE, QatCoverage,
                              calibrate_activations, prepare_qat, set_activation_observers)
from ftedge.stages.common import layer_progress, publish_gate
from ftedge.training.checkpoint import (CheckpointKeeper, load_checkpoint, rank_later,
                                       save_best)
from ftedge.training.dist import DistContext
from ftedge.training.loop import StepSettings, predict_logits, to_device

SCHEME = {"weights": "int8 symmetric per-channel (axis 0); 7-bit magnitudes unless "
                      "qat.weight_bits is 8",
          **DEPTHWISE_RULE,
          "activations": "int8 symmetric per-tensor, zero-point 0",
          "placement": "inputs of every Conv/Gemm; both inputs of residual Adds (the shortcut "
                       "shares the block input's Q/DQ, the branch's last Conv output has its own); "
                       "inputs of hardswish/hardsigmoid/SiLU-like activations; input and gate "
                       "output of squeeze-excite blocks; input of the global pooling",
          "batchnorm": "folded before QAT"}


@dataclass(frozen=True)
class QatInputs:
    """Everything the QAT stage reads, made explicit (the Trainer builds it once)."""

    model: nn.Module  # the bare model (never DDP-wrapped): prepared and trained in place
    train_loader: DataLoader
    val_loader: DataLoader
    val_x: np.ndarray  # the val split as data.transforms.split_arrays makes it ...
    val_labels: np.ndarray  # ... the images val_loader yields, in order
    cfg: TuneConfig
    contract: dict
    classes: list[str]
    train_samples: list[Sample]
    val_samples: list[Sample]
    run: RunFolder
    settings: StepSettings  # device, channels_last, AMP
    ctx: DistContext
    teacher: Callable[[], nn.Module]  # a fresh FP32 model with best.pt's weights


class QatStart(NamedTuple):
    """What entering (or resuming) the QAT stage makes for the training loop."""

    coverage: QatCoverage
    optimizer: torch.optim.Optimizer
    criterion: nn.Module


def example_input(inp: QatInputs) -> torch.Tensor:
    return to_device(torch.from_numpy(inp.val_x[:2]), inp.settings)


def narrow_depthwise(checkpoint: dict) -> bool:
    """Whether a QAT checkpoint was made when depthwise weights were 7-bit too (its
    quantization record predates DEPTHWISE_KEY)."""
    return DEPTHWISE_KEY not in (checkpoint.get("quantization") or {})


def prepare_model(inp: QatInputs, resumed: dict | None = None) -> QatCoverage:
    """Turn the model into its QAT form (BatchNorm folded, fake quantizers) in place, the
    form `resumed` (a QAT-stage last.pt) was trained in when given."""
    cov = prepare_qat(inp.model, example_input(inp), weight_bits=inp.cfg.qat.weight_bits,
                      narrow_depthwise=resumed is not None and narrow_depthwise(resumed))
    inp.model.to(inp.settings.device)
    if inp.settings.channels_last:
        inp.model.to(memory_format=torch.channels_last)
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


def qat_criterion(cfg: TuneConfig, teacher: Callable[[], nn.Module]) -> nn.Module:
    """The QAT stage's loss: distillation from `teacher()` (best.pt) when qat.distill is on."""
    q = cfg.qat
    base = nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)
    if not q.distill:
        return base
    return DistillLoss(teacher(), base, q.distill_temperature, weight=q.distill_weight)


def qat_optimizer(model: nn.Module, cfg: TuneConfig) -> torch.optim.Optimizer:
    """The QAT stage's optimizer over the parameters of `model` that require grad."""
    t, q = cfg.train, cfg.qat
    params = [p for p in model.parameters() if p.requires_grad]
    group = {"params": params, "base_lr": q.lr, "lr": q.lr, "role": "qat",
             "weight_decay": 0.0}  # no decay: weights sit on a quantization grid
    if t.optimizer == "sgd":
        return torch.optim.SGD([group], lr=q.lr, momentum=t.momentum, nesterov=True)
    return torch.optim.AdamW([group], lr=q.lr)


def enter_qat(inp: QatInputs) -> QatStart:
    """Load the best FP32 weights, prepare QAT, set activation ranges; a new optimizer and
    loss for the QAT epochs."""
    best = load_checkpoint(inp.run.file(BEST)) if inp.ctx.is_main else None
    state = best["model_state"] if best else None
    if inp.ctx.enabled:
        from ftedge.training.dist import broadcast_object

        state = broadcast_object(state, inp.ctx)
    inp.model.load_state_dict(state)
    cov = prepare_model(inp)
    if inp.cfg.qat.init == "ptq":
        seen, corrected = ptq_start(inp)
        how = (f"entropy-calibrated on {seen} training images, fixed; {corrected} biases "
               "corrected")
    else:
        seen = calibrate_activations(inp.model,
                                     itertools.islice(iter(inp.train_loader),
                                                      inp.cfg.qat.calib_batches),
                                     lambda x: to_device(x, inp.settings))
        how = f"set from {seen} training images"
    start = QatStart(cov, qat_optimizer(inp.model, inp.cfg), qat_criterion(inp.cfg, inp.teacher))
    if inp.ctx.is_main:
        console.print(f"QAT: {cov}; activation ranges {how}")
    return start


def resume_qat(inp: QatInputs, resumed: dict) -> QatStart:
    """The QAT form, optimizer and loss a QAT-stage last.pt (`resumed`) was trained with; the
    caller loads its weights and optimizer state."""
    cov = prepare_model(inp, resumed=resumed)
    return QatStart(cov, qat_optimizer(inp.model, inp.cfg), qat_criterion(inp.cfg, inp.teacher))


PTQ_START_IMAGES = 256


def ptq_start_samples(train: list) -> list:
    """Up to PTQ_START_IMAGES training samples, spread evenly over the split."""
    return train[::max(1, len(train) // PTQ_START_IMAGES)][:PTQ_START_IMAGES]


def ptq_start(inp: QatInputs) -> tuple[int, int]:
    """QAT from the PTQ model: activation ranges from entropy histograms and bias correction on
    up to 256 training images (eval transform, spread over the split), as `ftedge quantize`
    does. The ranges stay fixed; weight scales keep following the weights. Returns (images,
    corrected layers)."""
    model = inp.model
    samples = ptq_start_samples(inp.train_samples)
    x = torch.from_numpy(preprocess_samples(samples, inp.contract))
    batches = [to_device(x[i:i + 32], inp.settings) for i in range(0, len(x), 32)]
    was_training = model.training
    model.eval()
    set_activation_ranges(model, batches, "entropy")
    corrected = bias_correction(model, batches)
    model.train(was_training)
    return len(samples), corrected


def observers_on(model: nn.Module, q: QatConfig, done: int) -> None:
    """Activation ranges follow the data for the first epochs (`done`: QAT epochs finished),
    then stay fixed."""
    set_activation_observers(model, q.init != "ptq" and done < q.freeze_observers_after)


def _cpu_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format).eval()


def onnx_metadata(inp: QatInputs, precision: str, checkpoint: Path) -> dict:
    return contract_metadata(inp.cfg.model.name, inp.classes, inp.contract,
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


def choose_checkpoint(inp: QatInputs, candidates: list[dict], *, meta: dict) -> dict | None:
    """Score every kept QAT candidate (`candidates`, as candidate_keeper keeps them) as the
    INT8 graph ONNX Runtime runs, on the val split, and make the best one qat_best.pt (with
    `meta`, the run's checkpoint record; ties: the better fake-quantized top-1, then the later
    epoch); the candidate files are then deleted. Returns what was scored and chosen; None
    when there was nothing to choose from."""
    run, q = inp.run, inp.cfg.qat
    x, labels = inp.val_x, inp.val_labels
    folder = run.file(QAT_CANDIDATES)
    states = {}
    for c in candidates:
        try:
            states[c["epoch"]] = load_checkpoint(folder / c["file"])["model_state"]
        except RunError as e:  # deleted or damaged since it was written: score the others
            console.print(f"[yellow]QAT candidate epoch {c['epoch']} not scored: {e.message}")
    cands = [c for c in candidates if c["epoch"] in states]
    if len(cands) < 2:
        return None
    example = torch.zeros(1, *inp.contract["input_size"])
    scored = []
    for c in cands:
        inp.model.load_state_dict(states[c["epoch"]])
        probe = (folder / c["file"]).with_suffix(".int8.onnx")
        try:
            export_onnx(_cpu_copy(inp.model), example, probe, opset=q.opset, metadata={})
            top1 = float((onnx_logits(probe, x).argmax(1) == labels).mean())
        finally:
            probe.unlink(missing_ok=True)
        scored.append({"epoch": c["epoch"], "fake_quant_top1": c["val_top1"],
                       "onnx_runtime_top1": top1})
    best = max(scored, key=lambda s: (s["onnx_runtime_top1"], s["fake_quant_top1"], s["epoch"]))
    inp.model.load_state_dict(states[best["epoch"]])
    save_best(run.file(QAT_BEST), inp.model, {**meta, "epoch": best["epoch"],
                                              "val_top1": best["fake_quant_top1"]})
    _remove_candidates(folder)
    console.print("INT8 checkpoint chosen in ONNX Runtime: epoch "
                  f"{best['epoch']} of " + ", ".join(
                      f"{s['epoch']} ({s['onnx_runtime_top1']:.4f}, fake-quant "
                      f"{s['fake_quant_top1']:.4f})" for s in scored)
                  + " (val top-1)", soft_wrap=True)
    return {"candidates": scored, "chosen_epoch": best["epoch"]}


def device_pipeline_gate(inp: QatInputs, int8_logits: np.ndarray) -> dict | None:
    """For a run tuned for a target whose device preprocesses its own way (preprocess.target
    with a pipeline, DeepStream): the INT8 graph's top-1 under that pipeline's emulation,
    beside the exact contract's; None otherwise."""
    target = inp.cfg.preprocess.target
    if target is None:
        return None
    from ftedge.deploy.deepstream import emulate_samples, emulated_top1
    from ftedge.runtime.profiles import load_profile

    profile = load_profile(target)
    if profile.pipeline is None:
        return None
    x = emulate_samples(inp.val_samples, inp.contract,
                        pixels_in_graph=profile.input_format != "normalized")
    emulated = onnx_logits(inp.run.int8_onnx("qat"), x)
    return emulated_top1(inp.val_labels, int8_logits, emulated, contract=inp.contract,
                         pipeline_name=profile.pipeline.name)


def finish_qat(inp: QatInputs, fp32_model: nn.Module, *, candidates: list[dict],
               meta: dict) -> dict:
    """Choose the QAT checkpoint on ONNX Runtime among `candidates` (saved with `meta`),
    export model.fp32.onnx and model.int8.onnx, then gate INT8 against FP32 in ONNX Runtime
    (quant.gate.gate_graphs) and write the gate. Returns the gate."""
    run, q = inp.run, inp.cfg.qat
    fp32_path, int8_path = run.file(FP32_ONNX), run.int8_onnx("qat")
    selection = choose_checkpoint(inp, candidates, meta=meta)
    qat_best = load_checkpoint(run.file(QAT_BEST))
    inp.model.load_state_dict(qat_best["model_state"])
    qat_model = _cpu_copy(inp.model)
    example = torch.zeros(1, *inp.contract["input_size"])
    fp32_info = export_onnx(_cpu_copy(fp32_model), example, fp32_path, opset=q.opset,
                            metadata=onnx_metadata(inp, "fp32", run.file(BEST)))
    int8_info = export_onnx(qat_model, example, int8_path, opset=q.opset,
                            metadata=onnx_metadata(inp, "int8", run.file(QAT_BEST)))
    torch_fp32, _ = predict_logits(fp32_model, inp.val_loader, inp.settings)
    torch_qat, _ = predict_logits(inp.model, inp.val_loader, inp.settings)
    with layer_progress() as on_layer:
        gated = gate_graphs(fp32_path, int8_path, inp.val_x, labels=inp.val_labels,
                            classes=inp.classes, max_drop=q.max_drop, fallback=q.fallback,
                            cap_fraction=q.fallback_cap, on_layer=on_layer)
    result = gated.result
    result["qat_checkpoint"] = selection or {"candidates": [], "chosen_epoch": qat_best["epoch"]}
    result["parity"] = {
        "fp32_onnx_vs_torch_max_abs": float(np.abs(gated.fp32_logits - torch_fp32).max()),
        "int8_onnx_vs_qat_torch_top1_agreement":
            float((gated.int8_logits.argmax(1) == torch_qat.argmax(1)).mean()),
    }
    result["onnx"] = {"fp32": fp32_info, "int8": int8_info,
                      "size_ratio": int8_path.stat().st_size / fp32_path.stat().st_size}
    emulated = device_pipeline_gate(inp, gated.int8_logits)
    if emulated:
        result["device_pipeline"] = emulated
        console.print(f"INT8 top-1 as {emulated['pipeline']} preprocesses (preprocess.target "
                      f"{inp.cfg.preprocess.target}, emulated): "
                      f"{emulated['top1_emulated']:.4f} against {emulated['top1_exact_contract']:.4f} "
                      f"under the contract ({emulated['drop_points']:+.2f} points)",
                      soft_wrap=True)
    publish_gate(int8_path, result, kind="qat", title="INT8 accuracy gate")
    return result
