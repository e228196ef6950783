"""The DeepStream config's keys and values, and the numpy emulation of what it computes."""

from __future__ import annotations

import configparser

import numpy as np
import pytest
from PIL import Image

from ftedge.deploy.deepstream import (deepstream_normalization, deepstream_style_preprocess,
                                      normalization_error)
from ftedge.deploy.labels import parse_deepstream_labels
from ftedge.data.transforms import eval_transform
from ftedge.deploy.templates.preprocess import preprocess, resize_bilinear
from tests.deploy.conftest import CLASSES, CONTRACT, build_artifact

EQUAL_STD = {**CONTRACT, "mean": [0.5, 0.45, 0.4], "std": [0.25, 0.25, 0.25]}
CONFIG = "deploy/deepstream/config_infer_primary_classifier.txt"


def read_config(folder):
    text = (folder / CONFIG).read_text(encoding="utf-8")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return text, parser["property"]


def test_config_keys_for_an_equal_std_contract(tmp_path):
    folder, manifest = build_artifact(tmp_path / "eq", "tensorrt", contract=EQUAL_STD,
                                      precision="int8")
    text, prop = read_config(folder)
    assert float(prop["net-scale-factor"]) == pytest.approx(1 / (255 * 0.25), rel=1e-8)
    assert [float(o) for o in prop["offsets"].split(";")] == pytest.approx([127.5, 114.75, 102])
    config_dir = (folder / CONFIG).parent
    assert (config_dir / prop["onnx-file"]).resolve() == (folder / "model.int8.onnx").resolve()
    assert prop["model-engine-file"] == "../../model.engine"
    assert parse_deepstream_labels((config_dir / prop["labelfile-path"]).read_text("utf-8")) \
        == CLASSES
    expected = {"model-color-format": "0", "infer-dims": "3;32;32", "batch-size": "8",
                "network-mode": "1", "network-type": "1", "process-mode": "1",
                "output-blob-names": "logits", "maintain-aspect-ratio": "0",
                "network-input-order": "0", "gpu-id": "0", "scaling-filter": "1"}
    assert {k: prop[k] for k in expected} == expected
    assert float(prop["classifier-threshold"]) == 0.0
    assert "int8-calib-file" not in prop and "enable-dla" not in prop
    assert "- normalisation: exact." in text and "normalisation: APPROXIMATED" not in text
    assert "geometry: APPROXIMATED" in text and "raw logits" in text


def test_config_says_what_a_per_channel_std_costs(trt_artifact):
    text, prop = read_config(trt_artifact[0])
    assert "- normalisation: APPROXIMATED. std differs per channel (0.229, 0.224, 0.225)" in text
    assert float(prop["net-scale-factor"]) == pytest.approx(1 / (255 * 0.2265), rel=1e-8)
    for err in normalization_error(CONTRACT):
        assert f"{err:.4f}" in text


@pytest.mark.parametrize("precision, mode", [("fp32", "0"), ("fp16", "2"), ("int8", "1")])
def test_network_mode_follows_the_precision(tmp_path, precision, mode):
    folder, _ = build_artifact(tmp_path / precision, "tensorrt", precision=precision)
    assert read_config(folder)[1]["network-mode"] == mode


def test_dla_profile_and_fixed_batch(tmp_path):
    from ftedge.deploy.kit import write_deploy_kit
    from tests.deploy.conftest import make_manifest, tiny_onnx

    folder = tmp_path / "dla"
    folder.mkdir()
    tiny_onnx(folder / "model.int8.onnx", len(CLASSES), batch=1)
    manifest = make_manifest("tensorrt", "model.engine", batch=1, precision="int8",
                             extra={"onnx": "model.int8.onnx"})
    manifest["profile"]["tensorrt"] = {"use_dla_core": 0}
    write_deploy_kit(folder, manifest)
    prop = read_config(folder)[1]
    assert (prop["batch-size"], prop["enable-dla"], prop["use-dla-core"]) == ("1", "1", "0")


def test_only_tensorrt_gets_a_deepstream_config(ort_artifact, ov_artifact):
    for folder, _ in (ort_artifact, ov_artifact):
        assert not (folder / "deploy" / "deepstream").exists()


def test_normalization_exact_only_for_one_std():
    assert deepstream_normalization(EQUAL_STD).exact
    assert normalization_error(EQUAL_STD) == pytest.approx((0, 0, 0), abs=1e-12)
    norm = deepstream_normalization(CONTRACT)
    assert not norm.exact and norm.offsets == pytest.approx((123.675, 116.28, 103.53))
    assert max(normalization_error(CONTRACT)) < 0.03


@pytest.mark.parametrize("contract", [EQUAL_STD, CONTRACT], ids=["equal_std", "per_channel"])
def test_emulation_matches_the_contract_where_no_geometry_is_involved(contract):
    """A network-sized image: only the normalisation differs, and by what the config says."""
    contract = {**contract, "resize": 32}
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ds = deepstream_style_preprocess(arr, contract)
    ftedge = preprocess(Image.fromarray(arr), contract)
    assert ds.dtype == np.float32 and ds.shape == (3, 32, 32)
    worst = np.abs(ds - ftedge).reshape(3, -1).max(1)
    assert np.all(worst <= np.array(normalization_error(contract)) + 1e-5)


def test_emulation_stretches_or_letterboxes():
    contract = {**EQUAL_STD, "resize": 32}
    wide = np.full((16, 64, 3), 200, np.uint8)
    norm = deepstream_normalization(contract)
    black = np.float32(norm.net_scale_factor) * (0 - np.float32(norm.offsets)).reshape(3, 1)
    stretched = deepstream_style_preprocess(wide, contract)
    assert np.allclose(stretched, stretched[:, :1, :1])  # a flat image stays flat
    boxed = deepstream_style_preprocess(wide, contract, maintain_aspect_ratio=True)
    assert np.allclose(boxed[:, :12].reshape(3, -1), black)  # 64x16 -> 32x8, centred
    assert np.allclose(boxed[:, 20:].reshape(3, -1), black)
    assert np.allclose(boxed[:, 12:20], stretched[:, 12:20])
    corner = deepstream_style_preprocess(wide, contract, maintain_aspect_ratio=True,
                                         symmetric_padding=False)
    assert np.allclose(corner[:, 8:].reshape(3, -1), black)  # image top, padding below


def test_emulation_takes_pil_images_of_any_mode():
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent: the background
    out = deepstream_style_preprocess(rgba, {**EQUAL_STD, "background": [0, 0, 0]})
    norm = deepstream_normalization(EQUAL_STD)
    assert np.allclose(out, np.float32(norm.net_scale_factor)
                       * (0 - np.float32(norm.offsets)).reshape(3, 1, 1))
    with pytest.raises(ValueError, match="RGB uint8"):
        deepstream_style_preprocess(np.zeros((4, 4), np.uint8), EQUAL_STD)


def test_a_plain_bilinear_contract_is_the_emulation_byte_for_byte():
    """Stretch + bilinear not antialiased: ftedge's eval transform, infer.py's numpy and the
    DeepStream emulation give the same pixels, where Pillow's antialiased bilinear does not."""
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)  # shrinks 3.3x / 4.4x to 16x12
    plain = {**CONTRACT, "input_size": [3, 12, 16], "geometry": "stretch",
             "interpolation": "bilinear", "antialias": False, "resize": 12}
    smooth = {**plain, "antialias": True}
    emulated = deepstream_style_preprocess(arr, plain, exact_normalization=True)
    kit = preprocess(Image.fromarray(arr), plain)
    ours = eval_transform(plain)(Image.fromarray(arr)).numpy()
    assert emulated.tobytes() == kit.tobytes() == ours.tobytes()
    antialiased = preprocess(Image.fromarray(arr), smooth)
    assert np.abs(antialiased - kit).max() > 0.1  # the two filters really differ here


def test_resize_bilinear_is_half_pixel_and_clamped():
    row = np.array([[0, 100, 200, 250]], np.uint8)[..., None].repeat(3, 2)
    # 4 -> 2: centres at source 0.5 and 2.5, each the mean of two pixels (rounded half up)
    assert resize_bilinear(row, 1, 2)[0, :, 0].tolist() == [50, 225]
    # 4 -> 8: the outer centres fall before pixel 0 / after pixel 3 and clamp to them
    up = resize_bilinear(row, 1, 8)[0, :, 0].tolist()
    assert up[0] == 0 and up[-1] == 250 and up[1] == 25  # source 0.25: 0.75*0 + 0.25*100
