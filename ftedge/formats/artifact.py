"""An artifact folder's manifest.json: typed, versioned, validated field by field, and sealed.

The manifest is the artifact's contract (classes, preprocessing, source, precision, shapes,
versions, parity, the sha256 of every file). It is covered by digests (one per section and one
over the whole), so an edited manifest is refused naming what differs; every file name in it
is a plain relative path inside the folder, and the main artifact is one of the hashed files.
"""

from __future__ import annotations

import copy

import fnmatch
import hashlib
import json
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath

from ftedge.config import DEFAULT_INPUT_FORMAT, DEFAULT_LAYOUT, INPUT_FORMATS, INPUT_LAYOUTS
from ftedge.confidence import check_record
from ftedge.errors import ExportError, FtedgeError
from ftedge.formats.checkpoint import check_classes, check_contract
from ftedge.formats.owned import MARKER, read_marker
from ftedge.formats.run import BEST, CLASSES, CONFIG, LAST, SPLIT
from ftedge.io import atomic_write_json, read_json, sha256_file

MANIFEST = "manifest.json"
PARITY = "parity.json"  # the export-time parity check, beside the manifest
RUN_SIGNS = (SPLIT, CONFIG, CLASSES, BEST, LAST)  # files only a run folder holds
MODEL_SUFFIXES = (".onnx", ".xml", ".engine", ".plan")  # what an artifact's runtime loads
FORMAT = "ftedge-artifact/2"
RUNTIMES = ("onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
SEALED = ("classes", "preprocessing", "files", "profile", "source", "input_shape", "precision",
          "artifact", "float_layers")  # sections with their own digest: named when edited
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ExportError):
    """An artifact folder whose manifest or files cannot be trusted."""


@dataclass(frozen=True)
class Manifest:
    """manifest.json, field by field (see `validate` for the rule of each)."""

    target: str
    runtime: str
    device: str
    precision: str
    artifact: str  # the main file, relative to the folder; always one of `files`
    built: bool  # False: a TensorRT engine still to be built on the device
    input_name: str
    output_name: str
    input_shape: list  # ["dynamic" | N, 3, H, W]
    opset: int
    classes: list[str]
    preprocessing: dict
    model_name: str
    source: dict  # run, kind, onnx, onnx_sha256, checkpoint, checkpoint_sha256
    versions: dict
    profile: dict
    parity: dict
    files: dict[str, str]  # relative path -> sha256, every file but manifest.json
    calibration_sha256: str | None = None  # the INT8 calibration *images* (PTQ), not ...
    # ... confidence calibration: the temperature fitted on this artifact's own val logits
    # (confidence.calibration_record; None in manifests from before it: T = 1)
    calibration: dict | None = None
    float_layers: list[str] = field(default_factory=list)  # layers kept out of INT8
    # the graph's unknown score (runtime/unknown.py): score, output, threshold, target_tpr...;
    # None for artifacts exported without one (and before ftedge had it)
    unknown: dict | None = None
    extra: dict = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT
    # what the input takes (config.INPUT_FORMATS, INPUT_LAYOUTS); older manifests: normalized
    input_format: str = DEFAULT_INPUT_FORMAT  # manifests before pixel-input artifacts
    input_layout: str = DEFAULT_LAYOUT

    @property
    def batch(self) -> int | None:
        return None if self.input_shape[0] == "dynamic" else int(self.input_shape[0])

    def to_dict(self) -> dict:
        return asdict(self)


# extra.graph flag of an INT8 artifact whose non-depthwise weights use the full 8-bit range
SATURATES_WITHOUT_VNNI = "saturates_without_vnni"


def saturation_facts(extra) -> str | None:
    """How an INT8 artifact flagged SATURATES_WITHOUT_VNNI uses its weights, in words for the
    caveat its runtime words (runtime/kit.vnni_caveat); None when it is not flagged (or `extra`
    is malformed)."""
    graph = extra.get("graph") if isinstance(extra, dict) else None
    if not isinstance(graph, dict) or graph.get(SATURATES_WITHOUT_VNNI) is not True:
        return None
    return (f"its INT8 weights use the full 8-bit range (largest |q| "
            f"{graph.get('weight_max_abs', 'over 64')})")


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
                      ).encode("utf-8")


def digests(body: dict) -> dict:
    """sha256 of each sealed section, and of the whole manifest without its digests."""
    whole = {k: v for k, v in body.items() if k not in ("digest", "section_digests")}
    return {"section_digests": {k: hashlib.sha256(_canonical(body.get(k))).hexdigest()
                                for k in SEALED},
            "digest": hashlib.sha256(_canonical(whole)).hexdigest()}


def safe_name(name) -> bool:
    """A plain relative POSIX path inside the folder: no root, no '..', no backslash."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return False
    p = PurePosixPath(name)
    return (not p.is_absolute() and ".." not in p.parts and "." not in p.parts
            and p.parts[0] not in (MANIFEST, MARKER) and str(p) == name)


def reexport_command(folder: Path, data=None) -> str:
    """How to write this damaged artifact folder again (RUN etc. where unknown): move it
    away first, as `--force` rightly refuses a folder whose files changed since export."""
    data = data if isinstance(data, dict) else {}
    source = data.get("source") if isinstance(data.get("source"), dict) else {}
    shape = data.get("input_shape") if isinstance(data.get("input_shape"), list) else []
    batch = f" --batch {shape[0]}" if shape and isinstance(shape[0], int) else ""
    return (f"move it away (mv {folder} {folder}.damaged), then: ftedge export "
            f"{source.get('run', 'RUN')} --target {data.get('target', 'TARGET')} --precision "
            f"{data.get('precision', 'PRECISION')}{batch} --out {folder}")


def _bad(folder: Path, what: str, data=None) -> ManifestError:
    return ManifestError(f"{folder}/{MANIFEST}: {what}",
                         f"export again: {reexport_command(folder, data)}")


def validate(data, folder: Path) -> Manifest:
    """Check every field's type and value; returns the typed manifest."""
    if not isinstance(data, dict):
        raise _bad(folder, "is not a JSON object", data)
    if data.get("format") != FORMAT:
        raise _bad(folder, f"format {data.get('format')!r} is not {FORMAT} (an older ftedge or "
                           "not an ftedge artifact)", data)
    known = {f.name for f in fields(Manifest)}
    missing = sorted(f.name for f in fields(Manifest) if f.name not in data
                     and f.default is MISSING and f.default_factory is MISSING)
    if missing:
        raise _bad(folder, f"missing field(s) {', '.join(missing)}", data)
    body = {k: v for k, v in data.items() if k in known}
    for name, kind in (("target", str), ("device", str), ("artifact", str), ("built", bool),
                       ("input_name", str), ("output_name", str), ("opset", int),
                       ("model_name", str), ("source", dict), ("versions", dict),
                       ("profile", dict), ("parity", dict), ("files", dict), ("extra", dict),
                       ("float_layers", list)):
        if name in body and not isinstance(body[name], kind):
            raise _bad(folder, f"{name} is not a {kind.__name__}", data)
    unknown = body.get("unknown")
    if unknown is not None and not (
            isinstance(unknown, dict) and isinstance(unknown.get("output"), str)
            and isinstance(unknown.get("threshold"), (int, float))
            and not isinstance(unknown.get("threshold"), bool)):
        raise _bad(folder, "unknown is not a score record with an output and a threshold",
                   data)
    if body["runtime"] not in RUNTIMES:
        raise _bad(folder, f"runtime {body['runtime']!r} is not one of "
                           f"{', '.join(RUNTIMES)}", data)
    if body["precision"] not in PRECISIONS:
        raise _bad(folder, f"precision {body['precision']!r} is not one of "
                           f"{', '.join(PRECISIONS)}", data)
    try:
        check_classes(body["classes"], MANIFEST)
        # a copy: the defaults an older contract reads with must not break its seal
        body["preprocessing"] = check_contract(copy.deepcopy(body["preprocessing"]), MANIFEST)
    except FtedgeError as e:
        raise _bad(folder, e.message, data) from None
    if body.get("calibration") is not None:
        try:
            check_record(body["calibration"], MANIFEST)
        except FtedgeError as e:
            raise _bad(folder, e.message, data) from None
    if body.get("input_format", "normalized") not in INPUT_FORMATS:
        raise _bad(folder, f"input_format {body['input_format']!r} is not one of "
                           f"{', '.join(INPUT_FORMATS)}", data)
    layout = body.get("input_layout", "NCHW")
    if layout not in INPUT_LAYOUTS:
        raise _bad(folder, f"input_layout {layout!r} is not one of {', '.join(INPUT_LAYOUTS)}",
                   data)
    c, h, w = body["preprocessing"]["input_size"]
    shape = body["input_shape"]
    if (not isinstance(shape, list) or len(shape) != 4
            or not (shape[0] == "dynamic" or (isinstance(shape[0], int) and shape[0] > 0))
            or shape[1:] != ([h, w, c] if layout == "NHWC" else [c, h, w])):
        raise _bad(folder, f"input_shape {shape!r} is not [batch, *input_size]", data)
    for name, digest in body["files"].items():
        if not safe_name(name):
            raise _bad(folder, f"file name {name!r} is not a plain path inside the folder",
                       data)
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise _bad(folder, f"the sha256 of {name} is damaged", data)
    if body["artifact"] not in body["files"]:
        raise _bad(folder, f"the artifact {body['artifact']!r} is not one of the hashed files",
                   data)
    return Manifest(**body)


def write_manifest(folder: Path, manifest: Manifest, unhashed: tuple[str, ...] = ()) -> dict:
    """Hash every file in `folder` (but the manifest, and the name patterns `unhashed`: files
    the device builds later and checks on their own) into the manifest, seal it, write it."""
    body = manifest.to_dict()
    names = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()]
    body["files"] = {n: sha256_file(folder / n) for n in names
                     if n not in (MANIFEST, MARKER)
                     and not any(fnmatch.fnmatchcase(n, pat) for pat in unhashed)}
    validate(body, folder)
    sealed = {**body, **digests(body)}
    atomic_write_json(folder / MANIFEST, sealed)
    return sealed


def _check_seal(data: dict, folder: Path) -> None:
    stored = data.get("section_digests")
    want = digests(data)
    if not isinstance(stored, dict) or not isinstance(data.get("digest"), str):
        raise _bad(folder, "has no digest (not sealed by ftedge export)", data)
    edited = [k for k in SEALED if stored.get(k) != want["section_digests"][k]]
    if edited:
        raise _bad(folder, f"{', '.join(edited)} differ from what was exported (the manifest "
                           "was edited)", data)
    if data["digest"] != want["digest"]:
        raise _bad(folder, "was edited after export (its digest does not match)", data)


def read_manifest(folder: str | Path, check_files: bool = True) -> Manifest:
    """Load, unseal and validate a manifest; with `check_files`, every hashed file too."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        if (folder / MANIFEST).exists():  # reading a FIFO would wait forever
            raise ManifestError(f"{folder / MANIFEST} is not a regular file (a folder, FIFO, "
                                "device or socket)", "copy the artifact folder again, or "
                                "export it again")
        raise ManifestError(f"{folder} is not an artifact folder (no {MANIFEST})",
                            "pass a folder written by `ftedge export`")
    data = read_json(folder / MANIFEST)
    manifest = validate(data, folder)
    _check_seal(data, folder)
    if check_files:
        verify_files(folder, manifest)
    return manifest


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Every hashed file present, a regular file inside the folder, and unchanged."""
    root, data = folder.resolve(), manifest.to_dict()
    missing, changed = [], []
    for name, digest in manifest.files.items():
        path = folder / name
        if path.is_symlink() or not path.is_file() or root not in path.resolve().parents:
            missing.append(name)
        elif sha256_file(path) != digest:
            changed.append(name)
    if missing:
        raise _bad(folder, f"{', '.join(missing)} missing (or not a plain file)", data)
    if changed:
        raise _bad(folder, f"{', '.join(changed)} changed since export (sha256 mismatch)", data)


def check_not_a_bare_artifact(folder: str | Path) -> None:
    """Refuse a folder that holds an artifact's files (its marker, parity.json, deploy/, a
    model) but no manifest.json and no run's split.json: an artifact whose manifest is gone."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / MANIFEST).exists() or any(
            (folder / name).exists() for name in RUN_SIGNS):
        return  # a run folder (even one missing split.json) is not an artifact
    marker = read_marker(folder)
    signs = [p.name for p in folder.iterdir()
             if p.name in ("parity.json", "deploy") or p.suffix in MODEL_SUFFIXES]
    if signs or (marker is not None and marker["kind"] == "artifact"):
        raise ManifestError(
            f"{folder} looks like an artifact folder ({', '.join(sorted(signs)) or MARKER}) "
            f"but has no {MANIFEST}", f"export it again: {reexport_command(folder)}")


def stale_reason(folder: str | Path) -> str | None:
    """Why an artifact no longer matches the run it was exported from (its checkpoint or
    source graph, by the sha256 its manifest records, changed since), or None: current, or
    its run is not on this machine (a copy on a device), so it cannot be told. Raises
    ManifestError for a damaged manifest."""
    source = read_manifest_dict(folder)["source"]
    run = Path(source.get("run") or "")
    if not source.get("run") or not run.is_dir():
        return None
    for name_key, sha_key in (("checkpoint", "checkpoint_sha256"), ("onnx", "onnx_sha256")):
        name, digest = source.get(name_key), source.get(sha_key)
        if not isinstance(name, str) or not isinstance(digest, str) or not safe_name(name):
            continue
        path = run / name
        if not path.is_file():
            return f"{path}, which it was exported from, is gone"
        if sha256_file(path) != digest:
            return f"{path} changed since it was exported"
    return None


def read_manifest_dict(folder: str | Path) -> dict:
    """The validated manifest as a plain dict (files not re-hashed): for reports."""
    return read_manifest(folder, check_files=False).to_dict()
