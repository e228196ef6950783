"""The QAT stage's checkpoint candidates: which epochs are kept for scoring in ONNX Runtime."""

from types import SimpleNamespace

import pytest
from torch import nn

from ftedge.formats.run import QAT_CANDIDATES, RunFolder
from ftedge.stages.tune.qat_stage import candidate_keeper
from ftedge.training.checkpoint import load_checkpoint, save_best

META = {"model_name": "x", "classes": ["a", "b"], "num_classes": 2, "preprocessing": {
    "input_size": [3, 8, 8], "resize": 8, "interpolation": "bilinear", "mean": [0, 0, 0],
    "std": [1, 1, 1]}}


def _trainer(tmp_path, k):
    return SimpleNamespace(run=tmp_path, model=nn.Linear(2, 2), qat_candidates=[],
                           cfg=SimpleNamespace(qat=SimpleNamespace(candidates=k)))


def keep_candidate(t, row):
    """What the trainer does after a QAT epoch."""
    save = lambda path: save_best(path, t.model, {**META, **row})  # noqa: E731
    candidate_keeper(RunFolder(t.run), t.cfg.qat, t.qat_candidates).offer(row, save)


@pytest.mark.parametrize("k", [2, 3])
def test_the_best_epochs_are_kept_later_first_on_ties_and_the_rest_deleted(tmp_path, k):
    t = _trainer(tmp_path, k)
    for epoch, top1 in [(5, 0.90), (6, 0.95), (7, 0.93), (8, 0.95), (9, 0.80), (10, 0.93)]:
        t.model.bias.data.fill_(epoch)
        keep_candidate(t, {"epoch": epoch, "val_top1": top1})
    expected = [8, 6, 10][:k]  # 0.95 twice (the later first), then the later of the 0.93s
    assert [c["epoch"] for c in t.qat_candidates] == expected
    files = sorted(p.name for p in (tmp_path / QAT_CANDIDATES).iterdir())
    assert files == sorted(f"epoch_{e:03d}.pt" for e in expected)
    for c in t.qat_candidates:  # each file holds that epoch's weights
        state = load_checkpoint(tmp_path / QAT_CANDIDATES / c["file"])["model_state"]
        assert float(state["bias"][0]) == c["epoch"]


def test_one_candidate_keeps_no_files(tmp_path):
    t = _trainer(tmp_path, 1)
    keep_candidate(t, {"epoch": 3, "val_top1": 0.9})
    assert t.qat_candidates == [] and not (tmp_path / QAT_CANDIDATES).exists()


def test_cleanup_removes_only_the_candidates_ftedge_wrote(tmp_path):
    from ftedge.stages.tune.qat_stage import _remove_candidates

    folder = tmp_path / QAT_CANDIDATES
    folder.mkdir()
    for name in ("epoch_004.pt", "epoch_007.pt"):  # listed, and left by an interrupted epoch
        (folder / name).write_bytes(b"x")
    (folder / "notes.txt").write_text("mine")
    _remove_candidates(folder)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    (folder / "notes.txt").unlink()
    _remove_candidates(folder)
    assert not folder.exists()
