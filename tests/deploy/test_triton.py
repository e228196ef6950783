"""The Triton model repository parses as Triton's ModelConfig and names the right files."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from ftedge.deploy.labels import parse_labels
from tests.deploy.conftest import CLASSES, build_artifact

text_format = pytest.importorskip("google.protobuf.text_format")


@pytest.fixture(scope="module")
def model_config_pb2():
    """tritonclient's ModelConfig, loaded from its file: tritonclient.grpc's __init__ needs
    grpcio, which parsing a config does not."""
    tritonclient = pytest.importorskip("tritonclient", reason="pip install tritonclient")
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    if not path.is_file():
        pytest.skip("this tritonclient has no grpc/model_config_pb2.py")
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # e.g. protobuf's VersionError: runtime older than the generated code
        pytest.skip(f"tritonclient's model_config_pb2 does not load here: {e}")
    return module


def parse(pb2, folder: Path):
    text = (folder / "deploy" / "triton" / "tiny_net" / "config.pbtxt").read_text()
    return text_format.Parse(text, pb2.ModelConfig())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("which, backend, platform, kind", [
    ("ort_artifact", "onnxruntime", "", "KIND_CPU"),
    ("ov_artifact", "openvino", "", "KIND_CPU"),
    ("trt_artifact", "", "tensorrt_plan", "KIND_GPU")])
def test_config_parses_with_the_right_fields(which, backend, platform, kind, request,
                                             model_config_pb2):
    folder, manifest = request.getfixturevalue(which)
    cfg = parse(model_config_pb2, folder)
    pb2 = model_config_pb2
    assert cfg.name == "tiny_net" and cfg.backend == backend and cfg.platform == platform
    assert cfg.max_batch_size == manifest["profile"]["max_batch"] == 8
    (inp,), (out,) = cfg.input, cfg.output
    assert (inp.name, list(inp.dims), inp.data_type) == ("input", [3, 32, 32], pb2.TYPE_FP32)
    assert inp.format == pb2.ModelInput.FORMAT_NCHW
    assert (out.name, list(out.dims), out.data_type) == ("logits", [len(CLASSES)], pb2.TYPE_FP32)
    assert out.label_filename == "labels.txt"
    assert cfg.HasField("dynamic_batching")
    assert list(cfg.dynamic_batching.preferred_batch_size) == [2, 4, 8]
    assert [g.kind for g in cfg.instance_group] == [pb2.ModelInstanceGroup.Kind.Value(kind)]
    labels = folder / "deploy" / "triton" / "tiny_net" / "labels.txt"
    assert parse_labels(labels.read_text(encoding="utf-8")) == CLASSES


def test_config_carries_the_temperature_for_clients(tmp_path, model_config_pb2):
    from tests.deploy.conftest import build_artifact

    folder, _ = build_artifact(tmp_path / "t", "onnxruntime",
                               calibration={"method": "temperature", "temperature": 0.8125})
    cfg = parse(model_config_pb2, folder)
    assert cfg.parameters["ftedge_calibration_temperature"].string_value == "0.8125"
    text = (folder / "deploy" / "triton" / "tiny_net" / "config.pbtxt").read_text()
    assert text.count('key: "ftedge_calibration_temperature"') == 1
    readme = (folder / "deploy" / "README.md").read_text()
    assert "softmax(logits / T) with T = 0.8125" in readme and "cannot apply T" in readme


def test_version_folder_holds_copies_of_the_model(ort_artifact, ov_artifact, trt_artifact):
    ort_folder, ort_manifest = ort_artifact
    one = ort_folder / "deploy" / "triton" / "tiny_net" / "1"
    assert sorted(p.name for p in one.iterdir()) == ["model.onnx"]
    assert sha(one / "model.onnx") == ort_manifest["files"][ort_manifest["artifact"]]
    one = ov_artifact[0] / "deploy" / "triton" / "tiny_net" / "1"
    assert sorted(p.name for p in one.iterdir()) == ["model.bin", "model.xml"]
    assert sha(one / "model.bin") == sha(ov_artifact[0] / "model.bin")
    # no engine yet: no plan is faked; the README says how to copy it in once built
    assert not (trt_artifact[0] / "deploy" / "triton" / "tiny_net" / "1").exists()
    readme = (trt_artifact[0] / "deploy" / "README.md").read_text(encoding="utf-8")
    assert ("mkdir -p deploy/triton/tiny_net/1 && cp model.engine "
            "deploy/triton/tiny_net/1/model.plan") in readme


def test_an_existing_engine_is_copied_as_the_plan(tmp_path):
    from ftedge.deploy.kit import write_deploy_kit
    from tests.deploy.conftest import make_manifest, tiny_onnx

    folder = tmp_path / "built"
    folder.mkdir()
    tiny_onnx(folder / "model.int8.onnx", len(CLASSES))
    (folder / "model.engine").write_bytes(b"engine bytes built on the device")
    manifest = make_manifest("tensorrt", "model.engine", precision="int8",
                             extra={"onnx": "model.int8.onnx"})
    written = write_deploy_kit(folder, manifest)
    assert "deploy/triton/tiny_net/1/model.plan" in written
    assert (folder / "deploy/triton/tiny_net/1/model.plan").read_bytes() == \
        (folder / "model.engine").read_bytes()


def test_fixed_batch_model_gets_max_batch_size_zero(tmp_path, model_config_pb2):
    folder, _ = build_artifact(tmp_path / "b4", "onnxruntime", batch=4)
    cfg = parse(model_config_pb2, folder)
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    assert list(cfg.input[0].dims) == [4, 3, 32, 32]
    assert list(cfg.output[0].dims) == [4, len(CLASSES)]
    assert cfg.input[0].format == model_config_pb2.ModelInput.FORMAT_NONE


def test_preferred_batches_and_config_text_from_the_manifest():
    """deploy/triton.py's own rules, on manifests alone: batching, dims, the unknown output."""
    from ftedge.deploy.triton import (MAX_QUEUE_DELAY_US, TEMPERATURE_PARAMETER, config_pbtxt,
                                      preferred_batch_sizes)
    from tests.deploy.conftest import make_manifest

    assert preferred_batch_sizes(8) == [2, 4, 8] and preferred_batch_sizes(2) == [1, 2]
    assert preferred_batch_sizes(1) == [1]
    dynamic = config_pbtxt(make_manifest("onnxruntime", "model.fp32.onnx"), "tiny")
    assert 'name: "tiny"' in dynamic and "max_batch_size: 8" in dynamic
    assert f"dims: [ {len(CLASSES)} ]" in dynamic and "FORMAT_NCHW" in dynamic
    assert TEMPERATURE_PARAMETER in dynamic and str(MAX_QUEUE_DELAY_US) in dynamic
    fixed = config_pbtxt(make_manifest("onnxruntime", "model.fp32.onnx", batch=4,
                                       unknown={"output": "unknown_score", "score": "knn",
                                                "threshold": 0.25}), "tiny")
    assert "max_batch_size: 0" in fixed and f"dims: [ 4, {len(CLASSES)} ]" in fixed
    assert 'name: "unknown_score"' in fixed and "dims: [ 4, 1 ]" in fixed
    assert "unknown_score" not in dynamic
