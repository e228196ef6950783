"""Open what `ftedge export` wrote, or a run: a checked artifact folder (manifest seal, every
file's sha256, its profile) with its runtime's runner, and what this host computes differently
from where the artifact was checked. eval, predict and bench open models only through here."""

from __future__ import annotations

from pathlib import Path

from ftedge.config import check_threads, from_dict
from ftedge.errors import ConfigError
from ftedge.formats.artifact import (MANIFEST, Manifest, ManifestError, check_not_a_bare_artifact,
                                     read_manifest)
from ftedge.runtime import LoadedModel, artifact_runner
from ftedge.runtime.base import Artifact, get_target
from ftedge.runtime.kit import vnni_caveat
from ftedge.runtime.openvino.runner import cpu_int8_without_vnni
from ftedge.runtime.profiles import TargetProfile, validate_profile
from ftedge.runtime.pytorch.runner import load_run


def _profile_of(manifest: Manifest, folder: Path) -> TargetProfile:
    try:
        profile = from_dict(TargetProfile, {**manifest.profile, "precisions": tuple(
            manifest.profile.get("precisions", ()))}, where="manifest profile")
        validate_profile(profile)
    except ConfigError as e:
        raise ManifestError(f"{folder / MANIFEST}: its profile is damaged ({e.message})",
                            "export again with ftedge export ... --force") from None
    return profile


def host_note(runtime: str, extra) -> str | None:
    """Why this host computes an artifact differently from where its export was checked, or
    None: an OpenVINO INT8 artifact whose u8 x s8 pair sums may saturate (vnni_caveat), on an
    x86 CPU without VNNI or one that cannot be told. ftedge's own ONNX Runtime session is
    exact on such CPUs (runtime/onnxruntime/runner.py turns QDQS8ToU8Transformer off), so ONNX Runtime
    artifacts get no note. bench adds it to its row; eval and predict warn with it."""
    caveat = vnni_caveat(runtime, extra)
    host = cpu_int8_without_vnni() if caveat and runtime == "openvino" else None
    if host is None:
        return None
    return ("this host is an x86 CPU without VNNI (these numbers are what such CPUs get)"
            if host == "no-vnni" else "this host could not tell whether its x86 CPU has VNNI"
            ) + f", and {caveat}"


def load_artifact(folder: str | Path, threads: int | None = None) -> LoadedModel:
    """An artifact folder, checked (manifest seal, every file's sha256), with its runner."""
    folder = Path(folder)
    check_threads(threads)
    manifest = read_manifest(folder)
    profile = _profile_of(manifest, folder)
    if (profile.name, profile.runtime) != (manifest.target, manifest.runtime):
        raise ManifestError(f"{folder / MANIFEST}: target {manifest.target} does not match "
                            f"its profile {profile.name}", "export again with --force")
    artifact = Artifact(folder, manifest.artifact, profile.name, profile.runtime,
                        manifest.precision, manifest.batch, built=manifest.built,
                        extra=dict(manifest.extra))
    # an artifact that normalises in its graph is fed the pixels of the contract's floats
    runner = artifact_runner(get_target(profile.runtime).runner(artifact, profile, threads),
                             manifest.preprocessing, manifest.input_format,
                             layout=manifest.input_layout)
    return LoadedModel(folder, list(manifest.classes), manifest.preprocessing, runner,
                       artifact.path, manifest.model_name, "artifact", manifest)


def open_model(path: str | Path, threads: int | None = None) -> LoadedModel:
    """A run folder (its best.pt in PyTorch), a checkpoint file, or an artifact folder (its
    runtime, after the manifest and every file are checked). `threads`: the runtime's CPU
    threads; PyTorch has one setting per process, so a run sets that."""
    path = Path(path)
    if path.is_dir() and (path / MANIFEST).is_file():
        return load_artifact(path, threads)
    check_not_a_bare_artifact(path)
    if check_threads(threads):
        import torch

        torch.set_num_threads(threads)
    return load_run(path)
