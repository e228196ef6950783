"""Why the first full fine-tuning epoch collapses with training-mode BatchNorm: statistics only.

Starts from ImageNet weights with the head set to the fitted linear probe (so the network is
as good as the probe), then changes NOTHING but the BatchNorm running statistics: they are
re-estimated (cumulative average, no weight update) from training batches of 32 seen (a) with
the training augmentation, (b) through the eval transform, and each variant is scored on the
val split. If (a) alone loses accuracy, training-mode BatchNorm hurts through the statistics
it learns from augmented batches, not through the weights the optimizer changes.

    python benchmarks/bn_collapse.py /work/data/real/flowers17 --img-size 128
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from torch import nn

from ftedge.config import AugmentConfig
from ftedge.data.audit import audit_dataset
from ftedge.data.dataset import ImageSamples
from ftedge.data.transforms import eval_transform, preprocess_samples, train_transform
from ftedge.models import build_model, get_spec, preprocessing_contract
from ftedge.runtime import infer_batches
from ftedge.runtime.pytorch.runner import TorchRunner
from ftedge.stages.tune.probe import init_head_from_probe


def top1(model, x, labels) -> float:
    return float((infer_batches(TorchRunner(model.eval()), x).argmax(1) == labels).mean())


@torch.no_grad()
def reestimate(model: nn.Module, batches) -> nn.Module:
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over every batch
    model.train()
    for x in batches:
        model(x)
    return model.eval()


def variance_ratio(before: nn.Module, after: nn.Module) -> tuple[float, float]:
    """How the re-estimated running variances compare with ImageNet's, over every channel of
    every BatchNorm: below 1, normalising by them amplifies those channels."""
    ratios = [(b.running_var / a.running_var.clamp_min(1e-12)).flatten()
              for a, b in zip(before.modules(), after.modules())
              if isinstance(a, nn.modules.batchnorm._BatchNorm)]
    r = torch.cat(ratios)
    return float(r.median()), float(r.quantile(0.1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1, help="passes over the training set")
    a = ap.parse_args()
    torch.manual_seed(0)
    audit = audit_dataset(a.data)
    contract = preprocessing_contract(get_spec(a.model), a.img_size)
    built = build_model(a.model, len(audit.classes), weights="imagenet")
    init_head_from_probe(built, audit.train, contract, n_classes=len(audit.classes))
    model = built.model.eval()
    xv = preprocess_samples(audit.val, contract)
    yv = np.array([s.label for s in audit.val])
    rows = [("ImageNet statistics (as pretrained)", top1(model, xv, yv), None)]
    for name, tf in (("train augmentation", train_transform(contract, AugmentConfig())),
                     ("eval transform", eval_transform(contract))):
        ds = ImageSamples(audit.train, tf, cache=None, background=(255, 255, 255))
        loader = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True,
                                             drop_last=True)
        batches = [x for _ in range(a.epochs) for x, _ in loader]
        new = reestimate(model, batches)
        rows.append((f"re-estimated on train batches of {a.batch}, {name}", top1(new, xv, yv),
                     variance_ratio(model, new)))
    print(f"{a.model} at {a.img_size} px, probe head, {len(yv)} val images; only BatchNorm "
          "running statistics differ:\n\n| BatchNorm statistics | val top-1 | per-channel "
          "variance / ImageNet's (median over channels; 10th percentile) |\n|---|---|---|")
    for name, acc, ratio in rows:
        print(f"| {name} | {acc:.4f} | "
              + ("-" if ratio is None else f"{ratio[0]:.3f}; {ratio[1]:.3f}") + " |")


if __name__ == "__main__":
    main()
