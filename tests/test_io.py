import hashlib
import os

import pytest
import torch

from ftedge.errors import RunError
from ftedge.io import atomic_path, atomic_write_json, read_json, safe_torch_load, sha256_file


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_json(p, {"x": 1})
    assert read_json(p) == {"x": 1}
    assert sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert sha256_file(p) != hashlib.sha256(b"").hexdigest()


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_safe_load_refuses_pickled_code(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, p)
    with pytest.raises(RunError, match="cannot load"):
        safe_torch_load(p)


def test_safe_load_missing_file(tmp_path):
    with pytest.raises(RunError, match="not found"):
        safe_torch_load(tmp_path / "nope.pt")
