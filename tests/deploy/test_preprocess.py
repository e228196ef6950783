"""infer.py's numpy preprocessing (which ftedge's stages run too) equals ftedge's torchvision
statement of the contract (eval_transform, training's geometry) bit for bit."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ftedge.data.transforms import decode_image, eval_transform
from ftedge.deploy.templates import preprocess as template
from tests.deploy.conftest import CONTRACT


def _load_script(path):
    spec = importlib.util.spec_from_file_location("generated_infer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the __main__ guard keeps main() from running
    return module


CONTRACTS = {
    "bilinear": {**CONTRACT, "interpolation": "bilinear"},
    "bicubic": {**CONTRACT, "interpolation": "bicubic"},
    "nearest": {**CONTRACT, "interpolation": "nearest"},
    # odd excess on the short side: crop offsets round half to even
    "bilinear_odd_excess": {**CONTRACT, "resize": 37},
    # resize below the crop: the image is zero-padded before cropping
    "bicubic_padded": {**CONTRACT, "interpolation": "bicubic", "resize": 27},
    "grey_background_equal_std": {**CONTRACT, "background": [10, 200, 30],
                                  "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
}
# every geometry x filter x decode mode (the crop ones above cover crop's edge cases)
for _g in ("crop", "stretch", "letterbox"):
    for _f in ("bicubic", "bilinear", "nearest"):
        for _d in ("full", "draft"):
            CONTRACTS[f"{_g}_{_f}_{_d}"] = {**CONTRACT, "geometry": _g, "interpolation": _f,
                                            "decode": _d, "pad_value": [114, 7, 250]}
        # bilinear without antialiasing (DeepStream's scaler): resize_bilinear, not Pillow
        CONTRACTS[f"{_g}_plain_bilinear_{_d}"] = {
            **CONTRACT, "geometry": _g, "interpolation": "bilinear", "antialias": False,
            "decode": _d, "pad_value": [114, 7, 250]}


# a reducing gap (Pillow's resize(reducing_gap=G): box-reduce, then the filter) for every
# geometry and antialiased filter; 1.0 reduces the 400x300 test JPEG to 36 px by 8x8 boxes
for _g in ("crop", "stretch", "letterbox"):
    for _f in ("bicubic", "bilinear"):
        for _gap in (1.0, 2.5):
            CONTRACTS[f"{_g}_{_f}_gap{_gap:g}"] = {**CONTRACT, "geometry": _g,
                                                   "interpolation": _f, "reducing_gap": _gap}
    CONTRACTS[f"{_g}_bicubic_draft_gap1"] = {**CONTRACT, "geometry": _g,
                                             "interpolation": "bicubic", "decode": "draft",
                                             "reducing_gap": 1.0}
    # the smallest DCT scale that covers the resize (draft_margin 1): 1/8 of the test JPEG,
    # where the default margin of 2 keeps 1/4
    CONTRACTS[f"{_g}_bicubic_draft_margin1"] = {**CONTRACT, "geometry": _g,
                                                "interpolation": "bicubic", "decode": "draft",
                                                "draft_margin": 1.0}


def torchvision_reference(paths, contract) -> np.ndarray:
    """ftedge's decode, then its torchvision eval_transform: an independent statement of the
    contract (ftedge's stages run the kit's preprocess itself, so they are no reference)."""
    transform = eval_transform(contract)
    return np.stack([transform(decode_image(p, contract)).numpy() for p in paths])


@pytest.mark.parametrize("name", CONTRACTS)
def test_template_equals_ftedge_bit_for_bit(images, name):
    contract = CONTRACTS[name]
    paths = list(images.values())
    want = torchvision_reference(paths, contract)
    got = np.stack([template.preprocess_file(p, contract) for p in paths])
    assert got.dtype == np.float32 and got.shape == want.shape == (len(paths), 3, 32, 32)
    if contract.get("decode") == "draft":  # the mode did something: not a full decode
        full = {**contract, "decode": "full"}
        big = images["big.jpg"]
        assert not np.array_equal(template.preprocess_file(big, full),
                                  template.preprocess_file(big, contract))
        if contract.get("draft_margin") is not None:  # and the margin: not the default's scale
            default = {**contract, "draft_margin": None}
            assert not np.array_equal(template.preprocess_file(big, default),
                                      template.preprocess_file(big, contract))
    if contract.get("reducing_gap") is not None:  # the gap did something: not the filter alone
        whole = {**contract, "reducing_gap": None}
        big = images["big.jpg"]
        assert not np.array_equal(template.preprocess_file(big, whole),
                                  template.preprocess_file(big, contract))
    bad = [p.name for p, a, b in zip(paths, got, want) if not np.array_equal(a, b)]
    assert not bad, f"differs from ftedge for {bad}"


def test_generated_scripts_preprocess_like_ftedge(ort_artifact, ov_artifact, trt_artifact,
                                                  images):
    """The assembled scripts, not only the template module, for each runtime."""
    paths = list(images.values())
    contract = CONTRACTS["bicubic_padded"]
    want = torchvision_reference(paths, contract)
    others = [CONTRACTS["letterbox_bicubic_draft"], CONTRACTS["stretch_bilinear_draft"],
              CONTRACTS["crop_bicubic_draft_gap1"], CONTRACTS["letterbox_bilinear_gap2.5"],
              CONTRACTS["crop_bicubic_draft_margin1"]]
    wants = [torchvision_reference(paths, c) for c in others]
    for folder, _ in (ort_artifact, ov_artifact, trt_artifact):
        script = _load_script(folder / "deploy" / "infer.py")
        got = np.stack([script.preprocess_file(p, contract) for p in paths])
        assert np.array_equal(got, want), folder.name
        for c, w in zip(others, wants):
            got = np.stack([script.preprocess_file(p, c) for p in paths])
            assert np.array_equal(got, w), (folder.name, c["geometry"])


def test_the_float32_order_matters():
    """Dividing by 255 (or in float64) is not what torchvision does: guard the cheap mistake."""
    import torch
    from torchvision.transforms import v2 as T

    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16).repeat(3, 0)
    ref = T.Normalize(CONTRACT["mean"], CONTRACT["std"])(
        T.ToDtype(torch.float32, scale=True)(T.ToImage()(torch.from_numpy(x.copy())))).numpy()
    mean = np.float32(CONTRACT["mean"]).reshape(3, 1, 1)
    std = np.float32(CONTRACT["std"]).reshape(3, 1, 1)
    ours = (x.astype(np.float32) * np.float32(1 / 255) - mean) / std
    divided = (x.astype(np.float32) / np.float32(255) - mean) / std
    assert np.array_equal(ours, ref)
    assert not np.array_equal(divided, ref)


def test_resize_and_crop_rules():
    assert template.short_side_size(53, 37, 36) == (51, 36)  # int(36 * 53 / 37) = 51
    assert template.short_side_size(37, 53, 36) == (36, 51)
    arr = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    out = template.center_crop(arr, 4, 4)
    assert np.array_equal(out, arr[0:4, 2:6])  # round(0.5) == 0, round(1.5) == 2
    padded = template.center_crop(arr, 8, 6)  # taller than the image: 1 row above, 2 below
    assert padded.shape == (8, 6, 3)
    assert not padded[0].any() and not padded[6:].any()
    assert np.array_equal(padded[1:6], arr[:, 0:6])  # round((7 - 6) / 2) == 0


def test_unreadable_files_raise_the_decode_error(tmp_path, images):
    from tests.deploy.conftest import write_bad_images

    for bad in [*write_bad_images(tmp_path, images["rgb_nonsquare.png"]), tmp_path / "nope.png"]:
        with pytest.raises(template.ImageDecodeError):
            template.load_image(bad)


def test_letterbox_rules():
    assert template.letterbox_box(400, 300, 32, out_h=32) == (32, 24, 0, 4)
    assert template.letterbox_box(300, 400, 32, out_h=32) == (24, 32, 4, 0)
    assert template.letterbox_box(6, 2, 4, out_h=4) == (4, 1, 0, 1)  # 4/3 rounds down, pad 1 above
    assert template.letterbox_box(5, 2, 4, out_h=4) == (4, 2, 0, 1)  # 1.6 rounds up
    assert template.letterbox_box(1000, 1, 4, out_h=4) == (4, 1, 0, 1)  # never below 1 pixel
    assert template.letterbox_box(7, 7, 4, out_h=4) == (4, 4, 0, 0)


def test_draft_request_keeps_twice_the_resize():
    crop = {**CONTRACT, "decode": "draft"}
    assert template.draft_request({**CONTRACT}) is None
    assert template.draft_request(crop)(4032, 3024) == (2 * 48, 72)  # short side 36 -> 72
    stretch = {**crop, "geometry": "stretch"}
    assert template.draft_request(stretch)(1920, 1080) == (64, 64)
    letterbox = {**crop, "geometry": "letterbox"}
    assert template.draft_request(letterbox)(1920, 1080) == (64, 36)
    # a recorded margin: 1 asks for no more than the resize itself, 1.5 rounds up
    assert template.draft_request({**crop, "draft_margin": 1.0})(4032, 3024) == (48, 36)
    assert template.draft_request({**crop, "draft_margin": 1.5})(1920, 1080) == (96, 54)
    assert template.draft_request({**crop, "draft_margin": None})(4032, 3024) == (96, 72)


def test_the_kits_contract_constants_are_ftedges():
    """The kit imports nothing of ftedge, so it holds its own copy of the contract's vocabulary
    (and ftedge's config does not import the kit, numpy and Pillow with it, at start-up): the
    two copies must agree, or the kit refuses contracts ftedge writes."""
    from ftedge import config

    assert template.GEOMETRIES == config.GEOMETRIES and template.DECODES == config.DECODES
    assert set(template.RESAMPLING) == set(config.FILTERS)
    assert template.DRAFT_MARGIN == config.DRAFT_MARGIN
    assert template.DRAFT_MARGINS == (config.MIN_DRAFT_MARGIN, config.MAX_DRAFT_MARGIN)


def test_unknown_geometry_or_decode_is_refused():
    for bad in ({**CONTRACT, "geometry": "fisheye"}, {**CONTRACT, "decode": "gpu"},
                {**CONTRACT, "interpolation": "bicubic", "antialias": False},
                {**CONTRACT, "reducing_gap": 0.5}, {**CONTRACT, "reducing_gap": "2"},
                {**CONTRACT, "reducing_gap": True},
                {**CONTRACT, "interpolation": "nearest", "reducing_gap": 2.0},
                {**CONTRACT, "antialias": False, "reducing_gap": 2.0},
                {**CONTRACT, "draft_margin": 1.0},  # a margin without a draft decode
                {**CONTRACT, "decode": "draft", "draft_margin": 0.5},
                {**CONTRACT, "decode": "draft", "draft_margin": 9},
                {**CONTRACT, "decode": "draft", "draft_margin": "1"},
                {**CONTRACT, "decode": "draft", "draft_margin": False}):
        with pytest.raises(ValueError):
            template.check_contract(bad)
    template.check_contract(dict(CONTRACT))  # an old contract: no geometry, decode, antialias


def test_reducing_gap_is_pillows_and_off_without_the_key():
    """The gap is Pillow's own resize(reducing_gap=G) (box-reduce, then the filter with the
    original coordinates); a contract without the key (every run before it) resizes from the
    whole image, exactly as before."""
    from PIL import Image

    rng = np.random.default_rng(3)
    img = Image.fromarray(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8))
    old = {**CONTRACT, "interpolation": "bicubic", "resize": 256, "input_size": [3, 224, 224]}
    assert template.reducing_gap(old) is None
    whole = img.resize((455, 256), Image.Resampling.BICUBIC)
    assert np.array_equal(template.resize_image(img, 455, 256, contract=old), np.asarray(whole))
    fast = {**old, "reducing_gap": 1.0}
    want = img.reduce(4).resize((455, 256), Image.Resampling.BICUBIC,
                                box=(0, 0, 1920 / 4, 1080 / 4))  # 1920/455 and 1080/256: 4
    got = template.resize_image(img, 455, 256, contract=fast)
    assert np.array_equal(got, np.asarray(want))
    assert not np.array_equal(got, np.asarray(whole))
    frame = np.asarray(img)  # a raw frame and the same pixels as a PIL image: one result
    assert np.array_equal(template.preprocess(Image.fromarray(frame), fast),
                          eval_transform(fast)(img).numpy())
