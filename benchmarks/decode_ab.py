"""The decode mode's accuracy effect: runs tuned alike but for `--decode`/`--reducing-gap`/
`--draft-margin`, each run's best.pt on its own val split under each decode mode (full; JPEG
draft at the default margin 2 + reducing gap 1; draft at margin 1 + gap 1), paired: the same
model on the same images, so the change it makes is counted image by image, beside each run's
top-1 under its own contract. Make the runs with benchmarks/camera_set.py (its docstring has
the three tune commands).

Usage: python benchmarks/decode_ab.py RUN [RUN ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ftedge.data.transforms import preprocess_samples
from ftedge.formats.contract import describe
from ftedge.formats.run import RunFolder
from ftedge.runtime import infer_batches
from ftedge.runtime.pytorch.runner import load_run

MODES = {"full": {"decode": "full", "draft_margin": None, "reducing_gap": None},
         "draft + gap 1": {"decode": "draft", "draft_margin": 2.0, "reducing_gap": 1.0},
         "draft m1 + gap 1": {"decode": "draft", "draft_margin": 1.0, "reducing_gap": 1.0}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    a = ap.parse_args()
    for run in a.runs:
        with load_run(run) as loaded:
            samples = RunFolder(run).samples("val", loaded.classes)
            labels = np.array([s.label for s in samples])
            print(f"{run} ({describe(loaded.contract)}), {len(labels)} val images, FP32:")
            preds = {}
            for mode, change in MODES.items():
                x = preprocess_samples(samples, {**loaded.contract, **change})
                preds[mode] = infer_batches(loaded.runner, x).argmax(1)
                own = all(loaded.contract.get(k) == v for k, v in change.items())
                right = int(np.sum(preds[mode] == labels))
                print(f"  decoded {mode:16} ({'its own contract' if own else 'another mode'}):"
                      f" top-1 {right / len(labels):.4f} ({right}/{len(labels)})")
            for mode in list(MODES)[1:]:
                changed = int(np.sum(preds["full"] != preds[mode]))
                print(f"  predictions that differ between full and {mode}: {changed} of "
                      f"{len(labels)}")


if __name__ == "__main__":
    main()
