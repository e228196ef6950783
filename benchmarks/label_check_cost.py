"""What tune's label check (stages/tune/label_check.py) costs beside the training it precedes,
and, with --truth, what it finds.

Runs `ftedge.tune` on DATA for a few epochs (no QAT) with the check on, timing its two steps
(the frozen pretrained features of every train/val image, then the 5-fold logistic-regression
probe + cleanlab) in wall and CPU seconds, and prints each epoch's time beside them. With
--truth (plant_data_issues.py's truth.json), the audit's label_issues against the planted
label errors: precision and recall.

Usage: python benchmarks/label_check_cost.py DATA OUT [--epochs 2] [--truth TRUTH.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import ftedge
from ftedge.stages.tune import label_check


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--truth", type=Path)
    a = ap.parse_args()
    spent: dict[str, tuple[float, float]] = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            result = fn(*args, **kwargs)
            spent[name] = (time.perf_counter() - wall, time.process_time() - cpu)
            return result
        return wrapper

    label_check.split_features = timed("features", label_check.split_features)
    label_check.check_labels_before_training = timed(
        "probe + cleanlab", label_check.check_labels_before_training)
    wall, cpu = time.perf_counter(), time.process_time()
    ftedge.tune(data=str(a.data), out=str(a.out), epochs=a.epochs, head_epochs=1, qat=False,
                seed=0)
    total = (time.perf_counter() - wall, time.process_time() - cpu)
    print(f"\ntune of {a.epochs} epochs, label check included: {total[0]:.1f} s wall, "
          f"{total[1]:.1f} CPU s")
    for name, (w, c) in spent.items():
        print(f"label check, {name}: {w:.1f} s wall, {c:.1f} CPU s")
    for r in json.loads((a.out / "metrics.json").read_text()):
        print(f"epoch {r['epoch']} ({r['phase']}): {r['epoch_s']:.1f} s, "
              f"{r['images_per_s']:.1f} img/s")
    issues = json.loads((a.out / "dataset_audit.json").read_text())["label_issues"]
    print(f"flagged {len(issues)} suspected label errors")
    if a.truth:
        bad = {e["path"] for e in json.loads(a.truth.read_text())["label_errors"]}
        got = [str(Path(i["path"]).relative_to(a.data)) for i in issues]
        caught = sum(g in bad for g in got)
        top = got[:len(bad)]
        print(f"planted {len(bad)}: {caught} of them flagged (recall {caught / len(bad):.3f}, "
              f"precision {caught / max(len(got), 1):.3f}); precision at k = {len(bad)}: "
              f"{sum(g in bad for g in top) / max(len(top), 1):.3f}")


if __name__ == "__main__":
    main()
