"""runtime/kit.py and runtime/<name>/deploy.py: each runtime's part of the deploy kit comes
from its own folder, and deploy/ names no runtime."""

from __future__ import annotations

import pytest

from ftedge.errors import DeployError, ExportError
from ftedge.formats.artifact import SATURATES_WITHOUT_VNNI
from ftedge.runtime.kit import KitPieces, kit_pieces, kit_runtimes, vnni_caveat
from ftedge.runtime.onnxruntime.deploy import OnnxRuntimeKit
from ftedge.runtime.openvino.deploy import OpenVinoKit
from ftedge.runtime.tensorrt.deploy import TensorRTKit, onnx_name

FLAGGED = {"graph": {SATURATES_WITHOUT_VNNI: True, "weight_max_abs": 127}}


def test_the_kit_runtimes_are_the_folders_with_a_deploy_module():
    assert kit_runtimes() == ("onnxruntime", "openvino", "tensorrt")  # pytorch has no kit
    with pytest.raises(ExportError, match="no deploy kit for runtime 'pytorch'"):
        kit_pieces("pytorch")
    kinds = [type(kit_pieces(name)) for name in kit_runtimes()]
    assert kinds == [OnnxRuntimeKit, OpenVinoKit, TensorRTKit]  # each from its own folder
    for name in kit_runtimes():
        pieces = kit_pieces(name)
        assert isinstance(pieces, KitPieces) and pieces.runtime == name
        assert pieces.runner.RUNTIME == name  # its infer.py runner piece


def test_each_runtime_serves_its_own_files_in_triton(tmp_path):
    ort = {"artifact": "model.int8.onnx"}
    assert kit_pieces("onnxruntime").triton_files(tmp_path, ort) == {"model.onnx": "model.int8.onnx"}
    ov = {"artifact": "model.xml", "device": "CPU"}
    assert kit_pieces("openvino").triton_files(tmp_path, ov) == {"model.xml": "model.xml",
                                                                  "model.bin": "model.bin"}
    assert kit_pieces("openvino").triton_parameters(ov) == {"TARGET_DEVICE": "CPU"}
    trt, pieces = {"artifact": "model.int8.onnx", "extra": {"engine": "m.engine"}}, \
        kit_pieces("tensorrt")
    assert pieces.triton_files(tmp_path, trt) == {} and pieces.model_files(tmp_path, trt) == []
    (tmp_path / "m.engine").write_bytes(b"plan")  # built on the device, after the export
    assert pieces.triton_files(tmp_path, trt) == {"model.plan": "m.engine"}
    assert pieces.model_files(tmp_path, trt) == ["m.engine"]
    assert [kit_pieces(n).triton_kind for n in kit_runtimes()] == ["KIND_CPU", "KIND_CPU",
                                                                     "KIND_GPU"]
    assert [kit_pieces(n).deepstream for n in kit_runtimes()] == [False, False, True]


def test_only_a_device_built_model_gets_build_steps(tmp_path):
    trt = {"artifact": "model.int8.onnx", "extra": {"engine": "m.engine"}}
    assert "sh trtexec.sh        # writes m.engine from model.int8.onnx" in \
        kit_pieces("tensorrt").build_step(tmp_path, trt)
    assert "cp m.engine deploy/triton/net/1/model.plan" in \
        kit_pieces("tensorrt").triton_build_step(trt, "net")
    for name in ("onnxruntime", "openvino"):
        assert kit_pieces(name).build_step(tmp_path, {"artifact": "a"}) == ""
        assert kit_pieces(name).triton_build_step({"artifact": "a"}, "net") == ""


def test_the_tensorrt_engine_source_is_named_or_the_only_onnx(tmp_path):
    assert onnx_name(tmp_path, {"artifact": "x.engine", "extra": {"onnx": "a.onnx"}}) == "a.onnx"
    assert onnx_name(tmp_path, {"artifact": "b.onnx"}) == "b.onnx"
    (tmp_path / "c.onnx").write_bytes(b"")
    assert onnx_name(tmp_path, {"artifact": "x.engine"}) == "c.onnx"
    (tmp_path / "d.onnx").write_bytes(b"")
    with pytest.raises(DeployError, match=r"found \['c.onnx', 'd.onnx'\]"):
        onnx_name(tmp_path, {"artifact": "x.engine"})


def test_the_vnni_caveat_is_worded_by_the_runtime():
    assert vnni_caveat("onnxruntime", {"graph": {}}) is None
    assert vnni_caveat("openvino", "not a dict") is None
    ort = vnni_caveat("onnxruntime", FLAGGED)
    assert ort.startswith("its INT8 weights use the full 8-bit range (largest |q| 127): on x86")
    assert "QDQS8ToU8Transformer turned off" in ort
    ov = vnni_caveat("openvino", FLAGGED)
    assert "retrain with qat.weight_bits: 7" in ov and "QDQS8ToU8Transformer" not in ov
    assert vnni_caveat("pytorch", FLAGGED) == ov  # a runtime without a kit: the default words
    assert "do not serve this model" in kit_pieces("onnxruntime").triton_caveat(
        {"extra": FLAGGED})
    assert kit_pieces("onnxruntime").triton_caveat({"extra": {}}) == ""
