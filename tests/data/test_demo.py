"""data/demo.py: the digits as class folders, flat or as a seeded train/val split."""

import numpy as np
import pytest

from ftedge.data.demo import _pick_train, _split_dir, write_demo_data
from ftedge.errors import DatasetError


def test_seeded_picks_per_class_leave_at_least_one_image():
    labels = np.array([0] * 5 + [1] * 2)
    picked = _pick_train(labels, 3, seed=0)
    assert len([i for i in picked if labels[i] == 0]) == 3
    assert len([i for i in picked if labels[i] == 1]) == 1  # 2 images: one stays for val
    assert picked == _pick_train(labels, 3, seed=0) and picked != _pick_train(labels, 3, seed=5)
    assert _split_dir(4, 7, None) == "4"
    assert (_split_dir(4, 7, {7}), _split_dir(4, 8, {7})) == ("train/4", "val/4")


def test_train_per_class_writes_the_split_and_the_pixels(tmp_path):
    out = write_demo_data(tmp_path / "digits", train_per_class=2, seed=1)
    train = sorted(out.glob("train/*/*.png"))
    assert len(train) == 20 and {p.parent.name for p in train} == {str(d) for d in range(10)}
    assert len(train) + len(list(out.glob("val/*/*.png"))) == 1797
    from PIL import Image
    from sklearn.datasets import load_digits

    first = train[0]
    pixels = np.asarray(Image.open(first))
    want = np.round(load_digits().images[int(first.stem)] / 16.0 * 255).astype(np.uint8)
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, want)


def test_zero_per_class_is_refused_before_writing(tmp_path):
    with pytest.raises(DatasetError, match="must be at least 1"):
        write_demo_data(tmp_path / "d", train_per_class=0)
    assert not (tmp_path / "d").exists()
