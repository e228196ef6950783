"""runtime/tensorrt/target.py off the device: preflight, the export's ONNX + plan + trtexec
command, and the engine check's refusals. A stand-in `tensorrt` module is used only where
our code merely needs the import to succeed (check_engine compares recorded facts); nothing
here builds or runs an engine (tests/runtime/tensorrt/test_tensorrt_gpu.py does, on a GPU)."""

import os
import sys
import types

import pytest

from ftedge.errors import ExportError
from ftedge.io import atomic_write_json, sha256_file
from ftedge.runtime.base import SourceModel
from ftedge.runtime.profiles import load_profile
from ftedge.runtime.tensorrt import plan as trt_plan
from ftedge.runtime.tensorrt import target as trt_target
from ftedge.runtime.tensorrt.target import ENGINE, PLAN, TensorRTTarget
from tests.deploy.conftest import tiny_onnx

ORIN = trt_plan.DeviceInfo(l4t="36.4", jetson_model="NVIDIA Jetson Orin Nano",
                           tensorrt="10.3.0", cuda="12.6", compute_capability="8.7", gpu="Orin")
HOST = trt_plan.DeviceInfo()  # no Jetson files, no TensorRT, no GPU


def _device(monkeypatch, dev):
    monkeypatch.setattr(trt_plan, "read_device", lambda *a, **k: dev)


@pytest.fixture
def exported(tmp_path, monkeypatch):
    _device(monkeypatch, HOST)
    src = tiny_onnx(tmp_path / "src.onnx", 3)
    out = tmp_path / "art"
    out.mkdir()
    source = SourceModel(src, "fp32", "fp32", None, (3, 32, 32))
    return TensorRTTarget().export(source, load_profile("jetson-orin-nano"), out)


def test_preflight_compares_this_device_with_the_profile(monkeypatch):
    profile = load_profile("jetson-orin-nano")
    _device(monkeypatch, ORIN)
    assert TensorRTTarget().preflight(profile) == []
    _device(monkeypatch, HOST)
    problems = TensorRTTarget().preflight(profile)
    assert any("TensorRT is not installed here" in str(p) for p in problems)


def test_export_off_the_device_writes_the_onnx_the_plan_and_the_trtexec_line(exported):
    art = exported
    assert not art.built and art.file == "model.fp32.onnx" and art.extra["engine"] == ENGINE
    plan = trt_plan.load_plan(art.folder / PLAN)
    assert plan.onnx == "model.fp32.onnx"
    assert plan.onnx_sha256 == sha256_file(art.folder / "model.fp32.onnx")
    assert plan.profile_shapes()["max"][0] == load_profile("jetson-orin-nano").max_batch
    script = (art.folder / "trtexec.sh").read_text()
    assert art.extra["trtexec"] in script and "--onnx=model.fp32.onnx" in script
    assert os.access(art.folder / "trtexec.sh", os.X_OK) and not (art.folder / ENGINE).exists()


def test_a_plan_only_folder_off_the_device_says_where_to_build(exported, monkeypatch):
    with pytest.raises(ExportError, match="holds the build plan, not an engine") as e:
        TensorRTTarget().runner(exported, load_profile("jetson-orin-nano"))
    assert "trtexec.sh" in e.value.hint


def _engine(art, dev, **record):
    (art.folder / ENGINE).write_bytes(b"serialized engine")
    plan = trt_plan.load_plan(art.folder / PLAN)
    atomic_write_json(art.folder / "engine.json", {
        "key": trt_plan.engine_key(plan, dev.tensorrt, dev.compute_capability),
        "tensorrt": dev.tensorrt, "compute_capability": dev.compute_capability,
        "engine_sha256": sha256_file(art.folder / ENGINE), **record})
    return plan


@pytest.mark.parametrize("change, want", [
    (None, None),
    ("tensorrt", "built by TensorRT 10.0.1, this device has 10.3.0"),
    ("gpu", "built for sm 7.2, this GPU is sm 8.7"),
    ("engine", "is not the file that was built"),
    ("onnx", "changed since the plan was written"),
    ("key", "built with other flags or shapes"),
])
def test_the_engine_check_refuses_an_engine_built_for_something_else(exported, monkeypatch,
                                                                      change, want):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    art = exported
    record = {"tensorrt": {"tensorrt": "10.0.1"}, "gpu": {"compute_capability": "7.2"},
              "key": {"key": "0" * 16}}.get(change, {})
    plan = _engine(art, ORIN, **record)
    if change == "engine":
        (art.folder / ENGINE).write_bytes(b"another engine")
    if change == "onnx":
        (art.folder / plan.onnx).write_bytes(b"edited")
    if want is None:
        assert TensorRTTarget().check_engine(art, plan, ORIN) == b"serialized engine"
        return
    with pytest.raises(ExportError, match=want) as e:
        TensorRTTarget().check_engine(art, plan, ORIN)
    assert "--target jetson-orin-nano --precision fp32 --force" in e.value.hint


def test_no_engine_yet_is_named_with_the_build_command(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    plan = trt_plan.load_plan(exported.folder / PLAN)
    with pytest.raises(ExportError, match="holds no engine yet"):
        TensorRTTarget().check_engine(exported, plan, ORIN)


def test_versions_without_tensorrt(monkeypatch):
    _device(monkeypatch, HOST)
    assert TensorRTTarget().versions() == {
        "tensorrt": "not installed (engine built on the device)", "cuda": "none"}
    _device(monkeypatch, ORIN)
    assert TensorRTTarget().versions() == {"tensorrt": "10.3.0", "cuda": "12.6"}
    assert trt_target.ENGINE_FILES[0] == ENGINE  # the files built later are the engine's
