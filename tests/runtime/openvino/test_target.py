"""runtime/openvino/target.py: compile settings, preflight, and an FP32 IR that computes what
the ONNX computes."""

import dataclasses

import numpy as np
import pytest

from ftedge.runtime.base import SourceModel
from ftedge.runtime.openvino.target import OpenVinoTarget, compile_config
from ftedge.runtime.profiles import load_profile
from tests.deploy.conftest import tiny_onnx

pytest.importorskip("openvino", reason="OpenVINO is not installed (extra: openvino)")


def test_compile_config_follows_the_profile():
    cpu = load_profile("openvino-cpu")
    assert compile_config(cpu, None) == {"INFERENCE_PRECISION_HINT": "f32"}
    assert compile_config(cpu, 3)["INFERENCE_NUM_THREADS"] == 3
    gpu = dataclasses.replace(cpu, device="GPU", inference_precision=None)
    assert compile_config(gpu, 3) == {}  # thread count is a CPU setting


def test_preflight_warns_about_a_device_this_machine_lacks():
    cpu = load_profile("openvino-cpu")
    assert OpenVinoTarget().preflight(cpu) == []
    problems = OpenVinoTarget().preflight(dataclasses.replace(cpu, device="NPU.7"))
    assert [p.severity for p in problems] == ["warning"] and "IR is written" in str(problems[0])


@pytest.mark.parametrize("batch", [None, 2])
def test_fp32_export_runs_like_the_onnx(tmp_path, batch):
    import onnxruntime as ort

    src = tiny_onnx(tmp_path / "src.onnx", 4)
    out = tmp_path / "art"
    out.mkdir()
    profile = load_profile("openvino-cpu")
    art = OpenVinoTarget().export(SourceModel(src, "fp32", "fp32", batch, (3, 32, 32)),
                                  profile, out)
    assert art.file == "model.xml" and (out / "model.bin").is_file() and art.extra == {}
    x = np.random.default_rng(0).normal(0, 1, (5, 3, 32, 32)).astype(np.float32)
    want = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    got = OpenVinoTarget().runner(art, profile).infer(x)  # a fixed batch of 2 splits 5 images
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
