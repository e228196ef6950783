"""Fine-tuning needs less data: ImageNet-pretrained vs from-scratch EfficientNet-Lite0 with
N training images per class of the digits, evaluated on all the other digits.

Both runs get the same data, resolution, epochs and early stopping; from scratch gets what a
fair from-scratch run needs (no frozen-backbone warm-up, the full LR on the backbone).

Usage: python benchmarks/few_shot.py [--per-class 10] [--epochs 25] [--out runs/few-shot]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ftedge
from ftedge.config import build_tune_config, nest_overrides
from ftedge.pipeline import demo_config_path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default="runs/few-shot")
    a = ap.parse_args()
    out = Path(a.out)
    data = out / f"digits-{a.per_class}-per-class"
    if not data.exists():
        ftedge.write_demo_data(data, train_per_class=a.per_class)
    common = dict(data=str(data), epochs=a.epochs, batch_size=a.batch_size, patience=8)
    runs = {
        "imagenet": {"model": {"weights": "imagenet"}},
        "scratch": {"model": {"weights": "none"},
                    "train": {"head_epochs": 0, "backbone_lr_mult": 1.0, "lr": 0.003}},
    }
    results = {}
    for name, extra in runs.items():
        overrides = nest_overrides(dict(common, out=str(out / name)))
        for section, values in extra.items():
            overrides.setdefault(section, {}).update(values)
        cfg = build_tune_config(str(demo_config_path()), overrides)
        results[name] = ftedge.tune(cfg)
    n_val = ftedge.evaluate(results["imagenet"].run_dir)["n"]
    print(f"\nEfficientNet-Lite0, digits, {a.per_class} train images per class, "
          f"{n_val} val images")
    for name, r in results.items():
        print(f"  {name:9} best val top-1 {r.best_top1:.4f} (epoch {r.best_epoch}, "
              f"{r.seconds:.0f} s)")
    print(f"  pretrained - scratch: {100 * (results['imagenet'].best_top1 - results['scratch'].best_top1):+.1f} points")


if __name__ == "__main__":
    main()
