"""Atomic writes and safe loads: a failed step never leaves a half-written file."""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import hashlib
import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

from ftedge.errors import FtedgeError, RunError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(e: OSError, path: str | os.PathLike) -> BaseException:
    """A clear error for a full disk (or quota) while writing `path`; other errors as they are."""
    if getattr(e, "errno", None) in _NO_SPACE:
        return FtedgeError(f"no space left on the device while writing {path} (nothing "
                           "half-written was kept)", "free some space, or write to another disk "
                           "with --out, and run the command again")
    return e


def os_error_message(e: OSError, path: str | os.PathLike | None = None) -> FtedgeError:
    """An OSError the operating system raised for a path, as what is wrong and how to fix it."""
    path = path if path is not None else (e.filename or "a file")
    if isinstance(e, NotRegularFileError):
        return FtedgeError(f"cannot use {path}: {e.strerror}", "give a regular file")
    code = getattr(e, "errno", None)
    what = {
        errno.EACCES: ("permission denied", "give an output folder you may write to (one "
                       "under your home), or change the folder's permissions"),
        errno.EPERM: ("operation not permitted", "give an output folder you may write to (one "
                      "under your home)"),
        errno.EROFS: ("the file system is read-only", "give an output folder on a writable "
                      "disk (one under your home or /tmp), or run from a writable folder"),
        errno.ENAMETOOLONG: ("a file or folder name is too long (most file systems allow 255 "
                             "bytes per name)", "use a shorter name"),
        errno.ENOSPC: ("no space left on the device", "free some space, or give an output "
                       "folder on another disk"),
        errno.EDQUOT: ("disk quota exceeded", "free some space, or give an output folder on "
                       "another disk"),
        errno.ENOTDIR: ("a part of the path is a file, not a folder", "give a path whose "
                        "parents are folders"),
        errno.EISDIR: ("it is a folder, not a file", "give a file"),
        errno.ENOENT: ("no such file or folder", "check the path"),
        errno.ELOOP: ("too many symbolic links", "give a path without a link loop"),
    }.get(code, (e.strerror or type(e).__name__, "check the path and try again"))
    return FtedgeError(f"cannot use {path}: {what[0]}", what[1])


class NotRegularFileError(OSError):
    """A FIFO, device or socket where a file is read: reading one can block forever (a FIFO
    nobody writes) or never end (/dev/zero)."""


def read_file_bytes(path: str | os.PathLike, limit: int | None = None) -> bytes:
    """The bytes of a regular file (at most `limit` + 1 of them when `limit` is given).

    Every file a user names is read through here, so a FIFO, a device or a socket is refused
    (NotRegularFileError) instead of hanging; IsADirectoryError for a folder; other OSErrors
    as open() raises them (missing, permission, link loop, name too long).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:  # closes fd, also when a check below raises
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(errno.EINVAL, "not a regular file (a FIFO, device or "
                                      "socket)", str(path))
        return f.read() if limit is None else f.read(limit + 1)


def make_parent(path: Path) -> None:
    """Create `path`'s folder, with a clear error when something on the way is a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunError(f"cannot write {path}: a part of {path.parent} is a file, not a folder",
                       "pick an output path whose parents are folders") from None
    except OSError as e:  # read-only, permission, name too long, disk full
        raise os_error_message(e, path.parent) from e


def new_folder(base: Path) -> Path:
    """Create and return `base`, or `base-2`, `base-3`, ... when it exists: mkdir is atomic,
    so two commands started in the same second never get the same folder."""
    make_parent(base)
    for n in range(1, 10_000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise os_error_message(e, path) from e
    raise RunError(f"{base} and 9,999 numbered variants exist", "give a folder with --out")


LOCK_SUFFIX = ".ftedge-lock"
_held: dict[str, list] = {}  # lock file -> [fd, depth]: re-entrant within one process


def lock_path(folder: str | os.PathLike) -> Path:
    """The lock file of `folder`: beside it (so it exists before the folder and is not one of
    its files), named after it."""
    folder = Path(os.path.realpath(folder))  # one lock whatever name or link reaches it
    return folder.parent / f".{folder.name}{LOCK_SUFFIX}"


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the one-writer lock of `folder` (a run, artifact or report folder) for the block.

    An exclusive fcntl.flock on a file beside the folder: the kernel releases it when the
    process ends, however it ends (kill -9 included), so no stale lock is ever held. A second
    process gets a RunError naming the folder and the holder's pid. The file is removed on
    release; a waiter that locked the removed file notices (its inode is gone) and retries.
    Where the parent cannot be written (a read-only disk), no lock is taken: nothing can be
    written there either.
    """
    path = lock_path(folder)
    key = str(path)
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    fd = _acquire(path, Path(folder))
    if fd is None:
        yield
        return
    _held[key] = [fd, 1]
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _acquire(path: Path, folder: Path) -> int | None:
    make_parent(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                return None
            raise os_error_message(e, path) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunError(f"{folder} is being written by another ftedge process (pid {holder})",
                           "wait for it to finish (or stop it), then run the command again; "
                           "or write to another folder with --out") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # the previous holder removed this file as we locked it: lock the new one


def default_mode(directory: bool = False) -> int:
    """The mode a plain open()/mkdir() would give (mkstemp/mkdtemp make private 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the destination folder; it replaces `path` only on success."""
    path = Path(path)
    make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise disk_full_error(e, path) from e
    os.close(fd)
    try:
        try:
            yield Path(tmp)
            os.chmod(tmp, default_mode())
            os.replace(tmp, path)
        except OSError as e:
            raise disk_full_error(e, path) from e
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save `obj` atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def safe_torch_load(path: str | os.PathLike, map_location: str = "cpu") -> Any:
    """Load a checkpoint with weights_only=True: no arbitrary code runs from the file.

    Inside io.memoised_reads the file is loaded once per command and each caller gets its own
    deep copy (tensors cloned): callers hand the tensors on to models and optimizers, which may
    change them in place (an optimizer's loaded state is its running buffers)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint not found: {path}", "check the path, or run `ftedge tune` first")
    if path.stat().st_size == 0:
        raise RunError(f"{path} is empty (0 bytes)",
                       "the file was not written completely: use another copy, or re-create it")
    loaded = memoised(("torch", map_location), path, lambda: _torch_load(path, map_location))
    if not memo_active():
        return loaded
    with torch.no_grad():
        return copy.deepcopy(loaded)


def _torch_load(path: Path, map_location: str) -> Any:
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for corrupt/unsafe files
        raise RunError(
            f"cannot load {path} safely: {type(e).__name__}: {first_line(e)}",
            "the file is corrupt, truncated, or pickles objects other than tensors; "
            "re-save it as a plain state_dict (torch.save(model.state_dict(), path))",
        ) from e


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


# What one command has already read, by (kind, the file's identity): see memoised_reads.
_MEMO: dict | None = None


@contextlib.contextmanager
def memoised_reads() -> Iterator[None]:
    """While the block runs (one command: an export, a bench, a quantize), each input file is
    hashed or parsed once: `memoised` keys results by the file's path, inode, size, mtime and
    ctime, so a file written again (atomic writes give it a new inode) is read again. Outside
    such a block every read is fresh, so a long-lived process never trusts an old result."""
    global _MEMO
    outer = _MEMO
    if outer is None:
        _MEMO = {}
    try:
        yield
    finally:
        if outer is None:
            _MEMO = None


def memo_active() -> bool:
    return _MEMO is not None


def memoised(kind: Hashable, path: str | os.PathLike, make: Callable[[], Any]) -> Any:
    """`make()`, or what it returned for this `kind` and this same file earlier in the
    command (memoised_reads); a file that cannot be stat'ed is left to `make` to report."""
    if _MEMO is None:
        return make()
    try:
        st = os.stat(path)
    except OSError:
        return make()
    key = (kind, os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
           st.st_ctime_ns)
    if key not in _MEMO:
        _MEMO[key] = make()
    return _MEMO[key]


def _sha256(path: str | os.PathLike, chunk: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (once per command inside memoised_reads)."""
    return memoised("sha256", path, lambda: _sha256(path, chunk))


def read_json(path: str | os.PathLike) -> Any:
    """Load JSON with a clear error when the file is missing or broken. Inside
    io.memoised_reads the file is parsed once per command and each caller gets its own copy of
    the lists and dicts (callers may edit what they read)."""
    path = Path(path)
    parsed = memoised("json", path, lambda: _parse_json(path))
    return _copy_json(parsed) if memo_active() else parsed


def _copy_json(value: Any) -> Any:
    """A copy of a parsed JSON value's lists and dicts (its strings and numbers are immutable),
    made without recursion: whatever nesting the parser accepted, the copy accepts too."""
    def shell(v):
        return {} if isinstance(v, dict) else []

    if not isinstance(value, (dict, list)):
        return value
    top = shell(value)
    todo = [(value, top)]
    while todo:
        src, dst = todo.pop()
        for k, v in (src.items() if isinstance(src, dict) else enumerate(src)):
            if isinstance(v, (dict, list)):
                v_copy = shell(v)
                todo.append((v, v_copy))
                v = v_copy
            if isinstance(dst, dict):
                dst[k] = v
            else:
                dst.append(v)
    return top


def _parse_json(path: Path) -> Any:
    try:
        return json.loads(read_file_bytes(path).decode("utf-8"))
    except FileNotFoundError as e:
        raise RunError(f"missing file: {path}", "is this the right run folder?") from e
    except IsADirectoryError as e:
        raise RunError(f"{path} is a folder, not a JSON file", "is this the right folder?") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"broken JSON in {path}: {first_line(e)}",
                       "re-create the file with the ftedge command that wrote it") from e
    except RecursionError as e:  # [[[[... nested deeper than the parser's stack
        raise RunError(f"broken JSON in {path}: nested too deep to be an ftedge file",
                       "re-create the file with the ftedge command that wrote it") from e
    except OSError as e:  # a FIFO or device, a link loop, permission, a name too long
        raise os_error_message(e, path) from e
