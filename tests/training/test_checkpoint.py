"""The one top-k checkpoint keeper (training/checkpoint.py), used for best.pt / qat_best.pt
(k = 1, a fixed name) and the QAT candidates (k files)."""

from ftedge.training.checkpoint import CheckpointKeeper, rank_later


def _offer(keeper, epoch, top1):
    return keeper.offer({"epoch": epoch, "val_top1": top1},
                        lambda path: path.write_text(str(epoch)))


def test_one_under_a_fixed_name_keeps_the_first_of_equal_epochs(tmp_path):
    keeper = CheckpointKeeper(1, lambda epoch: tmp_path / "best")
    assert [_offer(keeper, e, t) for e, t in [(1, 0.5), (2, 0.7), (3, 0.7), (4, 0.6)]] == [
        True, True, False, False]
    assert (tmp_path / "best").read_text() == "2"
    assert keeper.kept == [{"epoch": 2, "val_top1": 0.7, "file": "best"}]


def test_k_files_keep_the_later_of_equal_epochs_and_delete_the_rest(tmp_path):
    kept: list[dict] = []
    keeper = CheckpointKeeper(2, lambda epoch: tmp_path / "c" / f"{epoch}.pt", rank=rank_later,
                              kept=kept)
    for e, t in [(1, 0.5), (2, 0.9), (3, 0.6), (4, 0.9), (5, 0.1)]:
        _offer(keeper, e, t)
    assert [c["epoch"] for c in kept] == [4, 2]  # the caller's list, updated in place
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["2.pt", "4.pt"]


def test_a_resumed_keeper_goes_on_from_what_it_kept(tmp_path):
    keeper = CheckpointKeeper(1, lambda epoch: tmp_path / "best",
                              kept=[{"epoch": 3, "val_top1": 0.8, "file": "best"}])
    assert not _offer(keeper, 4, 0.8) and not (tmp_path / "best").exists()
    assert _offer(keeper, 5, 0.81) and keeper.kept[0]["epoch"] == 5


def test_zero_keeps_nothing(tmp_path):
    keeper = CheckpointKeeper(0, lambda epoch: tmp_path / "x" / "e.pt")
    assert not _offer(keeper, 1, 1.0) and not (tmp_path / "x").exists()
