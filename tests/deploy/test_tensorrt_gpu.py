"""deploy/infer.py on a real TensorRT engine (NVIDIA GPU, TensorRT, cuda-python). Skips without."""

from __future__ import annotations

import hashlib
import json

import pytest

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (NVIDIA GPU + JetPack "
                                             "or NVIDIA's pip index needed)")
try:
    from cuda.bindings import runtime as cudart
except ImportError:
    cudart = pytest.importorskip("cuda.cudart", reason="cuda-python is not installed")
pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]


@pytest.fixture(autouse=True)
def _need_gpu():
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        pytest.skip("no CUDA GPU visible")


def build_engine(onnx_path, engine_path, max_batch: int) -> None:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(onnx_path)), parser.get_error(0)
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)  # FP32 stays FP32: probabilities within 1e-3
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 3, 32, 32), (max_batch, 3, 32, 32), (max_batch, 3, 32, 32))
    config.add_optimization_profile(profile)
    engine_path.write_bytes(bytes(builder.build_serialized_network(network, config)))


def test_tensorrt_script_matches_onnxruntime_and_checks_the_engine(tmp_path, images):
    from tests.deploy.conftest import build_artifact, run_infer
    from tests.deploy.test_infer_script import reference

    folder, manifest = build_artifact(tmp_path / "trt", "tensorrt", precision="fp32")
    engine = folder / "model.engine"
    build_engine(folder / "model.fp32.onnx", engine, max_batch=8)
    (folder / "engine.json").write_text(json.dumps(
        {"engine_sha256": hashlib.sha256(engine.read_bytes()).hexdigest()}))
    paths = list(images.values())
    res = run_infer(folder / "deploy" / "infer.py", *paths, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    want = reference(folder, manifest, paths)
    for r, p in zip(json.loads(res.stdout), want):
        assert r["top"][0]["index"] == int(p.argmax())
        for t in r["top"]:
            assert t["probability"] == pytest.approx(p[t["index"]], abs=1e-3)
    engine.write_bytes(engine.read_bytes() + b"\0")
    res = run_infer(folder / "deploy" / "infer.py", paths[0], cwd=tmp_path)
    assert res.returncode == 2 and "not the engine recorded in engine.json" in res.stderr
