"""Folders ftedge writes whole (artifacts, bench reports, demo data): staged, marked, replaceable.

Such a folder is assembled in a hidden temporary folder beside its destination and renamed
into place only when everything in it succeeded, so an interrupted step leaves nothing. It
carries a marker file naming its kind and every file ftedge put there, subfolders included,
with its sha256. `--force` replaces an existing folder only when that marker says ftedge wrote
it as the same kind and nothing has been added or changed since, at any depth: never `.`, a
folder above the current one, a folder that holds the step's own inputs, or a folder with the
user's files (or the user's edits to ftedge's files) in it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from ftedge.errors import RunError
from ftedge.io import (atomic_write_json, atomic_write_text, default_mode, disk_full_error,
                       folder_lock, os_error_message, sha256_file)

MARKER = ".ftedge-folder.json"
KINDS = ("artifact", "bench-report", "merged-report", "demo-data")


def read_marker(folder: Path) -> dict | None:
    """The marker of a folder ftedge wrote, or None (missing, unreadable, or not ours)."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(marker, dict) or marker.get("kind") not in KINDS
            or not isinstance(marker.get("entries"), list)):
        return None
    return marker


def tree_digests(folder: Path) -> dict[str, str]:
    """Every file below `folder` but the marker, by relative POSIX path: its sha256, or
    "symlink:<target>" for a link (followed nowhere)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in files + links:
            path = Path(root, name)
            rel = path.relative_to(folder).as_posix()
            if rel != MARKER:
                found[rel] = (f"symlink:{os.readlink(path)}" if path.is_symlink()
                              else sha256_file(path))
    return found


def write_marker(folder: Path, kind: str, later: Iterable[str] = ()) -> None:
    """Mark `folder` as ftedge's: its kind, its top-level entries, every file in it with its
    sha256, and the name patterns of top-level files ftedge itself adds later (a TensorRT
    engine built on the device)."""
    from ftedge import __version__

    entries = sorted(p.name for p in folder.iterdir() if p.name != MARKER)
    atomic_write_json(folder / MARKER, {"kind": kind, "ftedge": __version__, "entries": entries,
                                        "files": tree_digests(folder), "later": list(later)})


def rewrite_owned_file(folder: Path, rel: str, text: str) -> bool:
    """Replace `folder/rel`, a file ftedge wrote and still unchanged since (the marker's
    sha256), with `text`, and record its new sha256 in the marker: both writes atomic. False,
    and nothing written, when the folder has no marker with files or the file differs from
    what the marker recorded (the user edited it: it is theirs now)."""
    with folder_lock(folder):  # the folder's one writer while marker and file change
        marker = read_marker(folder)
        path = folder / rel
        files = marker.get("files") if marker else None
        if (not isinstance(files, dict) or rel not in files or path.is_symlink()
                or not path.is_file() or sha256_file(path) != files[rel]):
            return False
        atomic_write_text(path, text)
        files[rel] = sha256_file(path)
        atomic_write_json(folder / MARKER, marker)
        return True


def not_ours(out: Path, marker: dict) -> tuple[list[str], list[str]]:
    """What in `out` ftedge did not write (added), and what of its files differs (changed):
    relative paths at any depth; top-level names matching the marker's `later` patterns are
    ftedge's, as written or rebuilt."""
    files = marker["files"]
    later = [p for p in marker.get("later", []) if isinstance(p, str)]
    added, changed = [], []
    for rel, digest in sorted(tree_digests(out).items()):
        if any(fnmatch.fnmatchcase(rel.split("/")[0], p) for p in later):
            continue  # ftedge (re)writes these on the device
        if rel not in files:
            added.append(rel)
        elif files[rel] != digest:
            changed.append(rel)
    return added, changed


def _is_same_or_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def refuse_unsafe(out: Path, protect: Iterable[Path] = ()) -> None:
    """Refuse a destination whose replacement would take what the user is standing in or
    what the step reads from."""
    target = out.resolve()
    cwd = Path.cwd().resolve()
    if _is_same_or_inside(cwd, target):
        raise RunError(f"{out} is the current folder or one above it: ftedge never replaces it",
                       "give a new folder as --out, e.g. --out exports/mine")
    if target == Path(target.anchor) or target == Path.home().resolve():
        raise RunError(f"{out} is a root or home folder: ftedge never replaces it",
                       "give a new folder as --out")
    for p in protect:
        if _is_same_or_inside(Path(p).resolve(), target):
            raise RunError(f"{out} holds this step's own input {p}: replacing it would lose it",
                           "give a new folder as --out")


def check_replaceable(out: Path, kind: str, force: bool, *, protect: Iterable[Path] = ()) -> None:
    """Raise unless `out` is absent, empty, or (with force) a folder ftedge wrote as `kind`.
    Without force, --force is suggested only where it would be accepted."""
    if not out.exists() and not out.is_symlink():
        return
    refuse_unsafe(out, protect)
    if out.is_symlink() or not out.is_dir():
        raise RunError(f"{out} exists and is not a folder", "pick another --out")
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return  # an empty folder: nothing to lose
    refusal = _force_refusal(out, kind)
    if force and refusal is not None:
        raise refusal
    if not force:
        if refusal is None:
            raise RunError(f"{out} already exists",
                           "pass --force to replace it (only a folder ftedge wrote), or pick "
                           "another --out")
        raise RunError(f"{out} already exists, and --force would not replace it: "
                       f"{refusal.message.removeprefix(f'{out} ')}", refusal.hint)


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _force_refusal(out: Path, kind: str) -> RunError | None:
    """Why --force may not replace `out` (an existing, non-empty folder), or None."""
    marker = read_marker(out)
    if marker is None or marker["kind"] != kind:
        what = ("was not written by ftedge" if marker is None
                else f"is {_a(marker['kind'])} {marker['kind']} folder")
        return RunError(f"{out} {what}: --force replaces only {_a(kind)} {kind} folder ftedge "
                        "wrote",
                        "pick another --out")
    if not isinstance(marker.get("files"), dict):
        return RunError(f"{out} was written by an ftedge that did not record the files in its "
                        "subfolders, so --force cannot tell whether you added or edited any",
                        "move it away or delete it yourself, or pick another --out")
    added, changed = not_ours(out, marker)
    if added:
        return RunError(f"{out} holds files ftedge did not write ({', '.join(added[:5])}): "
                        "--force will not replace it", "move them away, or pick another --out")
    if changed:
        return RunError(f"{out} holds files changed since ftedge wrote them "
                        f"({', '.join(changed[:5])}): --force will not replace your edits",
                        "copy them elsewhere (or delete the folder yourself), or pick another "
                        "--out")
    return None


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike, kind: str, *, force: bool = False,
                  protect: Iterable[Path] = (), later: Iterable[str] = ()) -> Iterator[Path]:
    """A temp folder beside `out` that becomes `out` (marked as `kind`) only if the block
    succeeds; an earlier folder is swapped out, and put back if the rename fails. `out` has
    one writer at a time (io.folder_lock): a second command writing it is refused at once."""
    out = Path(out)
    protect = list(protect)
    check_replaceable(out, kind, force, protect=protect)
    with folder_lock(out):
        check_replaceable(out, kind, force, protect=protect)  # as it is now that we hold the lock
        _remove_stale_staging(out)
        with _staging(out) as tmp:
            yield tmp
            write_marker(tmp, kind, later)
            os.chmod(tmp, default_mode(directory=True))
            check_replaceable(out, kind, force, protect=protect)  # unchanged while we worked?
            _swap_in(tmp, out)


def _remove_stale_staging(out: Path) -> None:
    """Staging folders of `out` that a killed writer (kill -9, power loss) left: only the
    holder of `out`'s lock stages into it, and we hold it, so every one found is stale."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[A-Za-z0-9_]{{8}}\.tmp")  # mkdtemp's
    with contextlib.suppress(OSError):
        for p in out.parent.iterdir():
            if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A hidden temporary folder beside `out`, removed whatever happens unless renamed."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunError(f"cannot create {out}: {out.parent} is a file, not a folder",
                       "pick an --out whose parents are folders") from None
    except OSError as e:
        raise os_error_message(e, out.parent) from e
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise os_error_message(e, out) from e
    try:
        yield tmp
    except OSError as e:
        clear = disk_full_error(e, out)
        if clear is e:
            raise  # any other OSError: cli.py names its path and the fix
        raise clear from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already once renamed into place


def _swap_in(tmp: Path, out: Path) -> None:
    old = None
    if out.exists() and any(out.iterdir()):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    elif out.exists():
        out.rmdir()
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)  # put the previous folder back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
