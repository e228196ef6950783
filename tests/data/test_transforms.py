"""Each geometry of the contract, pixel for pixel on tiny images, and the training augmentation
that keeps it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ftedge.config import AugmentConfig
from ftedge.data.transforms import eval_transform, letterbox_box, train_transform
from ftedge.formats.contract import build_contract

# mean 0 / std 1: the transform's output is the resized uint8 image / 255, easy to check
PLAIN = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _contract(geometry, size=4, interpolation="nearest", **kw):
    return build_contract(input_size=size, resize=size, interpolation=interpolation,
                          geometry=geometry, **PLAIN, **kw)


def _pixels(contract, arr):
    out = eval_transform(contract)(Image.fromarray(arr)).numpy()
    return np.rint(out * 255).astype(np.uint8).transpose(1, 2, 0)


def _image(w, h):
    """Every pixel distinct: value = 10*row + column (in all three channels)."""
    v = (10 * np.arange(h)[:, None] + np.arange(w)[None, :]).astype(np.uint8)
    return np.repeat(v[..., None], 3, axis=2)


def test_stretch_takes_the_whole_image():
    arr = _image(8, 4)  # 2:1 squashed into 4x4, nearest picks the centre of each 2x1 cell
    out = _pixels(_contract("stretch"), arr)
    assert out.shape == (4, 4, 3)
    assert np.array_equal(out[..., 0], arr[:, 1::2, 0])


def test_letterbox_keeps_aspect_and_pads_with_the_recorded_value():
    arr = _image(4, 2)  # fits 4 wide, 2 high: one padding row above and below
    out = _pixels(_contract("letterbox", pad_value=(9, 99, 199)), arr)
    assert np.array_equal(out[1:3], arr)
    for row in (0, 3):
        assert (out[row] == [9, 99, 199]).all()
    tall = _pixels(_contract("letterbox"), _image(2, 4))  # padding left and right, black
    assert np.array_equal(tall[:, 1:3], _image(2, 4)) and not tall[:, [0, 3]].any()


def test_letterbox_odd_padding_goes_bottom_right():
    out = _pixels(_contract("letterbox", pad_value=(255, 255, 255)), _image(12, 4))
    assert letterbox_box(12, 4, 4, out_h=4) == (4, 1, 0, 1)
    assert (out[0] == 255).all() and (out[2:] == 255).all() and (out[1] != 255).any()


def test_crop_is_still_short_side_then_centre():
    c = build_contract(input_size=2, resize=4, interpolation="nearest", **PLAIN)
    out = _pixels(c, _image(8, 4))  # short side 4 already: no resize; centre 2x2 of 4x8
    assert np.array_equal(out, _image(8, 4)[1:3, 3:5])


@pytest.mark.parametrize("geometry", ["stretch", "letterbox"])
def test_training_augmentation_keeps_the_device_geometry(geometry):
    """A wide frame stays wide before the stretch/letterbox: never a square cut of it."""
    torch.manual_seed(0)
    c = _contract(geometry, size=16, interpolation="bilinear")
    aug = AugmentConfig(hflip=0, color_jitter=0, frame_scale=(1.0, 1.0))
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, :30] = 200  # left half bright: survives only if the whole width is kept
    out = train_transform(c, aug)(Image.fromarray(arr)).numpy()
    assert np.array_equal(out, eval_transform(c)(Image.fromarray(arr)).numpy())
    torch.manual_seed(1)
    crops = [train_transform(c, AugmentConfig(frame_scale=(0.5, 0.5), hflip=0,
                                              color_jitter=0))(Image.fromarray(arr))
             for _ in range(4)]
    assert all(x.shape == (3, 16, 16) for x in crops)
    if geometry == "letterbox":  # the crop keeps the 3:1 aspect, so the bars stay
        assert all(np.allclose(x.numpy()[:, 0], 0) for x in crops)


def test_preprocess_samples_names_a_file_that_is_no_longer_an_image(tmp_path):
    """Every stage judges a model on a list of files (a run's split, --unknown DIR): one that
    changed since is a DatasetError naming it, not a traceback."""
    from ftedge.data.folder import Sample
    from ftedge.data.transforms import preprocess_samples
    from ftedge.errors import DatasetError

    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.fromarray(_image(6, 6)).save(good)
    bad.write_bytes(b"not an image")
    contract = _contract("crop")
    assert preprocess_samples([Sample(good, 0)], contract).shape == (1, 3, 4, 4)
    with pytest.raises(DatasetError, match="bad.png as an image: not an image file") as e:
        preprocess_samples([Sample(good, 0), Sample(bad, 0)], contract)
    assert "readable copy" in e.value.hint and "split must keep every file" in e.value.hint


@pytest.mark.parametrize("geometry", ["crop", "stretch", "letterbox"])
def test_plain_bilinear_trains_and_evaluates_with_the_kits_resize(geometry):
    """antialias false: train (whole frame kept) and eval both scale with resize_bilinear."""
    from ftedge.deploy.templates.preprocess import preprocess

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    c = _contract(geometry, size=12, interpolation="bilinear", antialias=False)
    pil = Image.fromarray(arr)
    want = preprocess(pil, c)
    assert eval_transform(c)(pil).numpy().tobytes() == want.tobytes()
    aug = AugmentConfig(hflip=0, color_jitter=0, scale=(1.0, 1.0), ratio=(1.0, 1.0),
                        frame_scale=(1.0, 1.0))
    assert train_transform(c, aug)(pil).numpy().tobytes() == want.tobytes()
    smooth = _contract(geometry, size=12, interpolation="bilinear")
    assert not np.array_equal(eval_transform(smooth)(pil).numpy(), want)


def test_split_arrays_gives_each_image_as_preprocess_samples_does_with_its_label(tmp_path):
    """One split-to-arrays loader for every stage that judges a model on a split: images in
    order, labels int64 beside them; an empty split is (0, C, H, W) and (0,)."""
    from ftedge.data.folder import Sample
    from ftedge.data.transforms import preprocess_samples, split_arrays

    contract = _contract("stretch")
    samples = []
    for i, (w, h) in enumerate([(6, 6), (8, 4), (4, 8)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(_image(w, h)).save(path)
        samples.append(Sample(path, [2, 0, 1][i]))
    x, labels = split_arrays(samples, contract)
    assert x.shape == (3, 3, 4, 4) and x.dtype == np.float32
    assert labels.dtype == np.int64 and labels.tolist() == [2, 0, 1]
    assert np.array_equal(x, preprocess_samples(samples, contract))
    assert np.array_equal(x[1], eval_transform(contract)(Image.open(samples[1].path)).numpy())
    x0, labels0 = split_arrays([], contract)
    assert x0.shape == (0, 3, 4, 4) and labels0.shape == (0,) and labels0.dtype == np.int64


@pytest.mark.parametrize("geometry", ["crop", "stretch"])
def test_training_resizes_with_the_contracts_reducing_gap(geometry):
    """Augmentation draws the same random crop as without a gap, then resizes it as the
    device does: Pillow's box-reduce first, then the filter."""
    from torchvision.transforms import v2 as T

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    gap = _contract(geometry, size=32, interpolation="bicubic", reducing_gap=1.0)
    whole = {**gap, "reducing_gap": None}
    aug = AugmentConfig(hflip=0.0, color_jitter=0.0)
    torch.manual_seed(5)
    got = train_transform(gap, aug)(img).numpy()
    torch.manual_seed(5)
    if geometry == "crop":
        top, left, h, w = T.RandomResizedCrop.get_params(img, list(aug.scale), list(aug.ratio))
    else:  # RandomFrameCrop's draws, then the stretch
        area = torch.empty(1).uniform_(*aug.frame_scale).item()
        w, h = round(400 * area ** 0.5), round(300 * area ** 0.5)
        top = int(torch.randint(0, 300 - h + 1, (1,)).item())
        left = int(torch.randint(0, 400 - w + 1, (1,)).item())
    region = img.crop((left, top, left + w, top + h))
    assert min(w / 32, h / 32) >= 2  # the gap of 1.0 reduces this crop first
    want = region.resize((32, 32), Image.Resampling.BICUBIC, reducing_gap=1.0)
    assert np.array_equal(np.rint(got * 255).astype(np.uint8).transpose(1, 2, 0),
                          np.asarray(want))
    torch.manual_seed(5)
    assert not np.array_equal(train_transform(whole, aug)(img).numpy(), got)
