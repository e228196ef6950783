"""training/outputs.py: the two plots of a run folder; the metrics tables, which the run folder
owns (formats/run.py RunFolder.write_metrics)."""

import csv
import json

import numpy as np
from PIL import Image

from ftedge.formats.run import CURVES, METRIC_COLUMNS, METRICS_CSV, METRICS_JSON, RunFolder
from ftedge.training.outputs import plot_confusion, plot_curves

HISTORY = [{"epoch": e, "phase": "head" if e == 1 else "full", "lr": 0.01 / e,
            "train_loss": 1.0 / e, "train_top1": 0.5 + e / 10, "val_loss": 1.1 / e,
            "val_top1": 0.4 + e / 10, "val_top5": 1.0, "images_per_s": 100.0,
            "data_wait_frac": 0.1, "epoch_s": 2.0, "not_a_column": "x"} for e in (1, 2, 3)]


def test_metrics_csv_has_the_columns_and_json_every_key(tmp_path):
    RunFolder(tmp_path).write_metrics(HISTORY)
    rows = list(csv.DictReader((tmp_path / METRICS_CSV).open()))
    assert list(rows[0]) == METRIC_COLUMNS and [r["phase"] for r in rows] == ["head", "full", "full"]
    assert float(rows[2]["train_loss"]) == 1.0 / 3
    assert json.loads((tmp_path / METRICS_JSON).read_text()) == HISTORY


def test_the_plots_are_pngs(tmp_path):
    curves = plot_curves(tmp_path / CURVES, HISTORY)
    assert curves == tmp_path / CURVES and Image.open(curves).format == "PNG"
    cm = np.array([[3, 1], [0, 4]])
    out = plot_confusion(tmp_path / "cm.png", cm, ["a", "b"], title="val")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 100
    assert not list(tmp_path.glob(".*"))  # written atomically: no temporary left
