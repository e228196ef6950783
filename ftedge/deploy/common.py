"""What every part of the deploy kit needs from the manifest: checked fields and file names.

The file-name rules are the template runners' own (imported, not restated), so the kit's
DeepStream and Triton files name exactly what infer.py loads.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ftedge.confidence import check_record
from ftedge.errors import DeployError
from ftedge.formats.checkpoint import CONTRACT_KEYS
from ftedge.io import atomic_path, atomic_write_text
from ftedge.runtime.kit import kit_pieces, kit_runtimes

REQUIRED = ("runtime", "precision", "artifact", "input_name", "output_name", "input_shape",
            "classes", "preprocessing", "model_name")
CONTRACT = CONTRACT_KEYS  # what every runtime needs of the preprocessing contract

__all__ = ["DeployError", "KitWriter", "check_manifest", "model_files", "batch_of", "max_batch",
           "safe_model_name", "temperature_sentence"]


def _reexport() -> str:
    return "export the artifact again with ftedge export"


def check_manifest(manifest: dict) -> dict:
    """The fields the kit reads, present and of the right shape."""
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise DeployError(f"the manifest has no {', '.join(missing)}", _reexport())
    if manifest["runtime"] not in kit_runtimes():
        raise DeployError(f"no deploy kit for runtime {manifest['runtime']!r}",
                          f"valid: {', '.join(kit_runtimes())}")
    contract = manifest["preprocessing"]
    if not isinstance(contract, dict) or any(k not in contract for k in CONTRACT):
        raise DeployError(f"the preprocessing contract lacks {', '.join(CONTRACT)}", _reexport())
    shape = manifest["input_shape"]
    if (not isinstance(shape, list) or len(shape) != 4
            or not (shape[0] == "dynamic" or (isinstance(shape[0], int) and shape[0] > 0))
            or list(shape[1:]) != input_dims(manifest)):
        raise DeployError(f"input_shape {shape!r} is not [batch, *input_size]", _reexport())
    return manifest


def input_dims(manifest: dict) -> list[int]:
    """The input's [C, H, W] or, for an NHWC artifact, [H, W, C]."""
    c, h, w = manifest["preprocessing"]["input_size"]
    return [h, w, c] if manifest.get("input_layout", "NCHW") == "NHWC" else [c, h, w]


def model_files(folder: Path, manifest: dict) -> list[str]:
    """The files the runtime loads (relative): what infer.py checks and Triton serves (a
    model file built on the device is listed once it exists: the runtime's KitPieces)."""
    return kit_pieces(manifest["runtime"]).model_files(Path(folder), manifest)


def batch_of(manifest: dict) -> int | None:
    """The model's fixed batch, or None for a dynamic batch dimension."""
    batch = manifest["input_shape"][0]
    return None if batch == "dynamic" else int(batch)


def max_batch(manifest: dict) -> int:
    """The largest batch the artifact serves: its fixed batch, else the profile's max_batch."""
    fixed = batch_of(manifest)
    return fixed if fixed is not None else int((manifest.get("profile") or {}).get("max_batch", 1))


def temperature_sentence(manifest: dict) -> tuple[float, str]:
    """(T, how probabilities are computed from this artifact's logits, in one sentence)."""
    record = manifest.get("calibration")
    if record is not None:
        check_record(record, "the manifest")
    else:
        return 1.0, ("no temperature was fitted for this artifact (no val images at export): "
                     "probabilities are softmax(logits), uncalibrated")
    t = float(record["temperature"])
    held = ""
    if isinstance(record.get("ece_after"), float):
        held = (f"; held-out ECE {record['ece_before']:.4f} -> {record['ece_after']:.4f} over "
                f"{record.get('n')} val images ({record.get('folds')}-fold cross-fitting)")
    return t, (f"calibrated probabilities are softmax(logits / T) with T = {t:.6g}, fitted at "
               f"export on {'this artifact' if record.get('on_artifact') else 'its reference'}"
               f"'s own val logits{held}")


def safe_model_name(name: str) -> str:
    """A directory name Triton and every filesystem accept: letters, digits, '.', '_', '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return cleaned or "model"


class KitWriter:
    """Writes files under folder/deploy atomically and remembers their relative POSIX paths."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.written: list[str] = []

    def _target(self, rel: str) -> Path:
        self.written.append(f"deploy/{rel}")
        return self.folder / "deploy" / rel

    def text(self, rel: str, text: str, executable: bool = False) -> None:
        path = atomic_write_text(self._target(rel), text)
        if executable:
            os.chmod(path, path.stat().st_mode | 0o111)

    def copy(self, source: str, rel: str) -> None:
        """Copy `source` (relative to the artifact folder) to deploy/`rel`."""
        src = self.folder / source
        if not src.is_file():
            raise DeployError(f"{src} is missing: the deploy kit copies it",
                              "write the kit after the artifact's files")
        with atomic_path(self._target(rel)) as tmp:
            shutil.copyfile(src, tmp)
