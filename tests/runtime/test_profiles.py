"""Target profiles: every shipped one loads, bad ones fail naming the valid values."""

import pytest

from ftedge.errors import ConfigError
from ftedge.runtime.profiles import check_precision, load_profile, parse_batch, profile_names

REQUIRED = {"onnxruntime-cpu", "openvino-cpu", "openvino-gpu", "openvino-npu", "tensorrt-x86",
            "jetson-orin-nano", "jetson-orin-agx", "jetson-xavier-nx"}


def test_every_required_profile_ships_and_loads():
    names = set(profile_names())
    assert REQUIRED <= names
    for name in names:
        p = load_profile(name)
        assert p.name == name and p.default_precision in p.precisions
        if p.runtime == "tensorrt":
            assert p.tensorrt is not None and p.tensorrt.min_version
        if name.startswith("jetson"):
            assert p.jetson.jetpack and p.jetson.l4t and p.tensorrt.compute_capability


def test_profiles_hold_device_facts():
    nano, agx, xavier = (load_profile(n) for n in ("jetson-orin-nano", "jetson-orin-agx",
                                                   "jetson-xavier-nx"))
    assert nano.tensorrt.compute_capability == "8.7" and nano.tensorrt.dla_cores == 0
    assert agx.tensorrt.dla_cores == 2
    assert xavier.tensorrt.compute_capability == "7.2" and xavier.jetson.l4t.startswith("35")
    npu = load_profile("openvino-npu")
    assert npu.static_shapes and "fp32" not in npu.precisions


def test_unknown_key_names_the_valid_ones(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\nruntime: onnxruntime\ndevice: cpu\nthreads_per_core: 2\n")
    with pytest.raises(ConfigError, match="threads_per_core") as e:
        load_profile(f)
    assert "precisions" in str(e.value)


def test_own_yaml_works_as_a_target(tmp_path):
    f = tmp_path / "edge-box.yaml"
    f.write_text("name: edge-box\nruntime: openvino\ndevice: CPU\nprecisions: [int8]\n"
                 "default_precision: int8\ntolerances: {int8_top1_agreement: 0.98}\n")
    p = load_profile(f)
    assert p.precisions == ("int8",) and p.tolerances.int8_top1_agreement == 0.98


@pytest.mark.parametrize("body,match", [
    ("runtime: onnxruntime\ndevice: cpu\nprecisions: [fp32, int4]\n", "int4"),
    ("runtime: tflite\ndevice: cpu\n", "onnxruntime, openvino, tensorrt"),
    ("runtime: openvino\ndevice: VPU\n", "CPU, GPU, NPU"),
    ("runtime: onnxruntime\ndevice: cpu\nopset: 11\n", "opset 11"),
])
def test_bad_values_are_errors(tmp_path, body, match):
    f = tmp_path / "bad.yaml"
    f.write_text("name: bad\n" + body)
    with pytest.raises(ConfigError, match=match):
        load_profile(f)


def test_unsupported_precision_and_dynamic_batch_on_static_device():
    npu = load_profile("openvino-npu")
    with pytest.raises(ConfigError, match="fp16, int8"):
        check_precision("fp32", npu)
    with pytest.raises(ConfigError, match="static shapes"):
        parse_batch("dynamic", npu)
    assert parse_batch(None, npu) == 1 and parse_batch("4", npu) == 4
    with pytest.raises(ConfigError, match=r"an integer in 1\.\."):
        parse_batch("0", npu)


def test_unknown_target_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="jetson-orin-nano"):
        load_profile("jetson-nano-2015")


@pytest.mark.parametrize("body,match", [
    ("name: ../../x\nruntime: onnxruntime\ndevice: cpu\n", "letters, digits"),
    ("name: d\nruntime: tensorrt\ndevice: dla\ntensorrt: {dla_cores: 2}\n", "go together"),
    ("name: d\nruntime: tensorrt\ndevice: dla\ntensorrt: {dla_cores: 2, use_dla_core: 2}\n",
     "not one of"),
    ("name: d\nruntime: onnxruntime\ndevice: cpu\ntolerances: {int8_top1_agreement: 99}\n",
     "fraction"),
    ("name: d\nruntime: onnxruntime\ndevice: cpu\nbatch: 2.5\n", "positive integer"),
])
def test_more_bad_profiles(tmp_path, body, match):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(ConfigError, match=match):
        load_profile(f)
