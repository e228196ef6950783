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


# -- one writer per folder ---------------------------------------------------------------

HOLD = """
import sys, time
from ftedge.io import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(folder):
    """Another process holding `folder`'s lock (stopped by the test)."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                         text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_writer_is_refused_naming_the_folder_and_the_pid(tmp_path):
    from ftedge.io import folder_lock, lock_path

    folder = tmp_path / "run"
    p = _holder(folder)
    try:
        with pytest.raises(RunError) as e:
            with folder_lock(folder):
                pass
        assert str(folder) in e.value.message and f"pid {p.pid}" in e.value.message
        assert "--out" in e.value.hint
    finally:
        p.kill()
        p.wait()
    # kill -9 left the lock file, but the kernel released the lock with the process
    assert lock_path(folder).exists()
    with folder_lock(folder):
        with folder_lock(tmp_path / "." / "run"):  # re-entrant within one process
            pass
    assert not lock_path(folder).exists()  # removed on release: nothing left beside the folder
    assert os.listdir(tmp_path) == []


def test_new_folder_never_collides(tmp_path):
    from ftedge.io import new_folder

    made = [new_folder(tmp_path / "runs" / "m-20260101-000000") for _ in range(3)]
    assert [p.name for p in made] == ["m-20260101-000000", "m-20260101-000000-2",
                                      "m-20260101-000000-3"]
    assert all(p.is_dir() for p in made)


@pytest.mark.parametrize("code,want", [(13, "permission denied"), (30, "read-only"),
                                       (36, "too long"), (28, "no space")])
def test_os_errors_read_as_what_is_wrong_and_how_to_fix_it(code, want):
    from ftedge.io import os_error_message

    e = os_error_message(OSError(code, os.strerror(code), "/some/where"))
    assert e.message.startswith("cannot use /some/where: ") and want in e.message and e.hint


def test_read_file_bytes_refuses_fifos_devices_and_folders_without_blocking(tmp_path):
    from ftedge.io import NotRegularFileError, read_file_bytes

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes it: a plain open() + read() would block forever
    with pytest.raises(NotRegularFileError, match="not a regular file"):
        read_file_bytes(fifo)
    with pytest.raises(NotRegularFileError):
        read_file_bytes("/dev/zero")  # a read that never ends
    with pytest.raises(IsADirectoryError):
        read_file_bytes(tmp_path)
    (tmp_path / "a").write_bytes(b"x" * 10)
    assert read_file_bytes(tmp_path / "a") == b"x" * 10
    assert read_file_bytes(tmp_path / "a", limit=3) == b"xxxx"  # limit + 1: "too large" shows


def test_read_json_names_fifos_loops_and_nesting_bombs(tmp_path):
    from ftedge.errors import FtedgeError

    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(FtedgeError, match="not a regular file") as e:
        read_json(tmp_path / "fifo.json")
    assert e.value.hint
    os.symlink("b.json", tmp_path / "a.json")
    os.symlink("a.json", tmp_path / "b.json")
    with pytest.raises(FtedgeError, match="symbolic links"):
        read_json(tmp_path / "a.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RunError, match="nested too deep"):
        read_json(tmp_path / "deep.json")
