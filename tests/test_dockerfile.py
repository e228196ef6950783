"""Dockerfile.jetson: JetPack base with TensorRT/CUDA, ftedge installed, `ftedge` entry point."""

import json
import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile.jetson"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), re.sub(r"\s+", " ", rest.strip())))
    return out


def test_base_image_is_nvidias_jetpack_6():
    froms = [rest for op, rest in _instructions() if op == "FROM"]
    assert len(froms) == 1
    image, tag = froms[0].split(":")
    assert image == "nvcr.io/nvidia/l4t-jetpack"
    assert re.fullmatch(r"r36\.\d+\.\d+", tag)  # JetPack 6 = L4T R36, as the Orin profiles


def test_installs_torch_for_jetson_then_ftedge_and_checks_tensorrt():
    runs = [rest for op, rest in _instructions() if op == "RUN"]
    torch = next(r for r in runs if "torch" in r and "TORCH_INDEX" in r)
    assert "torchvision" in torch
    ftedge = next(r for r in runs if re.search(r"pip3 install \.(\s|$)", r))
    assert "import tensorrt" in ftedge  # the build fails if JetPack's TensorRT is missing
    copied = " ".join(rest for op, rest in _instructions() if op == "COPY")
    for path in ("pyproject.toml", "setup.py", "ftedge", "targets", "calibration"):
        assert path in copied
    assert runs.index(torch) < runs.index(ftedge)


def test_entry_point_is_ftedge():
    entry = [rest for op, rest in _instructions() if op == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["ftedge"]
