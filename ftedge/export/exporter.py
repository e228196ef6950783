"""`ftedge export`: a run -> one target's artifact folder, checked against PyTorch, atomically.

The folder holds the artifact, manifest.json (the contract: classes, preprocessing, source run
and hashes, versions, opset, precision, input shape, parity) and parity.json. It is assembled
in a hidden temporary folder beside the destination and renamed into place only when
everything succeeded, so an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ftedge.errors import RunError
from ftedge.export.base import Artifact, ExportError, SourceModel, get_target
from ftedge.export.parity import parity_check
from ftedge.export.profiles import TargetProfile, check_precision, load_profile, parse_batch
from ftedge.io import atomic_write_json, read_json, sha256_file
from ftedge.runs import LoadedRun, load_run

INT8_SOURCES = {"qat": "model.int8.onnx", "ptq": "model.ptq.int8.onnx"}


@dataclass
class ExportResult:
    folder: Path
    manifest: dict

    @property
    def passed(self) -> bool | None:
        """True/False from the parity check; None when it could not run here (e.g. TensorRT)."""
        return (self.manifest.get("parity") or {}).get("passed")


def pick_source(loaded: LoadedRun, precision: str, batch: int | None,
                int8_source: str = "auto") -> SourceModel:
    """The run's ONNX the artifact starts from: FP32 for fp32/fp16, the Q/DQ graph for int8."""
    run, size = loaded.path, tuple(loaded.contract["input_size"])
    if precision != "int8":
        path = run / "model.fp32.onnx"
        if not path.is_file():
            from ftedge.quant.quantize import _export_fp32

            _export_fp32(loaded, path, 17)
        return SourceModel(path, precision, "fp32", batch, size)
    kinds = ["qat", "ptq"] if int8_source == "auto" else [int8_source]
    for kind in kinds:
        if (run / INT8_SOURCES[kind]).is_file():
            return SourceModel(run / INT8_SOURCES[kind], precision, kind, batch, size)
    raise RunError(f"{run} has no INT8 model ({' or '.join(INT8_SOURCES[k] for k in kinds)})",
                   f"make one: ftedge tune --qat ..., or ftedge quantize {run}")


def default_out(run: Path, profile: TargetProfile, precision: str, batch: int | None) -> Path:
    suffix = "" if batch is None else f"-b{batch}"
    return run / "exports" / f"{profile.name}-{precision}{suffix}"


def _versions(target) -> dict:
    import onnx
    import torch

    from ftedge import __version__

    return {"ftedge": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            **target.versions()}


def graph_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _manifest(loaded, profile, source, artifact, target, parity, folder, opset) -> dict:
    from ftedge.quant.onnx_export import read_metadata

    meta = read_metadata(source.path)
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    return {
        "format": "ftedge-artifact/1",
        "target": profile.name, "runtime": profile.runtime, "device": profile.device,
        "precision": artifact.precision, "artifact": artifact.file, "built": artifact.built,
        "input_name": "input", "output_name": "logits",
        "input_shape": ["dynamic" if source.batch is None else source.batch,
                        *source.input_size],
        "opset": opset,
        "classes": loaded.classes, "preprocessing": loaded.contract,
        "model_name": loaded.model_name,
        "source": {"run": str(loaded.path.resolve()), "kind": source.kind,
                   "onnx": source.path.name, "onnx_sha256": sha256_file(source.path),
                   "checkpoint": meta.get("ftedge.checkpoint", loaded.checkpoint.name),
                   "checkpoint_sha256": meta.get("ftedge.checkpoint_sha256")},
        "calibration_sha256": meta.get("ftedge.calibration_sha256"),
        "versions": _versions(target),
        "profile": profile.to_dict(),
        "parity": parity,
        "files": {f: sha256_file(folder / f) for f in files if f != "manifest.json"},
        "extra": artifact.extra,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


@contextlib.contextmanager
def staging_folder(out: Path, force: bool):
    """A temp folder beside `out` that becomes `out` only if the block succeeds.

    --force replaces only an empty folder or an earlier artifact (it has a manifest.json):
    never a run, or a folder of artifacts, named by mistake.
    """
    from ftedge.io import default_mode

    if out.exists():
        if not force:
            raise RunError(f"{out} already exists", "pass --force to replace it, or --out DIR")
        if not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").is_file()):
            raise RunError(f"{out} is not an artifact folder: --force will not replace it",
                           "pick another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, default_mode(directory=True))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)  # put the previous artifact back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_run(run: str | Path, target: str, precision: str | None = None,
               batch: str | int | None = None, out: str | Path | None = None,
               force: bool = False, int8_source: str = "auto", threads: int | None = None,
               log=print) -> ExportResult:
    """Export a tuned run for one target (a name in targets/ or a profile YAML file)."""
    profile = load_profile(target)
    precision = check_precision(precision, profile)
    batch_n = parse_batch(batch, profile)
    loaded = load_run(run)
    source = pick_source(loaded, precision, batch_n, int8_source)
    opset = graph_opset(source.path)
    if opset > profile.opset:
        raise ExportError(f"{source.path.name} is opset {opset}; target {profile.name} takes "
                          f"opset {profile.opset} at most",
                          f"re-export the run at opset {profile.opset} (qat.opset in the config)")
    tgt = get_target(profile.runtime)
    problems = tgt.preflight(profile)
    for p in problems:
        log(f"preflight {p}")
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ExportError(f"{profile.name} cannot be built here: "
                          + "; ".join(p.message for p in errors),
                          errors[0].hint or "see `ftedge targets show " + profile.name + "`")
    out = Path(out) if out else default_out(loaded.path, profile, precision, batch_n)
    with staging_folder(out, force) as tmp:
        artifact = tgt.export(source, profile, tmp)
        artifact.extra["run"] = str(loaded.path)
        parity = parity_check(loaded, source, artifact, profile, tgt, threads)
        atomic_write_json(tmp / "parity.json", parity)
        manifest = _manifest(loaded, profile, source, artifact, tgt, parity, tmp, opset)
        atomic_write_json(tmp / "manifest.json", manifest)
    return ExportResult(out, manifest)


def load_artifact(folder: str | Path, threads: int | None = None) -> LoadedRun:
    """An artifact folder as a LoadedRun: its classes, contract and the target's runner."""
    from ftedge.config import from_dict
    from ftedge.export.profiles import validate_profile

    folder = Path(folder)
    manifest = read_json(folder / "manifest.json")
    if manifest.get("format") != "ftedge-artifact/1":
        raise ExportError(f"{folder}/manifest.json is not an ftedge artifact manifest",
                          "export again with ftedge export")
    profile = from_dict(TargetProfile, {**manifest["profile"], "precisions": tuple(
        manifest["profile"]["precisions"])}, where="manifest profile")
    validate_profile(profile)
    batch = manifest["input_shape"][0]
    again = (f"export again: ftedge export {manifest['source']['run']} --target {profile.name} "
             f"--precision {manifest['precision']}"
             + ("" if batch == "dynamic" else f" --batch {batch}") + f" --out {folder} --force")
    checked = {f: d for f, d in manifest["files"].items()
               if f not in ("model.engine", "engine.json") and not f.startswith("timing-")}
    missing = [f for f in checked if not (folder / f).is_file()]
    if missing:
        raise ExportError(f"{folder}: {', '.join(missing)} missing", again)
    bad = [f for f, digest in checked.items() if sha256_file(folder / f) != digest]
    if bad:
        raise ExportError(f"{folder}: {', '.join(bad)} changed since export (sha256 mismatch)",
                          again)
    artifact = Artifact(folder, manifest["artifact"], profile.name, profile.runtime,
                        manifest["precision"], None if batch == "dynamic" else int(batch),
                        built=manifest["built"], extra=manifest.get("extra", {}))
    runner = get_target(profile.runtime).runner(artifact, profile, threads)
    return LoadedRun(folder, list(manifest["classes"]), manifest["preprocessing"], runner,
                     artifact.path, manifest["model_name"])


def qat_reference(loaded: LoadedRun):
    """The QAT model (qat_best.pt) with frozen fake quantization: what INT8 artifacts must match."""
    import torch

    from ftedge.quant.qat import freeze_all_observers, prepare_qat
    from ftedge.runs import TorchRunner
    from ftedge.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(loaded.path / "qat_best.pt")
    model = copy.deepcopy(loaded.runner.model)
    example = torch.zeros(2, *loaded.contract["input_size"])
    prepare_qat(model, example, ckpt["config"]["qat"].get("weight_bits", 8))
    model.load_state_dict(ckpt["model_state"])
    freeze_all_observers(model)
    return TorchRunner(model.eval())

