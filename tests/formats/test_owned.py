"""Staged folders: one writer at a time, and nothing left behind whichever way they fail."""

from __future__ import annotations

import os

import pytest

from ftedge.errors import RunError
from ftedge.formats.owned import staged_folder
from tests.test_io import _holder


def test_a_second_writer_is_refused_and_leaves_no_staging_folder(tmp_path):
    out = tmp_path / "art"
    p = _holder(out)
    try:
        with pytest.raises(RunError, match=f"pid {p.pid}"):
            with staged_folder(out, "artifact") as tmp:
                (tmp / "model.onnx").write_bytes(b"x")
    finally:
        p.kill()
        p.wait()
    assert sorted(os.listdir(tmp_path)) == [".art.ftedge-lock"]  # the killed holder's file
    with staged_folder(out, "artifact") as tmp:
        (tmp / "model.onnx").write_bytes(b"x")
    assert sorted(os.listdir(tmp_path)) == ["art"]


def test_a_folder_that_appears_meanwhile_is_kept_and_the_staging_folder_removed(tmp_path):
    out = tmp_path / "art"
    with pytest.raises(RunError, match="already exists"):
        with staged_folder(out, "artifact") as tmp:
            (tmp / "model.onnx").write_bytes(b"x")
            out.mkdir()
            (out / "mine.txt").write_text("precious")  # written by something else meanwhile
    assert sorted(os.listdir(tmp_path)) == ["art"] and os.listdir(out) == ["mine.txt"]


def test_force_is_suggested_only_where_it_would_be_accepted(tmp_path):
    from ftedge.formats.owned import check_replaceable

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(RunError) as e:
        check_replaceable(mine, "artifact", force=False)
    assert "--force would not replace it" in str(e.value) and "pass --force" not in str(e.value)
    with staged_folder(tmp_path / "ours", "artifact") as tmp:
        (tmp / "model.onnx").write_bytes(b"x")
    with pytest.raises(RunError, match="pass --force"):
        check_replaceable(tmp_path / "ours", "artifact", force=False)
    check_replaceable(tmp_path / "ours", "artifact", force=True)  # as the hint says


def test_staging_a_killed_writer_left_is_removed_by_the_next_writer(tmp_path):
    """kill -9 (or a power loss) mid-export leaves the hidden staging folder: the next writer
    of the same folder, holding its lock, removes it; another folder's staging, the swapped-out
    previous folder and the user's own hidden folders stay."""
    out = tmp_path / "art"
    stale = tmp_path / ".art.k3_x9q0z.tmp"
    keep = [tmp_path / ".other.k3_x9q0z.tmp", tmp_path / ".art.old-123", tmp_path / ".art.mine"]
    for d in [stale, *keep]:
        d.mkdir()
        (d / "model.onnx").write_bytes(b"half")
    with staged_folder(out, "artifact") as tmp:
        (tmp / "model.onnx").write_bytes(b"x")
    assert not stale.exists() and all(d.is_dir() for d in keep)
    assert (out / "model.onnx").read_bytes() == b"x"
