"""Shared fixtures: tiny synthetic datasets that a small model learns in a few epochs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("FTEDGE_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def make_image(colour, rng: np.random.Generator, size: int = 24) -> Image.Image:
    """A noisy image dominated by `colour`: trivially separable, so tiny runs converge."""
    base = np.array(colour, dtype=np.float32)
    arr = base + rng.normal(0, 25, (size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def write_class_folders(root: Path, per_class: int = 10, seed: int = 0,
                        classes=tuple(COLOURS)) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make_image(COLOURS[name], rng).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture
def colour_data(tmp_path) -> Path:
    """3 classes x 12 PNGs, no val folder."""
    return write_class_folders(tmp_path / "colours", per_class=12)


def tiny_options(root: Path) -> dict:
    """Options for a seconds-long CPU run: Lite0 from its ImageNet weights at 32 px. No label
    check (2-5 s a run, mostly its 5-fold fit: tests/stages/tune/test_label_check.py has it)."""
    return dict(model="efficientnet_lite0", weights="imagenet", img_size=32, epochs=4,
                head_epochs=1, batch_size=8, lr=0.005, device="cpu", workers=0, seed=0,
                out=str(root / "run"), label_check=False)


@pytest.fixture
def tiny_tune_options(tmp_path) -> dict:
    return tiny_options(tmp_path)


@pytest.fixture(scope="session")
def qat_run(tmp_path_factory):
    """One tiny `ftedge tune --qat` run (Lite0, 32 px) shared by the quant and export tests."""
    import ftedge

    root = tmp_path_factory.mktemp("qat")
    data = write_class_folders(root / "colours", per_class=12)
    return ftedge.tune(data=str(data), **dict(tiny_options(root), qat=True, qat_epochs=2))


def full_range_copy(src: Path, dst: Path) -> None:
    """The same graph with every non-depthwise weight on the full INT8 range: codes doubled,
    scales halved (the same values, but u8 x s8 pair sums can now overflow)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    inits = {t.name: t for t in model.graph.initializer}
    users = {}
    for n in model.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    for n in model.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits:
            continue
        w = numpy_helper.to_array(inits[n.input[0]])
        conv = users[n.output[0]][0]
        group = next((a.i for a in conv.attribute if a.name == "group"), 1)
        if w.dtype != np.int8 or w.ndim < 2 or group > 1:
            continue
        inits[n.input[0]].CopyFrom(numpy_helper.from_array(
            np.clip(w.astype(np.int16) * 2, -128, 127).astype(np.int8), n.input[0]))
        scale = numpy_helper.to_array(inits[n.input[1]])
        inits[n.input[1]].CopyFrom(numpy_helper.from_array(scale / 2, n.input[1]))
    onnx.save(model, str(dst))


def run_images(run) -> list:
    """A run's val and train images, preprocessed as its contract says (one array in a list)."""
    from ftedge.data.transforms import preprocess_samples
    from ftedge.formats.run import RunFolder
    from ftedge.runtime.pytorch.runner import load_run

    loaded = load_run(run.run_dir)
    folder = RunFolder(run.run_dir)
    samples = folder.samples("val", loaded.classes) + folder.samples("train", loaded.classes)
    return [preprocess_samples(samples, loaded.contract)]


def tiny_convnet(classes: int = 3, seed: int = 0):
    """Conv-BN-ReLU, Conv-ReLU, pooling and a linear head: the smallest model prepare_qat turns
    into a Q/DQ graph (3 INT8 layers), for tests of the QAT stage and the gate without training."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, classes)).eval()


def pytest_configure(config):
    """Under pytest-xdist (`-n auto`, what .ci/run uses) each worker gets one of the machine's cores:
    torch's intra-op threads would otherwise put 2 x cores threads on the cores, and the tiny
    models of these tests run slower split over threads than on one."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
