"""TensorRT without a GPU: preflight against recorded device files, plans, trtexec, cache keys."""

from pathlib import Path

import pytest

from ftedge.runtime.tensorrt import plan as trt_plan
from ftedge.runtime.profiles import load_profile

REC = Path(__file__).parent / "recorded"


def test_tegra_release_parsing_from_recorded_files():
    assert trt_plan.parse_tegra_release((REC / "nv_tegra_release_r36").read_text()) == "36.4"
    assert trt_plan.parse_tegra_release((REC / "nv_tegra_release_r35").read_text()) == "35.4"
    assert trt_plan.parse_tegra_release("garbage") is None
    dev = trt_plan.read_device(REC / "nv_tegra_release_r36", REC / "device_tree_model_orin_nano")
    assert dev.l4t == "36.4" and dev.jetson_model.startswith("NVIDIA Jetson Orin Nano")


def _dev(**kw):
    base = dict(l4t="36.4", jetson_model="NVIDIA Jetson Orin Nano", tensorrt="10.3.0",
                cuda="12.6", compute_capability="8.7", gpu="Orin")
    return trt_plan.DeviceInfo(**{**base, **kw})


def test_preflight_on_a_matching_orin_is_clean():
    assert trt_plan.compare_device(load_profile("jetson-orin-nano"), _dev()) == []


@pytest.mark.parametrize("dev,match", [
    (dict(l4t="35.4"), "L4T R35.4 is not the profile's R36.4"),
    (dict(tensorrt="8.6.2"), "TensorRT 8.6.2 is older than the 10.3"),
    (dict(compute_capability="7.2", gpu="Xavier"), "compute capability 7.2"),
    (dict(compute_capability=None), "no CUDA GPU"),
])
def test_preflight_errors_name_the_mismatch(dev, match):
    problems = trt_plan.compare_device(load_profile("jetson-orin-nano"), _dev(**dev))
    errors = [str(p) for p in problems if p.severity == "error"]
    assert any(match in e for e in errors), errors


def test_preflight_without_tensorrt_is_a_warning_not_an_error():
    problems = trt_plan.compare_device(load_profile("tensorrt-x86"),
                                       _dev(tensorrt=None, compute_capability=None, l4t=None))
    assert [p.severity for p in problems] == ["warning"]
    assert "built on the device" in problems[0].message


def _plan(profile="jetson-orin-nano", precision="int8", batch=None, sha="a" * 64):
    return trt_plan.make_plan(Path("model.int8.onnx"), sha, precision, batch=batch,
                              input_shape=(3, 96, 96),
                              profile=load_profile(profile))


def test_int8_plan_is_strongly_typed_with_a_dynamic_batch_profile():
    plan = _plan()
    assert plan.strongly_typed and not plan.int8 and not plan.fp16 and not plan.tf32
    assert (plan.min_batch, plan.opt_batch, plan.max_batch) == (1, 8, 32)
    cmd = trt_plan.trtexec_command(plan)
    assert cmd[:2] == ["trtexec", "--onnx=model.int8.onnx"]
    assert "--stronglyTyped" in cmd and "--int8" not in cmd and "--noTF32" in cmd
    assert "--maxShapes=input:32x3x96x96" in cmd and "--timingCacheFile=timing.cache" in cmd


def test_dla_plan_uses_weak_typing_and_gpu_fallback():
    plan = _plan("jetson-orin-agx-dla", batch=1)
    assert plan.dla_core == 0 and plan.int8 and plan.fp16 and not plan.strongly_typed
    assert not plan.dynamic_batch and (plan.min_batch, plan.max_batch) == (1, 1)
    cmd = trt_plan.trtexec_command(plan)
    assert "--useDLACore=0" in cmd and "--allowGPUFallback" in cmd and "--int8" in cmd
    # the ONNX has a fixed batch: trtexec refuses shape flags for a static model
    assert not [c for c in cmd if c.startswith(("--minShapes", "--optShapes", "--maxShapes"))]


def test_tensorrt_8_plan_for_xavier_is_weakly_typed():
    plan = _plan("jetson-xavier-nx")
    assert not plan.strongly_typed and plan.int8 and plan.fp16 and plan.max_batch == 16
    cmd = trt_plan.trtexec_command(plan)
    assert "--stronglyTyped" not in cmd and "--int8" in cmd  # trtexec 8.5 has no --stronglyTyped


def test_fp16_and_fp32_plans():
    assert _plan(precision="fp16").fp16 and not _plan(precision="fp16").strongly_typed
    fp32 = _plan(precision="fp32")
    assert not (fp32.fp16 or fp32.int8 or fp32.tf32)
    assert "--fp16" not in trt_plan.trtexec_command(fp32)


def test_engine_key_changes_with_onnx_tensorrt_gpu_and_flags():
    plan = _plan()
    key = trt_plan.engine_key(plan, "10.3.0", "8.7")
    assert key == trt_plan.engine_key(_plan(), "10.3.0", "8.7")  # deterministic
    others = {trt_plan.engine_key(_plan(sha="b" * 64), "10.3.0", "8.7"),
              trt_plan.engine_key(plan, "10.4.0", "8.7"),
              trt_plan.engine_key(plan, "10.3.0", "8.6"),
              trt_plan.engine_key(_plan(precision="fp16"), "10.3.0", "8.7"),
              trt_plan.engine_key(_plan(batch=4), "10.3.0", "8.7")}
    assert key not in others and len(others) == 5
    assert trt_plan.timing_cache_name("10.3.0", "8.7") == "timing-trt10.3.0-sm87.cache"
