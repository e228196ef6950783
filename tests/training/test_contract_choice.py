"""A new run's preprocessing contract: --preprocess, --filter, --decode and --target."""

from __future__ import annotations

import pytest

from ftedge.config import build_tune_config, nest_overrides
from ftedge.errors import ConfigError
from ftedge.training.data_setup import run_contract


def _contract(**flat):
    return run_contract(build_tune_config(None, nest_overrides({"data": "x", **flat})))


def test_default_is_todays_crop_with_the_models_filter():
    c = _contract()
    assert (c["geometry"], c["interpolation"], c["decode"]) == ("crop", "bicubic", "full")
    assert c["reducing_gap"] is None
    assert c["resize"] == 256 and c["input_size"] == [3, 224, 224]


def test_a_deepstream_target_trains_for_its_pipeline():
    c = _contract(target="jetson-orin-nano")
    # nvinfer's scaling-filter=1: bilinear without antialiasing
    assert (c["geometry"], c["interpolation"], c["antialias"]) == ("stretch", "bilinear", False)
    # --filter names Pillow's filter, antialiased as Pillow does it
    c = _contract(target="jetson-orin-nano", filter="bilinear")
    assert (c["geometry"], c["interpolation"], c["antialias"]) == ("stretch", "bilinear", True)
    # what the user asked for wins over the target's
    c = _contract(target="jetson-orin-nano", preprocess="letterbox")
    assert (c["geometry"], c["interpolation"]) == ("letterbox", "bilinear")
    # a target whose device runs ftedge's own contract changes nothing
    assert _contract(target="openvino-cpu")["geometry"] == "crop"


def test_choices_are_checked():
    with pytest.raises(ConfigError, match="preprocess.geometry"):
        _contract(preprocess="fisheye")
    with pytest.raises(ConfigError, match="unknown target"):
        _contract(target="no-such-device")
    for gap in (0.5, 65.0):
        with pytest.raises(ConfigError, match="reducing_gap must be a number from 1 to 64"):
            _contract(reducing_gap=gap)
    for gap in (float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="reducing_gap must be null or a finite number"):
            _contract(reducing_gap=gap)
    with pytest.raises(ConfigError, match="reducing_gap 2 with the nearest filter") as e:
        _contract(filter="nearest", reducing_gap=2.0)
    assert "--filter bicubic" in e.value.hint
    with pytest.raises(ConfigError, match="not antialiased, as nvinfer scales"):
        _contract(target="jetson-orin-nano", reducing_gap=2.0)
    assert _contract(decode="draft", reducing_gap=1.0)["reducing_gap"] == 1.0
    assert _contract(decode="draft")["draft_margin"] == 2.0
    assert _contract(decode="draft", draft_margin=1.0)["draft_margin"] == 1.0
    for margin in (0.5, 8.5):
        with pytest.raises(ConfigError, match="draft_margin must be a number from 1 to 8"):
            _contract(decode="draft", draft_margin=margin)
    with pytest.raises(ConfigError, match="it needs preprocess.decode: draft"):
        _contract(draft_margin=1.0)  # a full decode: the margin would do nothing
    c = _contract(preprocess="stretch", filter="nearest", decode="draft")
    assert (c["geometry"], c["interpolation"], c["antialias"], c["decode"]) == (
        "stretch", "nearest", False, "draft")


def test_a_run_tuned_for_a_deepstream_target_gates_as_the_device_preprocesses(colour_data,
                                                                               tmp_path):
    import json

    from ftedge.stages.tune import tune

    res = tune(data=str(colour_data), model="mobilenet_v3_small", weights="none", img_size=32,
               epochs=2, qat=True, qat_epochs=1, target="jetson-orin-nano",
               out=str(tmp_path / "run"))
    contract = json.loads((res.run_dir / "preprocessing.json").read_text())
    assert (contract["geometry"], contract["interpolation"], contract["antialias"]) == (
        "stretch", "bilinear", False)
    gate = json.loads((res.run_dir / "gate.json").read_text())
    emulated = gate["device_pipeline"]
    assert emulated["pipeline"] == "deepstream" and emulated["geometry"] == "stretch"
    assert emulated["top1_exact_contract"] == gate["int8_top1"]
    assert 0 <= emulated["top1_emulated"] <= 1 and emulated["emulation"]["cannot"]
    assert "As the device preprocesses" in (res.run_dir / "gate.md").read_text()
