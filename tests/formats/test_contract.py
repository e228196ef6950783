"""The preprocessing contract: validation, and contracts written before geometry existed."""

from __future__ import annotations

import pytest

from ftedge.errors import RunError
from ftedge.formats.contract import build_contract, check_contract, describe

OLD = {"input_size": [3, 224, 224], "resize": 256, "crop": "center", "interpolation": "bicubic",
       "scale": "1/255", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
       "channel_order": "RGB", "layout": "NCHW", "background": [255, 255, 255]}


def test_an_old_contract_reads_as_what_it_meant():
    c = check_contract(dict(OLD), "old")
    assert (c["geometry"], c["decode"], c["antialias"]) == ("crop", "full", True)
    assert c["reducing_gap"] is None and "reduce" not in describe(c)  # the whole image, as then
    assert c["resize"] == 256 and "crop: short side to 256" in describe(c)
    nearest = check_contract({**OLD, "interpolation": "nearest"}, "old")
    assert nearest["antialias"] is False


def test_build_records_every_choice():
    c = build_contract(input_size=96, resize=110, interpolation="bilinear", mean=(0.1, 0.2, 0.3),
                       std=(1, 2, 3), geometry="letterbox", pad_value=(1, 2, 3), decode="draft")
    assert c["geometry"] == "letterbox" and c["pad_value"] == [1, 2, 3]
    assert c["resize"] == 96  # only crop resizes a short side
    assert c["decode"] == "draft" and c["antialias"] is True
    assert check_contract(dict(c), "again") == c


def test_bilinear_can_be_plain_and_says_so():
    c = build_contract(input_size=96, resize=96, interpolation="bilinear", mean=(0, 0, 0),
                       std=(1, 1, 1), geometry="stretch", antialias=False)
    assert c["antialias"] is False and "bilinear (not antialiased)" in describe(c)
    assert check_contract(dict(c), "again") == c
    old = check_contract({**OLD, "interpolation": "bilinear"}, "old")  # no key: Pillow's
    assert old["antialias"] is True and "bilinear (antialiased)" in describe(old)
    for interpolation, antialias in (("bicubic", False), ("nearest", True)):
        with pytest.raises(RunError, match="antialias"):
            build_contract(input_size=96, resize=96, interpolation=interpolation, mean=(0, 0, 0),
                           std=(1, 1, 1), antialias=antialias)


@pytest.mark.parametrize("change", [
    {"geometry": "fisheye"}, {"decode": "gpu"}, {"interpolation": "lanczos"},
    {"pad_value": [0, 0]}, {"pad_value": [0, 0, 256]}, {"antialias": False}, {"antialias": "no"},
    {"std": [1, 0, 1]}, {"input_size": [3, 0, 4]}, {"layout": "NHWC"}, {"resize": 0},
    {"reducing_gap": 0.5}, {"reducing_gap": "2"}, {"reducing_gap": True},
    {"reducing_gap": float("inf")}, {"reducing_gap": 2.0, "interpolation": "nearest"},
    {"reducing_gap": 2.0, "interpolation": "bilinear", "antialias": False},
    {"draft_margin": 1.0}, {"decode": "draft", "draft_margin": 0.5},
    {"decode": "draft", "draft_margin": 9.0}, {"decode": "draft", "draft_margin": "1"},
    {"decode": "draft", "draft_margin": True}, {"decode": "draft", "draft_margin": float("nan")},
])
def test_malformed_contracts_are_refused_with_the_fix(change):
    with pytest.raises(RunError) as e:
        check_contract({**OLD, **change}, "manifest.json")
    assert "manifest.json" in e.value.message and e.value.hint



def _sealed(folder, contract):
    """A minimal artifact folder sealed by ftedge's own writer."""
    from ftedge.formats.artifact import Manifest, write_manifest

    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not read here")
    m = Manifest(target="onnxruntime-cpu", runtime="onnxruntime", device="cpu",
                 precision="fp32", artifact="model.onnx", built=True, input_name="input",
                 output_name="logits", input_shape=["dynamic", *contract["input_size"]],
                 opset=17, classes=["a", "b"], preprocessing=contract, model_name="m",
                 source={}, versions={}, profile={}, parity={}, files={})
    return write_manifest(folder, m)


def test_an_old_sealed_manifest_still_reads_as_crop(tmp_path):
    """Artifacts exported before geometry was recorded: the seal holds, the contract is crop."""
    from ftedge.formats.artifact import read_manifest

    written = _sealed(tmp_path / "old", dict(OLD))
    assert "geometry" not in written["preprocessing"]  # as an earlier ftedge wrote it
    manifest = read_manifest(tmp_path / "old")
    assert manifest.preprocessing["geometry"] == "crop"
    assert manifest.preprocessing["decode"] == "full"
    assert manifest.preprocessing["reducing_gap"] is None


def test_the_reducing_gap_is_recorded_and_described():
    c = build_contract(input_size=224, resize=256, interpolation="bicubic", mean=(0.5,) * 3,
                       std=(0.5,) * 3, decode="draft", reducing_gap=1)
    assert c["reducing_gap"] == 1.0 and isinstance(c["reducing_gap"], float)
    assert "box-reduced first (reducing gap 1)" in describe(c)
    assert check_contract(dict(c), "again") == c
    off = build_contract(input_size=224, resize=256, interpolation="bicubic", mean=(0.5,) * 3,
                         std=(0.5,) * 3)
    assert off["reducing_gap"] is None  # new runs: off unless asked for


def test_the_draft_margin_is_recorded_and_old_draft_contracts_keep_2():
    kw = dict(input_size=224, resize=256, interpolation="bicubic", mean=(0.5,) * 3,
              std=(0.5,) * 3)
    assert build_contract(**kw)["draft_margin"] is None  # a full decode has no margin
    assert build_contract(**kw, decode="draft")["draft_margin"] == 2.0  # the default
    c = build_contract(**kw, decode="draft", draft_margin=1)
    assert c["draft_margin"] == 1.0 and isinstance(c["draft_margin"], float)
    assert "JPEG draft decode (>= 1x the resize)" in describe(c)
    assert check_contract(dict(c), "again") == c
    # a draft contract written before the key: the margin that code used
    old = check_contract({**OLD, "decode": "draft"}, "old")
    assert old["draft_margin"] == 2.0 and "(>= 2x the resize)" in describe(old)
    assert check_contract(dict(OLD), "old")["draft_margin"] is None
    with pytest.raises(ValueError, match="decode 'draft' only"):
        build_contract(**kw, draft_margin=1.0)


def test_a_new_manifest_round_trips_every_choice(tmp_path):
    from ftedge.formats.artifact import read_manifest

    c = build_contract(input_size=32, resize=32, interpolation="bilinear", mean=(0.5,) * 3,
                       std=(0.25,) * 3, geometry="letterbox", pad_value=(1, 2, 3),
                       decode="draft", reducing_gap=2.5, draft_margin=1.5)
    _sealed(tmp_path / "new", dict(c))
    assert read_manifest(tmp_path / "new").preprocessing == c
