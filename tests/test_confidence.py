"""ECE/NLL on hand-computed cases, the temperature fit, cross-fitting's folds, the record."""

import json
import math

import numpy as np
import pytest

from ftedge import confidence
from ftedge.confidence import (CalibrationError, calibrated_probabilities, calibration_record,
                               check_record, cross_fit_folds, fit_temperature,
                               held_out_temperatures, temperature_of, write_reliability_diagram)
from ftedge.metrics import expected_calibration_error, nll, reliability_bins, softmax


def test_nll_hand_computed():
    # two classes, logits (0, 0): p = 0.5 each -> NLL log 2; logits (ln 3, 0): p = 0.75
    logits = np.array([[0.0, 0.0], [math.log(3), 0.0]])
    assert nll(logits, np.array([0, 0])) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)
    assert nll(logits, np.array([1, 1])) == pytest.approx((math.log(2) + math.log(4)) / 2)
    # T = 2 halves the logits: p(class 0) of row 2 = sqrt(3) / (sqrt(3) + 1)
    assert nll(logits[1:], np.array([0]), temperature=2.0) == pytest.approx(
        -math.log(math.sqrt(3) / (math.sqrt(3) + 1)))


def test_ece_hand_computed():
    # confidences 0.75 (right), 0.75 (wrong), 0.5 (right): bins (0.7, 0.733]? 0.75 sits in bin
    # 11 = (0.733, 0.8], 0.5 in bin 7 = (0.467, 0.5]
    # ECE = 2/3 * |0.5 - 0.75| + 1/3 * |1 - 0.5| = 1/6 + 1/6 = 1/3
    logits = np.array([[math.log(3), 0.0], [math.log(3), 0.0], [0.0, 0.0]])
    labels = np.array([0, 1, 0])
    assert expected_calibration_error(logits, labels) == pytest.approx(1 / 3)
    bins = reliability_bins(logits, labels)
    assert len(bins) == 15 and sum(b["n"] for b in bins) == 3
    assert bins[11] == {"lo": 11 / 15, "hi": 12 / 15, "n": 2, "confidence": pytest.approx(0.75),
                        "accuracy": 0.5}
    assert bins[7]["n"] == 1 and bins[7]["accuracy"] == 1.0
    # a perfectly calibrated toy: confidence 1.0 everywhere, all right -> 0; all wrong -> 1
    sure = np.array([[50.0, 0.0], [50.0, 0.0]])
    assert expected_calibration_error(sure, np.array([0, 0])) == pytest.approx(0, abs=1e-12)
    assert expected_calibration_error(sure, np.array([1, 1])) == pytest.approx(1)


def test_bin_edges_are_right_closed():
    # confidence exactly 0.6 = 9/15 belongs to bin 8, (8/15, 9/15]
    logits = np.array([[math.log(0.6), math.log(0.4)]])
    assert reliability_bins(logits, np.array([0]))[8]["n"] == 1


def _synthetic(t_true, n=4000, k=10, seed=0):
    """Labels drawn from softmax(z / t_true): t_true is the calibrating temperature of z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (n, k))
    p = softmax(z, t_true)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return z, labels


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.5])
def test_fit_recovers_a_known_temperature(t_true):
    z, labels = _synthetic(t_true)
    assert fit_temperature(z, labels) == pytest.approx(t_true, rel=0.08)


def test_fit_lowers_nll_and_ece_on_held_out_images():
    z, labels = _synthetic(2.5)
    record = calibration_record(z, labels, fitted_on="synthetic")
    assert record["temperature"] == pytest.approx(2.5, rel=0.08)
    assert record["nll_after"] < record["nll_before"] and record["ece_after"] < 0.03
    assert record["ece_before"] > 0.1 and not record["at_bound"]
    assert len(record["fold_temperatures"]) == 5 and record["bins"]["after"][0]["lo"] == 0
    json.dumps(record, allow_nan=False)  # machine-readable as it stands


def test_cross_fitting_never_scores_an_image_its_fold_was_fitted_on():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 7)
    ids = np.arange(len(labels), dtype=float)
    seen = []

    def spy(logits, fit_labels):  # column 0 of the logits carries the image id
        seen.append(set(logits[:, 0].astype(int)))
        return 1.0 + len(seen)  # a distinct T per fold

    logits = np.column_stack([ids, rng.normal(size=(len(labels), 2))])
    temps = held_out_temperatures(logits, labels, folds=5, seed=0, fit=spy)
    folds = cross_fit_folds(labels, 5, 0)
    assert len(seen) == 5
    scored = np.concatenate([s for _, s in folds])
    assert sorted(scored) == list(range(len(labels)))  # each image scored exactly once
    for (fit_idx, score_idx), fitted, t in zip(folds, seen, range(2, 7)):
        assert fitted == set(fit_idx) and not fitted & set(score_idx)
        assert (temps[score_idx] == t).all()


def test_cross_fitting_with_a_class_rarer_than_the_folds_falls_back_to_plain_folds():
    labels = np.array([0] * 10 + [1] * 2)
    folds = cross_fit_folds(labels, 5, 0)
    assert len(folds) == 5 and sorted(np.concatenate([s for _, s in folds])) == list(range(12))


def test_bad_logits_are_refused():
    with pytest.raises(CalibrationError, match="NaN"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(CalibrationError, match="shape"):
        fit_temperature(np.zeros((3, 2)), np.array([0]))
    with pytest.raises(CalibrationError, match="cannot be cross-fitted"):
        calibration_record(np.zeros((1, 2)), np.array([0]), fitted_on="x")


def test_separable_images_put_t_at_the_bound_and_say_so():
    z = np.array([[3.0, 0.0], [0.0, 3.0]] * 10)
    record = calibration_record(z, np.array([0, 1] * 10), fitted_on="x")
    assert record["at_bound"] and "cannot pin T down" in confidence.summary_line(record)


def test_record_check_and_defaults():
    assert temperature_of(None) == (1.0, confidence.NOT_CALIBRATED)
    good = {"method": "temperature", "temperature": 0.8}
    assert temperature_of(check_record(good, "m")) == (0.8, None)
    for bad in ({"method": "temperature", "temperature": 0}, {"method": "x", "temperature": 1},
                {"method": "temperature", "temperature": float("inf")},
                {"method": "temperature", "temperature": True}, [1]):
        with pytest.raises(CalibrationError, match="damaged"):
            check_record(bad, "m")
    z = np.array([[2.0, 1.0, 0.0]])
    np.testing.assert_allclose(calibrated_probabilities(z, good), softmax(z / 0.8))
    np.testing.assert_allclose(calibrated_probabilities(z, None), softmax(z))


def test_reliability_diagram_is_a_png(tmp_path):
    z, labels = _synthetic(2.0, n=300)
    out = write_reliability_diagram(calibration_record(z, labels, fitted_on="x"),
                                    tmp_path / "r.png", title="toy")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]  # no temp file left
