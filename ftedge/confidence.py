"""Calibrated confidence: fit a temperature on one model's own logits, measure it on held-out
images, and describe it as the manifest and the reports record it.

A temperature T turns logits z into probabilities softmax(z / T); it never changes the top-1
class. It is fitted per model *as shipped* (FP32 PyTorch, and each artifact on its runtime),
because an INT8 or FP16 artifact's logits are not the FP32 model's: one threshold on a
probability then means the same on every artifact. ECE and NLL "after" are measured by
cross-fitting: the val split is cut into K folds, T is fitted on K-1 and scores the remaining
one, and the held-out scores of all folds are pooled; the T that ships is fitted on all of val.
Libraries do not print: stages print `summary_line`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from ftedge.config import CALIBRATION_FOLDS, CALIBRATION_SEED, TEMPERATURE_RANGE
from ftedge.errors import FtedgeError
from ftedge.metrics import (ECE_BINS, expected_calibration_error, nll, reliability_bins,
                            softmax)

METHOD = "temperature"
NOT_CALIBRATED = "not calibrated (no calibration recorded): probabilities use T = 1"


class CalibrationError(FtedgeError):
    """Confidence calibration cannot be fitted or read."""


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
    if logits.ndim != 2 or len(logits) != len(labels) or not len(labels):
        raise CalibrationError(f"cannot fit a temperature on logits of shape {logits.shape} "
                               f"and {len(labels)} labels", "pass N x classes logits and N labels")
    if not np.isfinite(logits).all():
        raise CalibrationError("the logits hold NaN or infinite values",
                               "the model's outputs are broken: check its parity report")
    return logits, labels


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in TEMPERATURE_RANGE minimizing NLL(softmax(logits / T)).

    Bounded Brent on log T (scipy.optimize.minimize_scalar): NLL is convex in 1/T, hence
    unimodal in log T, so a bounded 1-D search finds its minimum.
    """
    from scipy.optimize import minimize_scalar

    logits, labels = _check(logits, labels)
    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)
    res = minimize_scalar(lambda u: nll(logits, labels, math.exp(u)), bounds=(lo, hi),
                          method="bounded", options={"xatol": 1e-5})
    return float(math.exp(res.x))


def fit_vector_scaling(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class scale w and bias b minimizing NLL(softmax(w * z + b)) (L-BFGS, exact
    gradient, a small L2 pull towards w = 1, b = 0). Measured against temperature scaling in
    benchmarks/calibration_table.py; not shipped (it can change the top-1 class)."""
    from scipy.optimize import minimize

    z, labels = _check(logits, labels)
    n, k = z.shape
    onehot = np.eye(k)[labels]
    ridge = 1e-3

    def loss(theta):
        w, b = theta[:k], theta[k:]
        s = z * w + b
        p = softmax(s)
        value = nll(s, labels) + ridge * (((w - 1) ** 2).sum() + (b ** 2).sum())
        g = (p - onehot) / n
        return value, np.concatenate([(g * z).sum(0) + 2 * ridge * (w - 1),
                                      g.sum(0) + 2 * ridge * b])

    res = minimize(loss, np.concatenate([np.ones(k), np.zeros(k)]), jac=True, method="L-BFGS-B")
    return res.x[:k], res.x[k:]


def cross_fit_folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray,
                                                                             np.ndarray]]:
    """(fit indices, scored indices) per fold; every image is scored by exactly one fold, never
    one it was fitted on. Stratified when every class has at least `folds` images."""
    from sklearn.model_selection import KFold, StratifiedKFold

    labels = np.asarray(labels)
    if len(labels) < 2:
        raise CalibrationError(f"{len(labels)} image(s) cannot be cross-fitted",
                               "calibrate on a val split with more images")
    folds = min(folds, len(labels))
    counts = np.bincount(labels)
    splitter = (StratifiedKFold(folds, shuffle=True, random_state=seed)
                if counts[counts > 0].min() >= folds else KFold(folds, shuffle=True,
                                                                random_state=seed))
    return [(fit, score) for fit, score in splitter.split(np.zeros(len(labels)), labels)]


def at_bound(logits: np.ndarray, labels: np.ndarray, temperature: float) -> bool:
    """True when an end of TEMPERATURE_RANGE fits as well as `temperature` (e.g. every image
    right: NLL keeps falling as T -> 0), i.e. the images do not pin T down."""
    best = nll(logits, labels, temperature)
    return any(nll(logits, labels, t) <= best + 1e-6 for t in TEMPERATURE_RANGE)


def held_out_temperatures(logits: np.ndarray, labels: np.ndarray, *, folds: int | None = None,
                          seed: int | None = None,
                          fit: Callable[[np.ndarray, np.ndarray], float] = fit_temperature
                          ) -> np.ndarray:
    """Per image, the temperature fitted on the other folds (cross-fitting)."""
    logits, labels = _check(logits, labels)
    folds = CALIBRATION_FOLDS if folds is None else folds
    seed = CALIBRATION_SEED if seed is None else seed
    per_image = np.full(len(labels), np.nan)
    for fit_idx, score_idx in cross_fit_folds(labels, folds, seed):
        per_image[score_idx] = fit(logits[fit_idx], labels[fit_idx])
    return per_image


def _scores(logits, labels, temps) -> dict:
    """ECE, NLL and reliability bins of logits scaled per image by `temps`."""
    scaled = logits / np.asarray(temps, np.float64).reshape(-1, 1)
    return {"ece": expected_calibration_error(scaled, labels), "nll": nll(scaled, labels),
            "bins": reliability_bins(scaled, labels)}


def calibration_record(logits: np.ndarray, labels: np.ndarray, *, fitted_on: str,
                       folds: int | None = None, seed: int | None = None) -> dict:
    """What the manifest / a run's calibration.json records: the temperature fitted on all the
    images, and ECE (15 bins, top-1) and NLL before and after, measured by cross-fitting."""
    logits, labels = _check(logits, labels)
    folds = min(CALIBRATION_FOLDS if folds is None else folds, len(labels))
    seed = CALIBRATION_SEED if seed is None else seed
    temperature = fit_temperature(logits, labels)
    held = held_out_temperatures(logits, labels, folds=folds, seed=seed)
    before, after = _scores(logits, labels, np.ones(len(labels))), _scores(logits, labels, held)
    return {"method": METHOD, "temperature": round(temperature, 6), "fitted_on": fitted_on,
            "n": int(len(labels)), "top1": float((logits.argmax(1) == labels).mean()),
            "heldout": f"{folds}-fold cross-fitting on the same images (seed {seed}): each "
                       "image scored with a T fitted without its fold",
            "folds": folds, "seed": seed,
            "fold_temperatures": sorted({round(float(t), 6) for t in held}),
            "at_bound": at_bound(logits, labels, temperature),
            "ece_bins": ECE_BINS,
            "ece_before": before["ece"], "ece_after": after["ece"],
            "nll_before": before["nll"], "nll_after": after["nll"],
            "bins": {"before": before["bins"], "after": after["bins"]}}


def scored_with(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """ECE and NLL of `logits` without and with a given T (e.g. the shipped one on a test set)."""
    logits, labels = _check(logits, labels)
    return {"temperature": float(temperature), "n": int(len(labels)),
            "ece_before": expected_calibration_error(logits, labels),
            "ece_after": expected_calibration_error(logits, labels, temperature=temperature),
            "nll_before": nll(logits, labels), "nll_after": nll(logits, labels, temperature),
            "bins": {"before": reliability_bins(logits, labels),
                     "after": reliability_bins(logits, labels, temperature=temperature)}}


def check_record(record, where: str) -> dict:
    """A recorded calibration, its method and temperature checked; raises CalibrationError."""
    t = record.get("temperature") if isinstance(record, dict) else None
    if (not isinstance(record, dict) or record.get("method") != METHOD
            or isinstance(t, bool) or not isinstance(t, (int, float))
            or not math.isfinite(t) or t <= 0):
        raise CalibrationError(f"{where}: the calibration record is damaged (method "
                               f"{METHOD!r} with a finite temperature > 0 expected)",
                               "fit it again (ftedge calibrate RUN, or export again)")
    return record


def temperature_of(record) -> tuple[float, str | None]:
    """(T, None) from a checked record, or (1.0, why) when there is none."""
    if record is None:
        return 1.0, NOT_CALIBRATED
    return float(record["temperature"]), None


def calibrated_probabilities(logits: np.ndarray, record) -> np.ndarray:
    """softmax(logits / T) with the record's T (T = 1 without one)."""
    return softmax(logits, temperature_of(record)[0])


def evaluation_report(logits: np.ndarray, labels: np.ndarray, record: dict | None,
                      *, in_sample: bool) -> dict:
    """ECE/NLL on evaluated images without and with the model's recorded T (T = 1 without a
    record); `in_sample`: these are the images T was fitted on, so the record's cross-fitted
    numbers are added as the held-out ones."""
    temperature, _ = temperature_of(record)
    rep = {**scored_with(logits, labels, temperature), "calibrated": record is not None,
           "fitted_on": record.get("fitted_on") if record else None,
           "in_sample": bool(in_sample and record is not None)}
    if rep["in_sample"]:
        rep["note"] = ("these are the images T was fitted on: 'after' is in-sample; the record's "
                       "cross-fitted ece_after/nll_after are the held-out numbers")
        rep["heldout"] = {k: record[k] for k in ("ece_before", "ece_after", "nll_before",
                                                 "nll_after", "heldout")}
    return rep


def summary_line(record: dict) -> str:
    """One line for a stage to print."""
    bound = " (at the end of the searched range: the images cannot pin T down)" \
        if record.get("at_bound") else ""
    return (f"calibration: T = {record['temperature']:.3f}{bound}; held-out ECE "
            f"{record['ece_before']:.4f} -> {record['ece_after']:.4f}, NLL "
            f"{record['nll_before']:.4f} -> {record['nll_after']:.4f} ({record['n']} images, "
            f"{record['folds']}-fold cross-fitting)")


def write_reliability_diagram(record: dict, path: str | Path, title: str = "") -> Path:
    """The reliability diagram (accuracy against confidence per bin, before and after) as a PNG,
    written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ftedge.io import atomic_save_figure

    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharey=True)
    for ax, key, name in ((axes[0], "before", "T = 1"),
                          (axes[1], "after", f"T = {record['temperature']:.3f}")):
        bins = record["bins"][key]
        full = [b for b in bins if b["n"]]
        width = bins[0]["hi"] - bins[0]["lo"]
        ax.bar([b["lo"] for b in full], [b["accuracy"] for b in full], width=width,
               align="edge", edgecolor="black", color="tab:blue", label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ax.scatter([b["confidence"] for b in full], [b["accuracy"] for b in full], s=10,
                   color="tab:red", zorder=3, label="mean confidence")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-1 confidence",
               title=f"{name}: ECE {record[f'ece_{key}']:.4f}")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    try:
        return atomic_save_figure(fig, path)
    finally:
        plt.close(fig)
