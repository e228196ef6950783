"""Calibrated confidence per artifact: the temperature each one ships with and what it buys.

For every RUN, one row for the run's FP32 PyTorch model (its confidence.json, written by
`ftedge tune` or `ftedge calibrate RUN`) and one per artifact folder under RUN/exports/ (the
`calibration` its export fitted on that artifact's own val logits, in its manifest): T, ECE
(15 equal-width top-1 confidence bins) and NLL before and after, all held out (K-fold
cross-fitting on the val split: each image scored with a T fitted without its fold), and top-1.
The numbers are read from what ftedge recorded; --compare re-runs every model on the val split
and also cross-fits vector scaling (a scale and a bias per class) on the same folds, to show
whether a richer calibrator than one temperature measures better on held-out images.

    python benchmarks/calibration_table.py RUN [RUN ...] [--compare] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

COLUMNS = ("model", "T", "ECE before", "ECE after", "NLL before", "NLL after", "top-1", "n",
           "fitted on")


def recorded_rows(run: Path) -> list[dict]:
    """What ftedge recorded: the run's confidence.json and each artifact's manifest."""
    from ftedge.formats.run import CONFIDENCE as RECORD
    from ftedge.formats.artifact import MANIFEST, read_manifest_dict

    rows = []
    if (run / RECORD).is_file():
        rows.append({"model": f"{run.name}: PyTorch FP32 (best.pt)", "folder": str(run),
                     **json.loads((run / RECORD).read_text())})
    else:
        rows.append({"model": f"{run.name}: PyTorch FP32", "folder": str(run),
                     "missing": f"no {RECORD}: ftedge calibrate {run}"})
    for folder in sorted((run / "exports").glob(f"*/{MANIFEST}")):
        manifest = read_manifest_dict(folder.parent)
        name = f"{run.name}: {manifest['target']} {manifest['precision']} ({folder.parent.name})"
        record = manifest.get("calibration")
        rows.append({"model": name, "folder": str(folder.parent), **record} if record else
                    {"model": name, "folder": str(folder.parent),
                     "missing": "no calibration in the manifest (exported before ftedge fitted "
                                "temperatures): export again"})
    return rows


def val_logits(folder: Path, run: Path) -> tuple[np.ndarray, np.ndarray]:
    """The model's logits on its run's val split (the run's best.pt, or the artifact)."""
    from ftedge.formats.run import RunFolder
    from ftedge.stages.inference import _logits, open_model

    loaded = open_model(folder)
    samples = RunFolder(run).samples("val", loaded.classes)
    return _logits(loaded, samples), np.array([s.label for s in samples])


def compare(logits: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> dict:
    """Held-out ECE/NLL of temperature and vector scaling, cross-fitted on the same folds."""
    from ftedge.confidence import cross_fit_folds, fit_temperature, fit_vector_scaling
    from ftedge.metrics import expected_calibration_error, nll

    z = logits.astype(np.float64)
    temp, vector = np.empty_like(z), np.empty_like(z)
    for fit, score in cross_fit_folds(labels, folds, seed):
        temp[score] = z[score] / fit_temperature(z[fit], labels[fit])
        w, b = fit_vector_scaling(z[fit], labels[fit])
        vector[score] = z[score] * w + b
    return {name: {"ece": expected_calibration_error(s, labels), "nll": nll(s, labels),
                   "top1": float((s.argmax(1) == labels).mean())}
            for name, s in (("none", z), ("temperature", temp), ("vector", vector))}


def _fmt(row: dict) -> list[str]:
    if "missing" in row:
        return [row["model"], *["-"] * 7, row["missing"]]
    bound = "*" if row.get("at_bound") else ""
    on = ("its own logits" if row.get("on_artifact", True) else
          "its reference's logits (stand-in)")
    return [row["model"], f"{row['temperature']:.3f}{bound}", f"{row['ece_before']:.4f}",
            f"{row['ece_after']:.4f}", f"{row['nll_before']:.4f}", f"{row['nll_after']:.4f}",
            f"{row['top1']:.4f}", str(row["n"]), on]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, nargs="+", help="run folders (artifacts in RUN/exports/)")
    ap.add_argument("--compare", action="store_true",
                    help="re-run each model on val and cross-fit vector scaling too")
    ap.add_argument("--json", type=Path, help="write every row (and comparison) as JSON here")
    args = ap.parse_args()
    rows = [r for run in args.runs for r in recorded_rows(run)]
    table = [list(COLUMNS)] + [_fmt(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    print("held out: ECE/NLL 'after' pooled over K-fold cross-fitting on val; * T at the end of "
          "the searched range")
    if args.compare:
        print("\nheld-out ECE / NLL / top-1 by calibrator (same folds):")
        for r in rows:
            if "missing" in r:
                continue
            logits, labels = val_logits(Path(r["folder"]), Path(r["fitted_on"].split(": ")[0]
                                                                 .removeprefix("val split of ")))
            r["compare"] = compare(logits, labels, r["folds"], r["seed"])
            print(f"  {r['model']}: " + "; ".join(
                f"{k} {v['ece']:.4f} / {v['nll']:.4f} / {v['top1']:.4f}"
                for k, v in r["compare"].items()))
    if args.json:
        from ftedge.io import atomic_write_json

        atomic_write_json(args.json, [{k: v for k, v in r.items() if k != "bins"} for r in rows])


if __name__ == "__main__":
    main()
