"""The run's contract in a graph's metadata_props (every artifact carries its contract)."""

from __future__ import annotations

import json
from pathlib import Path

def set_metadata(model, metadata: dict) -> None:
    """Store each key as a metadata_prop; non-strings as JSON."""
    del model.metadata_props[:]
    for k, v in metadata.items():
        p = model.metadata_props.add()
        p.key = k
        p.value = v if isinstance(v, str) else json.dumps(v)


def contract_metadata(model_name: str, classes: list[str], contract: dict, *, precision: str,
                      checkpoint: Path, **extra) -> dict:
    """The facts every exported graph carries (ARCHITECTURE.md: every artifact carries its
    contract)."""
    import onnx
    import torch

    from ftedge import __version__
    from ftedge.io import sha256_file

    return {"ftedge.version": __version__, "ftedge.model_name": model_name,
            "ftedge.classes": classes, "ftedge.preprocessing": contract,
            "ftedge.precision": precision, "ftedge.checkpoint": checkpoint.name,
            "ftedge.checkpoint_sha256": sha256_file(checkpoint),
            "ftedge.torch_version": torch.__version__, "ftedge.onnx_version": onnx.__version__,
            **{f"ftedge.{k}": v for k, v in extra.items()}}


def read_metadata(path: str | Path) -> dict[str, str]:
    from ftedge.formats.run import load_onnx

    return {p.key: p.value for p in load_onnx(path, load_external_data=False).metadata_props}
