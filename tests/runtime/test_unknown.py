"""runtime/unknown.py: the options, and the threshold record on known scores."""

import numpy as np
import pytest

from ftedge.config import UNKNOWN_SCORE, UNKNOWN_TPR
from ftedge.errors import ConfigError
from ftedge.runtime.unknown import check_unknown_options, threshold_record


def test_options_default_off_and_bounds():
    assert check_unknown_options(None, None) == (UNKNOWN_SCORE, UNKNOWN_TPR)
    assert check_unknown_options("off", 0.5) == (None, 0.5)
    assert check_unknown_options("msp", 0.9) == ("msp", 0.9)
    with pytest.raises(ConfigError, match="'bogus' is not one of"):
        check_unknown_options("bogus", None)
    for tpr in (0.49, 1.0, float("nan")):
        with pytest.raises(ConfigError, match=r"must be in \[0.5, 1\)"):
            check_unknown_options(None, tpr)


def test_the_threshold_accepts_the_target_share_and_reports_what_it_gives():
    scores = np.array([0.4, 0.1, 0.3, 0.2])
    labels = np.array([0, 1, 0, 1])
    logits = np.eye(2)[[1, 1, 0, 1]]  # the highest-scoring image is the one predicted wrong
    rec = threshold_record(scores, logits, labels, tpr=0.75, measured_on="here")
    assert rec["threshold"] == 0.3 and rec["target_tpr"] == 0.75
    assert rec["val"] == {"n": 4, "tpr": 0.75, "top1_accepted": 1.0, "top1_all": 0.75}
    assert rec["measured_on"] == "here" and "score > threshold" in rec["decision"]
    every = threshold_record(scores, logits, labels, tpr=0.5, measured_on="here")
    assert every["threshold"] == 0.2 and every["val"]["tpr"] == 0.5
