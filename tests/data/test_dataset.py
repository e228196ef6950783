"""data/dataset.py: samples from the cache or the files, and the cache budget."""

import numpy as np
import pytest
from PIL import Image

from ftedge.data.dataset import CACHE_LIMIT_BYTES, ImageSamples, cache_fits
from ftedge.data.folder import Sample
from ftedge.errors import DatasetError


def _arr(img):
    return np.asarray(img)


def test_cached_images_are_served_without_reading_the_file(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (4, 4), (10, 20, 30)).save(path)
    cached = Image.new("RGB", (4, 4), (200, 0, 0))
    ds = ImageSamples([Sample(path, 1)], _arr, cache={path: cached})
    x, y = ds[0]
    assert y == 1 and x[0, 0].tolist() == [200, 0, 0] and len(ds) == 1
    x, _ = ImageSamples([Sample(path, 1)], _arr)[0]
    assert x[0, 0].tolist() == [10, 20, 30]


def test_alpha_is_composited_on_the_background(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (2, 2), (0, 0, 0, 0)).save(path)
    x, _ = ImageSamples([Sample(path, 0)], _arr, background=(1, 2, 3))[0]
    assert x[0, 0].tolist() == [1, 2, 3]


def test_a_file_gone_or_damaged_since_the_audit_says_how_to_continue(tmp_path):
    gone, broken = tmp_path / "gone.png", tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    ds = ImageSamples([Sample(gone, 0), Sample(broken, 0)], _arr)
    for i in range(2):
        with pytest.raises(DatasetError, match="became unreadable during training") as e:
            ds[i]
        assert "ftedge tune --resume" in e.value.hint


def test_cache_budget():
    per_image = 300 * 300 * 4 // 3 * 3
    assert cache_fits(CACHE_LIMIT_BYTES // per_image, 300)
    assert not cache_fits(CACHE_LIMIT_BYTES // per_image + 1, 300)
