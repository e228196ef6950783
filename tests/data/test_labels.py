"""Suspected label errors: cleanlab on cross-validated probe probabilities (injected features,
or a tiny random-init backbone: no download, seconds)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ftedge.data import audit_dataset
from ftedge.data.labels import (check_labels, cross_val_probabilities, find_label_issues,
                                label_quality_ranking)
from ftedge.errors import DatasetError
from tests.conftest import write_class_folders


def _clusters(n_per=40, classes=4, dim=16, flip=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (classes, dim))
    y_true = np.repeat(np.arange(classes), n_per)
    x = centres[y_true] + rng.normal(0, 1, (len(y_true), dim))
    y = y_true.copy()
    wrong = rng.choice(len(y), flip, replace=False)
    y[wrong] = (y[wrong] + rng.integers(1, classes, flip)) % classes
    return x, y, set(wrong.tolist())


def test_flipped_labels_rank_first_and_are_flagged():
    x, y, wrong = _clusters()
    probs = cross_val_probabilities(x, y)
    assert probs.shape == (160, 4) and np.allclose(probs.sum(1), 1)
    top = label_quality_ranking(y, probs)[:len(wrong)]
    assert len(set(top.tolist()) & wrong) >= 7  # precision at k >= 0.875
    issues = find_label_issues([f"f{i}" for i in range(len(y))], y, probs, classes=list("abcd"))
    flagged = {int(i.path.name[1:]) for i in issues}
    assert len(flagged & wrong) >= 7 and len(flagged - wrong) <= 2
    assert issues[0].quality <= issues[-1].quality  # worst first
    first = issues[0]
    assert first.given != first.suggested and first.to_dict()["label_quality"] < 0.5


def test_clean_labels_flag_almost_nothing():
    x, y, _ = _clusters(flip=0)
    issues = find_label_issues([f"f{i}" for i in range(len(y))], y,
                               cross_val_probabilities(x, y), classes=list("abcd"))
    assert len(issues) <= 1


def test_a_class_with_one_image_is_a_clear_error():
    x = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(DatasetError, match="at least 2 images per class"):
        cross_val_probabilities(x, np.array([0, 0, 0, 0, 1]))


def test_check_labels_with_a_tiny_random_backbone(tmp_path):
    root = write_class_folders(tmp_path / "d", per_class=6)
    audit = audit_dataset(root)
    issues = check_labels(audit, model="efficientnet_lite0", weights="none", img_size=32)
    assert all(i.path.exists() and i.given in audit.classes for i in issues)


def test_data_check_labels_lists_the_suspects(tmp_path, monkeypatch):
    from ftedge.cli import cli
    import ftedge.data.features as features

    root = write_class_folders(tmp_path / "d", per_class=12)
    # red, green, blue files in a fixed order (blue, green, red classes sorted); one red
    # image is moved to blue: its colour feature says red
    (root / "red" / "000.png").rename(root / "blue" / "was_red.png")

    def fake(samples, **_):
        return np.array([[1.0, 0, 0] if "red" in str(s.path) or "was_red" in str(s.path)
                         else [0, 1.0, 0] if "green" in str(s.path) else [0, 0, 1.0]
                         for s in samples]) + np.random.default_rng(0).normal(
                             0, 0.05, (len(samples), 3))

    monkeypatch.setattr(features, "frozen_features", fake)
    res = CliRunner().invoke(cli, ["data", "check", str(root), "--labels", "--json"])
    assert res.exit_code == 0, res.output
    issues = json.loads(res.output)["label_issues"]
    assert issues[0]["path"].endswith("was_red.png")
    assert issues[0]["given"] == "blue" and issues[0]["suggested"] == "red"
    res = CliRunner().invoke(cli, ["data", "check", str(root), "--labels"])
    assert "suspected label error" in res.output and "looks like red" in res.output


def test_finding_label_issues_forks_no_process_pool(monkeypatch):
    """A fork from tune's threaded (PyTorch, DDP) process can deadlock the child on a lock held
    by another thread (a torchrun tune hung in cleanlab's pool): the search stays in-process."""
    import multiprocessing
    import multiprocessing.pool

    def no_pool(*args, **kwargs):
        raise AssertionError("find_label_issues started a process pool")

    x, y, wrong = _clusters()
    probs = cross_val_probabilities(x, y)
    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    monkeypatch.setattr(multiprocessing.pool, "Pool", no_pool)
    monkeypatch.setattr(multiprocessing.context.BaseContext, "Pool", no_pool)
    issues = find_label_issues([f"f{i}" for i in range(len(y))], y, probs, classes=list("abcd"))
    assert len({int(i.path.name[1:]) for i in issues} & wrong) >= 7
