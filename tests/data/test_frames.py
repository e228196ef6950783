"""data/frames.py: raw HxWx3 uint8 frames take the file path's preprocessing, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ftedge.data.frames import check_frame, preprocess_frame
from ftedge.data.transforms import preprocess_image
from ftedge.errors import DatasetError

CONTRACT = {"input_size": [3, 32, 32], "resize": 36, "interpolation": "bicubic",
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "crop": "center",
            "scale": "1/255", "channel_order": "RGB", "layout": "NCHW"}


@pytest.mark.parametrize("size", [(48, 64), (64, 48), (20, 20)])
def test_a_frame_and_the_png_of_its_pixels_preprocess_alike(tmp_path, size):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(frame).save(tmp_path / "f.png")
    want = preprocess_image(tmp_path / "f.png", CONTRACT)[0]
    got = preprocess_frame(frame, CONTRACT)
    assert got.dtype == np.float32 and got.shape == (3, 32, 32)
    np.testing.assert_array_equal(got, want)
    # a view (a crop of a bigger frame, a reversed BGR->RGB) is fine: same pixels, same result
    big = np.zeros((size[0] + 4, size[1] + 4, 3), np.uint8)
    big[2:-2, 2:-2] = frame[..., ::-1]
    np.testing.assert_array_equal(preprocess_frame(big[2:-2, 2:-2, ::-1], CONTRACT), want)


@pytest.mark.parametrize("bad, what", [
    (np.zeros((8, 8, 3), np.float32), "dtype float32"),
    (np.zeros((3, 8, 8), np.uint8), r"shape \(3, 8, 8\)"),
    (np.zeros((8, 8), np.uint8), r"shape \(8, 8\)"),
    (np.zeros((8, 8, 4), np.uint8), r"shape \(8, 8, 4\)"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
    ([[1, 2, 3]], "not a numpy array"),
])
def test_what_is_not_an_rgb_frame_is_refused_with_a_fix(bad, what):
    with pytest.raises(DatasetError, match=what) as e:
        check_frame(bad, "images[0]")
    assert "HxWx3 uint8 RGB" in e.value.hint
