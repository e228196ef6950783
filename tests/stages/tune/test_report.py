"""stages/tune/report.py: the leak figures and the epoch line, without a training run."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ftedge.console import console
from ftedge.stages.tune.report import _leak_effect, log_epoch


def _trainer(leaked_val, n_val=5, leaked_test=()):
    val = [SimpleNamespace(path=Path(f"v{i}.png")) for i in range(n_val)]
    sets = {"val": {Path(p) for p in leaked_val}, "test": {Path(p) for p in leaked_test}}
    return SimpleNamespace(data=SimpleNamespace(val=val, leaked=lambda split: sets[split]))


def test_val_top1_with_and_without_the_leaked_images():
    labels = np.array([0, 1, 0, 1, 0])
    logits = np.eye(2)[[0, 1, 1, 1, 1]]  # right on v0, v1, v3
    out = _leak_effect(_trainer(["v0.png", "v1.png"], leaked_test=["t.png"]), logits, labels)
    assert out == {"leaked_val_images": 2, "val_images": 5, "val_top1": 0.6,
                   "val_top1_without_leaked": 1 / 3, "leaked_test_images": 1}
    assert _leak_effect(_trainer([]), logits, labels) is None
    every = _leak_effect(_trainer([f"v{i}.png" for i in range(5)]), logits, labels)
    assert every["val_top1_without_leaked"] is None  # nothing left to score


def test_the_epoch_line():
    row = {"epoch": 3, "phase": "full", "train_loss": 0.5, "val_loss": 0.25, "val_top1": 0.875,
           "images_per_s": 123.45}
    with console.capture() as cap:
        log_epoch(row, improved=True)
        log_epoch(row, improved=False)
    first, second = cap.get().splitlines()
    assert first == ("epoch   3 [full] loss 0.5000 val_loss 0.2500 val_top1 0.8750 123.5 img/s"
                     "  best")
    assert second.endswith("123.5 img/s")
