"""Read an artifact's manifest.json and check it and the model files against their digests.

Template piece of deploy/infer.py (standard library only). The digest is the sha256 of the
manifest without its digest fields, serialised as canonical JSON (sorted keys, no spaces,
UTF-8): it detects a damaged or edited manifest, not a deliberate forgery (it is no
signature). Model files are checked against the manifest's "files" map.
"""

import hashlib
import json
import os
import platform
import posixpath
import sys
from pathlib import Path

# ---- ftedge template body ----

DIGEST_KEYS = ("digest", "section_digests")  # what the digest does not cover (itself)

# ONNX Runtime's Linux/macOS wheels write a device id under ~/.cache/Microsoft/DeveloperTools/
# and send usage events when their first session is created, unless one of these is set:
# ORT_DISABLE_TELEMETRY (1.32), ORT_TELEMETRY_DISABLED (later releases).
ORT_TELEMETRY_OFF = {"ORT_DISABLE_TELEMETRY": "1", "ORT_TELEMETRY_DISABLED": "1"}


def telemetry_off():
    """Usage telemetry off for this process and the processes it starts; call before the
    runtime is imported. ONNX Runtime: ORT_TELEMETRY_OFF, unless the user set them. OpenVINO:
    importing openvino sends usage events through the openvino-telemetry package, which writes
    $HOME/intel (a client id, stats) and has no environment switch; without the package
    OpenVINO uses its own no-op stub, so it is made unimportable (a process that imported it
    before keeps its own choice)."""
    for name, value in ORT_TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
    sys.modules.setdefault("openvino_telemetry", None)  # None: `import` raises ImportError


class ArtifactError(Exception):
    """The artifact cannot be used or trusted; `hint` says how to fix it."""

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


def manifest_digest(manifest):
    """sha256 hex of the canonical JSON of `manifest` without its digest fields."""
    body = {k: v for k, v in manifest.items() if k not in DIGEST_KEYS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def reexport_hint(manifest):
    run = (manifest.get("source") or {}).get("run", "RUN")
    return (f"export the artifact again (ftedge export {run} --target "
            f"{manifest.get('target', 'TARGET')} --precision "
            f"{manifest.get('precision', 'PRECISION')} --force) and copy the whole folder")


def load_manifest(folder):
    """The manifest of the artifact folder, refused when damaged or edited after export."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(f"{folder} is not a folder", "pass the artifact folder with "
                            "--artifact DIR (the folder that holds manifest.json)")
    path = folder / "manifest.json"
    if path.exists() and not path.is_file():  # reading a FIFO would wait forever
        raise ArtifactError(f"{path} is not a regular file (a folder, FIFO, device or socket)",
                            "copy the artifact folder again")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found", "pass the artifact folder with --artifact DIR "
                            "(the folder that holds manifest.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} cannot be read: {e}", "copy the artifact folder again") from None
    if not isinstance(manifest, dict) or not str(manifest.get("format", "")).startswith(
            "ftedge-artifact/"):
        raise ArtifactError(f"{path} is not an ftedge artifact manifest",
                            "pass the folder written by `ftedge export`")
    if not isinstance(manifest.get("digest"), str):
        raise ArtifactError(f"{path} has no digest, so it cannot be checked",
                            reexport_hint(manifest))
    if manifest_digest(manifest) != manifest["digest"]:
        raise ArtifactError(f"{path} was changed after export (its digest does not match)",
                            reexport_hint(manifest))
    return manifest


def plain_name(name):
    """A relative POSIX path that stays inside the artifact folder."""
    return (isinstance(name, str) and name != "" and "\\" not in name and "\x00" not in name
            and not name.startswith("/") and posixpath.normpath(name) == name
            and not name.startswith(".."))


def verify_file(folder, manifest, name):
    """Refuse `name` unless the manifest lists it and its sha256 matches."""
    files = manifest.get("files")
    if not plain_name(name):
        raise ArtifactError(f"manifest names the file {name!r}, which is not a plain path in "
                            "the artifact folder", reexport_hint(manifest))
    if not isinstance(files, dict) or name not in files:
        raise ArtifactError(f"{name} is not listed in the manifest's files, so it cannot be "
                            "checked", reexport_hint(manifest))
    path = Path(folder) / name
    if not path.is_file():  # hashing a FIFO would wait forever
        raise ArtifactError(f"{path} is not a regular file (a folder, FIFO, device or socket)"
                            if path.exists() else f"{path} is missing",
                            "copy the whole artifact folder")
    if sha256_file(path) != files[name]:
        raise ArtifactError(f"{path} changed since export (sha256 mismatch)",
                            reexport_hint(manifest))



def usable_cores():
    """The CPU cores this process may run on: its affinity mask (a container or `taskset` may
    allow fewer than the machine has), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def vnni_state():
    """"vnni", "no-vnni" (an x86 CPU whose u8 x s8 dot product sums pairs of products in 16
    bits, which full-range 8-bit weights saturate), "unknown" (x86, /proc/cpuinfo unreadable)
    or "not-x86". ftedge's runtime/onnxruntime/runner.py imports this very function."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return "not-x86"
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "unknown"
    vnni = any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
    return "vnni" if vnni else "no-vnni"
