"""`ftedge.tune`: head warm-up, then full fine-tuning, with checkpoints, resume and DDP."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import yaml
from torch import nn

from ftedge.config import (TuneConfig, build_tune_config, from_dict, load_yaml, nest_overrides,
                           resolve_amp, resolve_bn_frozen, resolve_channels_last, resolve_device,
                           resolve_epochs, resolve_patience, resolve_qat_epochs, to_dict,
                           validate_tune_config)
from ftedge.console import console, make_progress
from ftedge.data.transforms import split_arrays
from ftedge.errors import ConfigError, RunError
from ftedge.formats.run import BEST, CONFIG, GATE, LAST, QAT_BEST, SUMMARY, RunFolder
from ftedge.io import folder_lock, make_parent, memoised_reads, new_folder, read_json
from ftedge.metrics import classification_report
from ftedge.models import build_model
from ftedge.training import dist as D
from ftedge.stages.tune import label_check, qat_stage, report
from ftedge.training.checkpoint import (CheckpointKeeper, load_checkpoint, rng_state, save_best,
                                       save_last)
from ftedge.training.data_setup import (PreparedData, prepare_data, run_contract, train_loader,
                                        val_loader)
from ftedge.training.loop import StepSettings, predict_logits, train_one_epoch
from ftedge.training.perf import keep_freed_memory
from ftedge.training.schedule import lr_factor, set_lr

EpochCallback = Callable[[dict], None]


class TrainingDiverged(RunError):
    """The loss became NaN or infinite; nothing after the last good epoch is written."""


@dataclass
class TuneResult:
    """What a finished (or early-stopped) run reached, and where it is."""

    run_dir: Path
    best_top1: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    history: list[dict]
    seconds: float
    gate: dict | None = None  # the INT8 accuracy gate, when --qat ran
    qat_top1: float | None = None  # best val top-1 of the fake-quantized model ...
    qat_best_epoch: int | None = None  # ... at this epoch (counted over both stages)


@memoised_reads()  # each input hashed and parsed once per command
def tune(config: TuneConfig | None = None, *, config_file: str | None = None,
         resume: str | Path | None = None, callbacks: Sequence[EpochCallback] = (),
         **options) -> TuneResult:
    """Fine-tune a pretrained classifier on a folder of images; the API behind `ftedge tune`.

    Args:
        config: a full TuneConfig; or build one from `config_file` (YAML) and `options`.
        config_file: YAML file with data/model/train/augment sections.
        resume: a run folder (or its last.pt) to continue; it keeps its saved config.
        callbacks: called with each epoch's metrics row after last.pt is written.
        **options: flat overrides: data, model, weights, img_size, epochs, batch_size, lr,
            optimizer, seed, device, out, ... (see `ftedge.config.FLAT_KEYS`).
    Returns:
        TuneResult with the run folder and the best validation top-1.
    Raises:
        ConfigError, DatasetError, WeightsError, RunError: with what to fix.
    """
    if resume is not None:
        if config is not None or config_file or options:
            raise ConfigError("--resume continues a run with its saved config",
                              "drop the other options, or start a new run with --out")
        cfg, ckpt = _load_resume(Path(resume))
        if ckpt is not None and RunFolder(Path(cfg.out)).summary() is not None:
            return _finished(RunFolder(Path(cfg.out)))
    else:
        if config is not None and (config_file or options):
            raise ConfigError("pass either a TuneConfig or config_file/options, not both")
        cfg = config or build_tune_config(config_file, nest_overrides(options))
        validate_tune_config(cfg)
        cfg = _check_paths(cfg)
        ckpt = None
    keep_freed_memory()
    ctx, device = D.init_distributed(resolve_device(cfg.train.device))
    trainer = None
    try:
        with contextlib.ExitStack() as held:  # the run folder's one-writer lock
            trainer = Trainer(cfg, ctx, device, ckpt=ckpt, callbacks=callbacks, held=held)
            return trainer.fit()
    finally:
        if trainer is not None:
            trainer.release_ddp()
        D.shutdown(ctx)


def _check_paths(cfg: TuneConfig) -> TuneConfig:
    """The data path made absolute (the saved config works from any folder); an --out inside
    --data refused: the next run would take the run folder for a class."""
    if cfg.data.path is None:
        return cfg
    data = Path(cfg.data.path).resolve()
    out = Path(cfg.out).resolve() if cfg.out else None
    if out is not None and (out == data or data in out.parents):
        raise ConfigError(f"--out {cfg.out} is inside --data {cfg.data.path}",
                          "write the run outside the dataset, e.g. --out runs/mine")
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(data)))


def _finished(folder: RunFolder) -> TuneResult:
    """A finished run (its summary.json is written last) resumed: nothing is trained or
    written again; what it reached, as it recorded it."""
    run, summary = folder.path, folder.summary()
    qat = summary.get("qat") if isinstance(summary.get("qat"), dict) else None
    gate = None
    if qat is not None:
        gate = read_json(folder.file(f"{GATE['qat']}.json"))
        if not isinstance(gate, dict) or not isinstance(gate.get("passed"), bool):
            raise RunError(f"{folder.file(GATE['qat'])}.json is damaged",
                           "start a new run with --out")
    console.print(f"{run} is finished (its {SUMMARY} is written): nothing to resume. Export it "
                  f"(ftedge export {run} --target ...), or start a new run with --out",
                  soft_wrap=True)
    return TuneResult(run, float(summary["best_top1"]), int(summary.get("best_epoch") or 0),
                      int(summary.get("epochs_run") or 0), bool(summary.get("stopped_early")),
                      [], 0.0, gate=gate, qat_top1=qat and qat.get("qat_val_top1"),
                      qat_best_epoch=qat and qat.get("qat_best_epoch"))


def _load_resume(path: Path) -> tuple[TuneConfig, dict | None]:
    """The saved config and last.pt; a run stopped before its first checkpoint restarts from
    the beginning with its saved config (ckpt None)."""
    run = path.parent if path.is_file() else path
    last, config = run / LAST, run / CONFIG
    if not config.is_file():
        raise RunError(f"nothing to resume in {run}: {CONFIG} is missing",
                       "point --resume at a run folder written by `ftedge tune`")
    cfg = from_dict(TuneConfig, load_yaml(config), where=str(config))
    validate_tune_config(cfg)
    cfg = dataclasses.replace(cfg, out=str(run))
    if not last.is_file():
        console.print(f"{run} stopped before its first checkpoint: starting it again from the "
                      "beginning with its saved config", soft_wrap=True)
        return cfg, None
    ckpt = load_checkpoint(last)
    if "train_state" not in ckpt:
        raise RunError(f"{last} holds no training state", f"resume from the run's {LAST}")
    return cfg, ckpt


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def default_run_dir(cfg: TuneConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model.name.replace('/', '_')}-{stamp}"


def seed_epoch(seed: int, epoch: int, loader) -> None:
    """Seed every RNG from (seed, epoch): a resumed run replays the exact same epochs."""
    s = seed * 1000 + epoch
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    loader.generator.manual_seed(s)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)


def _param_groups(built, cfg: TuneConfig) -> list[dict]:
    """Head and backbone at their own LRs; no weight decay on biases and norm parameters."""
    t = cfg.train
    groups = []
    for role, params, lr in (("head", built.head_parameters(), t.lr),
                             ("backbone", built.backbone_parameters(), t.lr * t.backbone_lr_mult)):
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        groups += [{"params": decay, "weight_decay": t.weight_decay, "base_lr": lr, "role": role},
                   {"params": no_decay, "weight_decay": 0.0, "base_lr": lr, "role": role}]
    return [g for g in groups if g["params"]]


def _make_optimizer(groups, cfg: TuneConfig):
    t = cfg.train
    for g in groups:
        g["lr"] = g["base_lr"]
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=t.lr)


class Trainer:
    """State of one run; `fit` drives the epochs. Only rank 0 writes files."""

    def __init__(self, cfg: TuneConfig, ctx: D.DistContext, device: str, *, ckpt: dict | None,
                 callbacks: Sequence[EpochCallback], held: contextlib.ExitStack):
        self.cfg, self.ctx, self.device, self.callbacks = cfg, ctx, device, callbacks
        # a default name is made unique (and created) at once: runs started in the same
        # second never share a folder
        run = cfg.out or (str(new_folder(default_run_dir(cfg))) if ctx.is_main else None)
        self.run = Path(D.broadcast_object(run, ctx))
        if ctx.is_main:
            # a run that fails before its first file leaves no empty folder it made (a
            # default name, or an --out that did not exist; an empty one the user made stays)
            if not cfg.out or not self.run.exists():
                held.callback(_remove_if_empty, self.run)
            held.enter_context(folder_lock(self.run))
        if ckpt is None:
            self._claim_run_dir()
        self.run_folder = RunFolder(self.run)
        self.contract = run_contract(cfg)
        size = self.contract["input_size"][-1]
        saved_split = self.run_folder.split() if ckpt is not None else None
        self.data: PreparedData = prepare_data(cfg, round(1.5 * size), saved_split, run=self.run,
                                               contract=self.contract)
        torch.manual_seed(cfg.train.seed)  # the new head's initial weights
        self.built = build_model(cfg.model.name, len(self.data.classes), weights=cfg.model.weights,
                                 dropout=cfg.model.dropout)
        self.bn_frozen = resolve_bn_frozen(cfg.train.bn, cfg.train.batch_size,
                                           cfg.model.weights != "none",
                                           train_images=len(self.data.train))
        self._setup_model()
        self._frozen_feature_steps(probe=cfg.train.head_init == "probe" and ckpt is None)
        self.qat_inputs = qat_stage.QatInputs(
            model=self.model, train_loader=self.train_loader, val_loader=self.val_loader,
            val_x=self.val_x, val_labels=self.val_labels, cfg=cfg, contract=self.contract,
            classes=self.data.classes, train_samples=self.data.train, val_samples=self.data.val,
            run=self.run_folder, settings=self.settings, ctx=ctx, teacher=self.fp32_best_model)
        self.history: list[dict] = []
        self.best_top1, self.best_epoch, self.bad_epochs, self.start_epoch = -1.0, 0, 0, 0
        self.step = 0
        self.stage, self.qat_start_epoch, self.coverage = "fp32", None, None
        self.fp32_best = None  # (top-1, epoch) of the FP32 stage once QAT has started
        self.qat_candidates: list[dict] = []  # QAT epochs kept for scoring in ONNX Runtime
        if ckpt is not None:
            self._restore(ckpt)
        self.best_keeper = self._best_keeper()

    def _frozen_feature_steps(self, *, probe: bool) -> None:
        """What needs the pretrained network's features, from one forward pass: the label
        check (data.label_check) and the probe head (train.head_init: probe)."""
        self.label_check: label_check.LabelCheck | None = None
        check = label_check.wanted(self)
        if not (check or probe):
            return
        t0 = time.perf_counter()
        features = label_check.split_features(self, ("train", "val", "test") if check
                                              else ("train",))
        seconds = time.perf_counter() - t0
        if probe:
            from ftedge.stages.tune.probe import init_head_from_probe

            c = init_head_from_probe(self.built, self.data.train, self.contract,
                                     n_classes=len(self.data.classes),
                                     features=features["train"])
            if self.ctx.is_main:
                console.print(f"head initialised from the linear probe (C {c:.3g})")
        if check:
            self.label_check = label_check.check_labels_before_training(
                self, features, feature_seconds=seconds)

    def _best_keeper(self) -> CheckpointKeeper:
        """best.pt (qat_best.pt in the QAT stage): the stage's best epoch so far."""
        name = QAT_BEST if self.stage == "qat" else BEST
        kept = ([{"epoch": self.best_epoch, "val_top1": self.best_top1, "file": name}]
                if self.best_epoch else [])
        return CheckpointKeeper(1, lambda epoch: self.run / name, kept=kept)

    # -- setup -------------------------------------------------------------------------
    def _claim_run_dir(self) -> None:
        """A new run takes an absent or empty folder, or one a killed run left before its
        first checkpoint (only ftedge's header files: nothing to lose)."""
        if not self.ctx.is_main:
            return
        make_parent(self.run / CONFIG)  # a clear error when a parent is a file
        if not self.run.exists():
            return
        if not self.run.is_dir():
            raise RunError(f"--out {self.run} is a file", "choose a folder for --out")
        folder = RunFolder(self.run)
        if any(self.run.iterdir()) and not folder.is_reusable():
            if folder.summary() is not None:
                raise RunError(f"run folder {self.run} already exists: a finished run",
                               f"choose another --out (or export this one: ftedge export "
                               f"{self.run} --target ...)")
            if folder.has_checkpoint():
                raise RunError(f"run folder {self.run} already exists and is not empty",
                               f"choose another --out, or continue it with --resume {self.run}")
            names = sorted(p.name for p in self.run.iterdir())
            raise RunError(f"--out {self.run} holds files that are not a run ftedge started "
                           f"({', '.join(names[:5])}): ftedge never replaces them",
                           "give a new or empty folder as --out, e.g. --out "
                           f"{self.run / 'run'}")

    def _setup_model(self) -> None:
        cfg, dev = self.cfg, self.device
        self.model: nn.Module = self.built.model.to(dev)
        if dev.startswith("cuda"):
            torch.backends.cudnn.benchmark = True  # fixed input size: pick the fastest kernels
        self.channels_last = resolve_channels_last(cfg.train.channels_last)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        amp = resolve_amp(cfg.train.amp, dev)
        amp_dtype = None
        if amp:
            bf16 = dev.startswith("cuda") and torch.cuda.is_bf16_supported()
            amp_dtype = torch.bfloat16 if bf16 or dev == "cpu" else torch.float16
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        self.settings = StepSettings(dev, self.channels_last, amp_dtype, scaler, cfg.train.grad_clip)
        if cfg.train.bn_momentum is not None:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = cfg.train.bn_momentum
        self.optimizer = _make_optimizer(_param_groups(self.built, cfg), cfg)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)
        self.train_loader = train_loader(self.data, self.contract, cfg, ctx=self.ctx, device=dev)
        # decoded once: the epochs' validation and the QAT stage's gate judge these arrays
        self.val_x, self.val_labels = split_arrays(self.data.val, self.contract)
        self.val_loader = val_loader(self.val_x, self.val_labels, cfg.train.batch_size)
        self.train_model = self.model
        self._ddp_head_only: bool | None = None
        steps = len(self.train_loader)
        self.epochs = resolve_epochs(cfg.train.epochs, steps)
        self.patience = resolve_patience(cfg.train.patience, cfg.train.epochs, self.epochs)
        self.full_steps = (self.epochs - cfg.train.head_epochs) * steps
        self.warmup_steps = round(cfg.train.warmup_epochs * steps)
        self.qat_epochs = resolve_qat_epochs(cfg.qat.epochs, steps)
        self.qat_steps = self.qat_epochs * steps

    def meta(self) -> dict:
        """The contract stored with every checkpoint."""
        return {"model_name": self.cfg.model.name, "arch": self.built.spec.arch,
                "classes": self.data.classes, "num_classes": len(self.data.classes),
                "preprocessing": self.contract, "config": to_dict(self.cfg),
                "weights_source": self.built.weights_note,
                "quantization": ({**qat_stage.SCHEME, **self.coverage.to_dict()}
                                 if self.stage == "qat" else None)}

    def _restore(self, ckpt: dict) -> None:
        ts = ckpt["train_state"]
        if ts.get("stage") == "qat":
            self.coverage, self.optimizer, self.criterion = qat_stage.resume_qat(
                self.qat_inputs, ckpt)
            self.stage, self.qat_start_epoch = "qat", ts["qat_start_epoch"]
            self.fp32_best = tuple(ts["fp32_best"])
        self.model.load_state_dict(ckpt["model_state"])
        self._load_optimizer(ts["optimizer"], qat=ts.get("stage") == "qat")
        if self.settings.scaler is not None and ts.get("scaler"):
            self.settings.scaler.load_state_dict(ts["scaler"])
        self.history = list(ts["history"])
        self.best_top1, self.best_epoch = ts["best_top1"], ts["best_epoch"]
        self.bad_epochs, self.start_epoch, self.step = ts["bad_epochs"], ts["epoch"], ts["step"]
        self.qat_candidates = list(ts.get("qat_candidates") or [])
        torch.set_rng_state(ts["rng"]["torch"])

    def _load_optimizer(self, state: dict, qat: bool) -> None:
        """The saved optimizer state; a QAT one saved by an ftedge whose QAT optimizer held the
        head alone (see _begin_qat) is loaded into such an optimizer, so the run finishes as
        it was trained."""
        try:
            self.optimizer.load_state_dict(state)
            return
        except ValueError:
            if not qat:
                raise RunError(f"{LAST}'s optimizer state does not fit this model",
                               "the run folder was mixed with another run's files: start a new "
                               "run with --out") from None
        for p in self.built.backbone_parameters():
            p.requires_grad_(False)
        self.optimizer = qat_stage.qat_optimizer(self.model, self.cfg)
        try:
            self.optimizer.load_state_dict(state)
        except ValueError:
            raise RunError(f"{LAST}'s QAT optimizer state does not fit this model",
                           "start a new run with --out") from None

    # -- epochs ------------------------------------------------------------------------
    def _wrap_ddp(self, head_only: bool) -> None:
        """DDP syncs the parameters that require grad when it is built: rebuild per phase."""
        if not self.ctx.enabled or self._ddp_head_only == head_only:
            return
        ids = [int(self.device.split(":")[1])] if self.device.startswith("cuda") else None
        self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self._ddp_head_only = head_only

    def release_ddp(self) -> None:
        """Let go of the DDP wrapper, which holds the process group: the group must be
        destroyed with no wrapper left (see dist.shutdown)."""
        self.train_model, self._ddp_head_only = self.model, None

    def _set_phase(self, head_only: bool) -> None:
        for p in self.built.backbone_parameters():
            p.requires_grad_(not head_only)
        self._wrap_ddp(head_only)
        self.train_model.train()
        if self.stage == "qat":
            return  # BatchNorm is folded into the convolutions
        if head_only or self.bn_frozen:
            for name, m in self.model.named_modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and (
                        self.bn_frozen or not name.startswith(self.built.head_prefixes)):
                    m.eval()

    def _lr_hook(self, head_only: bool):
        def before_step():
            if self.stage == "qat":
                set_lr(self.optimizer, lr_factor(self.step, self.qat_steps, 0,
                                                 min_ratio=self.cfg.train.min_lr_ratio))
                self.step += 1
            elif head_only:
                set_lr(self.optimizer, 1.0)
                for g in self.optimizer.param_groups:
                    if g["role"] == "backbone":
                        g["lr"] = 0.0
            else:
                set_lr(self.optimizer, lr_factor(self.step, self.full_steps, self.warmup_steps,
                                                 min_ratio=self.cfg.train.min_lr_ratio))
                self.step += 1
        return before_step

    def _run_epoch(self, epoch: int, progress, task) -> dict:
        t = self.cfg.train
        head_only = self.stage == "fp32" and epoch < t.head_epochs
        seed_epoch(t.seed, epoch, self.train_loader)
        self._set_phase(head_only)
        if self.stage == "qat":
            qat_stage.observers_on(self.model, self.cfg.qat, epoch - self.qat_start_epoch)
        phase = "qat" if self.stage == "qat" else "head" if head_only else "full"
        last = (self.qat_start_epoch + self.qat_epochs) if self.stage == "qat" else self.epochs
        progress.reset(task, total=len(self.train_loader),
                       description=f"epoch {epoch + 1}/{last} [{phase}]", stats="")

        def after_step(s):
            progress.update(task, advance=1, stats=(
                f"loss {s.loss_sum / s.seen:.3f}  acc {s.correct / s.seen:.3f}  "
                f"{s.seen * self.ctx.world_size / max(s.compute_s + s.wait_s, 1e-9):.1f} img/s"))

        t0 = time.perf_counter()
        s = train_one_epoch(self.train_model, self.train_loader, self.optimizer,
                            criterion=self.criterion,
                            s=self.settings, before_step=self._lr_hook(head_only),
                            after_step=after_step)
        loss_sum, correct, seen, wait = D.all_reduce_sum(
            [s.loss_sum, s.correct, s.seen, s.wait_s], self.ctx, self.device)
        if not math.isfinite(loss_sum):
            kept = [n for n in (BEST, LAST) if (self.run / n).is_file()]
            raise TrainingDiverged(
                f"training diverged in epoch {epoch + 1}: the loss is not finite"
                + (f"; the last good checkpoints are kept ({', '.join(kept)} in {self.run})"
                   if kept else ""),
                "lower --lr (or train.backbone_lr_mult), or set train.grad_clip; check that "
                "--weights holds finite numbers")
        train_s = time.perf_counter() - t0
        logits, labels = predict_logits(self.model, self.val_loader, self.settings)
        val_loss = float(nn.functional.cross_entropy(torch.from_numpy(logits),
                                                     torch.from_numpy(labels)))
        rep = classification_report(logits, labels, self.data.classes)
        return {"epoch": epoch + 1, "phase": phase,
                "lr": self.optimizer.param_groups[0]["lr"],
                "train_loss": loss_sum / max(seen, 1), "train_top1": correct / max(seen, 1),
                "val_loss": val_loss, "val_top1": rep["top1"], "val_top5": rep["top5"],
                "images_per_s": seen / max(train_s, 1e-9),
                "data_wait_frac": wait / self.ctx.world_size / max(train_s, 1e-9),
                "epoch_s": time.perf_counter() - t0}

    def _improved(self, row: dict) -> bool:
        if self.best_keeper.admits(row):
            self.best_top1, self.best_epoch, self.bad_epochs = row["val_top1"], row["epoch"], 0
            return True
        self.bad_epochs += 1
        return False

    def _save(self, row: dict, improved: bool) -> None:
        if not self.ctx.is_main:
            return
        def save(path: Path) -> None:
            save_best(path, self.model, {**self.meta(), "epoch": row["epoch"],
                                         "val_top1": row["val_top1"]})

        if improved:
            self.best_keeper.offer(row, save)
        if self.stage == "qat":
            qat_stage.candidate_keeper(self.run_folder, self.cfg.qat,
                                       self.qat_candidates).offer(row, save)
        train_state = {
            "stage": self.stage, "qat_start_epoch": self.qat_start_epoch,
            "fp32_best": list(self.fp32_best) if self.fp32_best else None,
            "epoch": row["epoch"], "step": self.step, "history": self.history,
            "best_top1": self.best_top1, "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs, "qat_candidates": self.qat_candidates,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.settings.scaler.state_dict() if self.settings.scaler else None,
            "rng": rng_state()}
        save_last(self.run / LAST, self.model, {**self.meta(), "epoch": row["epoch"]},
                  train_state=train_state)
        self.run_folder.write_metrics(self.history)

    def _write_run_header(self) -> None:
        if not self.ctx.is_main:
            return
        self.run_folder.write_header(
            split=self.data.split_record,
            config_yaml=yaml.safe_dump(to_dict(self.cfg), sort_keys=False),
            classes=self.data.classes, audit=self.data.audit.to_dict(), contract=self.contract)

    def _run_epochs(self, epochs: range, progress, task, stop_from: int | None) -> bool:
        """Train `epochs`; returns True when early stopping ended them (never before epoch
        `stop_from`; None: never)."""
        patience = self.patience if stop_from is not None else None
        for epoch in epochs:
            row = self._run_epoch(epoch, progress, task)
            self.history.append(row)
            improved = self._improved(row) if self.ctx.is_main else False
            self._save(row, improved)
            if self.ctx.is_main:
                report.log_epoch(row, improved)
            for cb in self.callbacks:
                cb(row)
            stop = bool(patience) and self.bad_epochs >= patience and epoch >= stop_from
            if D.broadcast_flag(stop, self.ctx, self.device):
                return True
        return False

    def _begin_qat(self) -> None:
        # QAT trains every weight: a run whose FP32 stage ended in its head-only phase
        # (epochs == head_epochs) had the backbone frozen here, and its QAT optimizer then held
        # the head alone, which no resume could rebuild (a ValueError on --resume)
        for p in self.built.backbone_parameters():
            p.requires_grad_(True)
        self.fp32_best = (self.best_top1, self.best_epoch)
        self.qat_start_epoch = len(self.history)
        self.stage = "qat"
        self.coverage, self.optimizer, self.criterion = qat_stage.enter_qat(self.qat_inputs)
        self.best_top1, self.best_epoch, self.bad_epochs, self.step = -1.0, 0, 0, 0
        self.best_keeper = self._best_keeper()
        self.qat_candidates = []
        self._ddp_head_only = None  # new parameters: DDP must be rebuilt

    def fit(self) -> TuneResult:
        t, q = self.cfg.train, self.cfg.qat
        t_start = time.perf_counter()
        self._write_run_header()
        if self.ctx.is_main:
            report.announce(self)
        stopped = False
        with make_progress(disable=not self.ctx.is_main) as progress:
            task = progress.add_task("train", total=len(self.train_loader), stats="")
            if self.stage == "fp32":
                stopped = self._run_epochs(range(self.start_epoch, self.epochs), progress, task,
                                           t.head_epochs)
                if q.enabled:
                    self._begin_qat()
            if self.stage == "qat":
                # QAT runs its whole cosine schedule: the INT8 model gains as its LR anneals, and
                # early stopping on a few hundred val images ended it at a lucky early epoch
                # (issue 9, flowers17-10shot MobileNetV2 8-bit, 4 seeds both ways: it stopped all
                # 4 after 18-35 of 40 epochs, equal 3 times, 4 images worse once)
                first = max(self.start_epoch, self.qat_start_epoch)
                self._run_epochs(range(first, self.qat_start_epoch + self.qat_epochs), progress,
                                 task, None)
        fp32_top1, fp32_epoch = self.fp32_best or (self.best_top1, self.best_epoch)
        result = TuneResult(self.run, fp32_top1, fp32_epoch, len(self.history), stopped,
                            self.history, time.perf_counter() - t_start,
                            qat_top1=self.best_top1 if self.stage == "qat" else None,
                            qat_best_epoch=self.best_epoch if self.stage == "qat" else None)
        if self.ctx.is_main:
            report.finish(self, result)
        return result

    def finish_qat(self, fp32_model: nn.Module) -> dict:
        """The QAT stage's end (checkpoint choice, ONNX export, gate) on this run."""
        gate = qat_stage.finish_qat(self.qat_inputs, fp32_model, candidates=self.qat_candidates,
                                    meta=self.meta())
        self.qat_candidates = []  # chosen from and deleted
        return gate

    def fp32_best_model(self) -> nn.Module:
        """A fresh FP32 model with best.pt's weights (the trainer's own may be QAT-prepared)."""
        from ftedge.runtime.pytorch.runner import model_from_checkpoint

        best = self.run / BEST
        model = model_from_checkpoint(load_checkpoint(best), best).to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model
