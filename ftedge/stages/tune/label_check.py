"""tune's label check before it trains: suspected label errors, found as `ftedge data check
--labels` finds them (cleanlab on the cross-validated probabilities of a linear probe over
frozen pretrained features), from the network tune is about to fine-tune.

Nothing is decoded for it alone: train images come from the audit's decoded cache and val
images are the val loader's tensors, both made for training anyway, and one forward pass gives
the features the probe head (train.head_init: probe) starts from too. What it costs is that
pass and the 5-fold logistic fit (config.resolve_label_check has the measured time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from ftedge.config import resolve_label_check
from ftedge.console import console, print_view
from ftedge.data.dataset import ImageSamples
from ftedge.data.features import pre_logit_capture
from ftedge.data.transforms import eval_transform
from ftedge.deploy.templates.preprocess import draft_request
from ftedge.errors import DatasetError
from ftedge.formats.run import AUDIT
from ftedge.stages.common.audit_view import label_issues_view
from ftedge.training.loop import predict_logits

SHOW = 10  # suspected label errors printed before training; the run's audit has them all
BATCH = 64


def wanted(trainer) -> bool:
    """Whether this run checks its labels (the main process only: it writes the audit)."""
    return trainer.ctx.is_main and resolve_label_check(trainer.cfg.data.label_check,
                                                       trainer.cfg.model.weights)


@torch.no_grad()
def split_features(trainer, splits=("train", "val", "test")) -> dict[str, np.ndarray]:
    """Pre-logit features (the input of the final Linear) of the network as it is now, per
    split, every image through the contract's eval preprocessing."""
    d, cfg = trainer.data, trainer.cfg
    loaders = {}
    for split in splits:
        samples = getattr(d, split) or []
        if split == "val":
            loaders[split] = trainer.val_loader  # already decoded and preprocessed
        elif samples:
            ds = ImageSamples(samples, eval_transform(trainer.contract),
                              cache=d.audit.images if split == "train" else None,
                              background=cfg.data.background,
                              draft=draft_request(trainer.contract))
            loaders[split] = DataLoader(ds, batch_size=BATCH, shuffle=False)
    out = {}
    with pre_logit_capture(trainer.built) as captured:
        for split, loader in loaders.items():
            captured.clear()
            predict_logits(trainer.model, loader, trainer.settings)
            out[split] = torch.cat(captured).numpy() if captured else np.zeros((0, 0))
    return out


@dataclass(frozen=True)
class LabelCheck:
    """What the check did, for the announcement (the issues are in the audit)."""

    images: int
    seconds: float
    skipped: str | None = None  # why no check ran (too few images per class)


def check_labels_before_training(trainer, features: dict[str, np.ndarray], *,
                                 feature_seconds: float) -> LabelCheck:
    """Suspected label errors among train, val and test into the run's audit (written with
    the run's header, read by `report --html`)."""
    from ftedge.data.labels import issues_from_features

    d = trainer.data
    t0 = time.perf_counter()
    samples, rows = [], []
    for split in ("train", "val", "test"):
        if split in features and getattr(d, split):
            samples += getattr(d, split)
            rows.append(features[split])
    try:
        d.audit.label_issues = issues_from_features(samples, np.concatenate(rows),
                                                    classes=d.classes)
    except DatasetError as e:  # too few images per class to cross-validate: train anyway
        return LabelCheck(len(samples), 0.0, e.message)
    return LabelCheck(len(samples), feature_seconds + time.perf_counter() - t0)


def announce(trainer, check: LabelCheck) -> None:
    """The check's result before training: how long it took, the worst suspects."""
    def line(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    if check.skipped:
        line(f"label check skipped: {check.skipped}")
        return
    line(f"label check ({check.images} images, frozen {trainer.cfg.model.name} features, "
         f"{check.seconds:.0f} s; --no-label-check turns it off):")
    print_view(console, label_issues_view(trainer.data.audit, show=SHOW,
                                          more=f"all listed in {trainer.run / AUDIT}, "
                                               "label_issues"))
