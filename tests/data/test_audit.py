import numpy as np
import pytest
from PIL import Image

from ftedge.data import audit_dataset, write_demo_data
from ftedge.data.folder import discover_dataset, stratified_split
from ftedge.errors import DatasetError, RunError
from tests.conftest import write_class_folders


def test_bad_files_are_listed_not_fatal(colour_data):
    (colour_data / "red" / "zero.png").write_bytes(b"")
    (colour_data / "red" / "notes.txt").write_text("x")
    (colour_data / "blue" / "fake.jpg").write_text("<html>")
    trunc = colour_data / "green" / "cut.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (50, 50, 3), np.uint8)).save(trunc)
    trunc.write_bytes(trunc.read_bytes()[:300])
    audit = audit_dataset(colour_data)
    assert audit.counts() == [12, 12, 12]  # blue, green, red (sorted)
    reasons = {p.name: r for p, r in audit.unusable}
    assert set(reasons) == {"zero.png", "notes.txt", "fake.jpg", "cut.png"}
    assert "empty" in reasons["zero.png"] and "not an image type" in reasons["notes.txt"]
    assert "not an image" in reasons["fake.jpg"] and "truncated" in reasons["cut.png"]
    assert audit.to_dict()["imbalance"] == 1.0


def test_imbalance_and_sizes(tmp_path):
    root = write_class_folders(tmp_path / "d", per_class=4)
    for i in range(4, 8):
        Image.new("RGB", (30, 10)).save(root / "red" / f"x{i}.png")
    audit = audit_dataset(root)
    assert audit.imbalance == 2.0
    assert audit.size_summary()["max"] == [30, 24]


def test_empty_class_folder_is_an_error(colour_data):
    (colour_data / "yellow").mkdir()
    with pytest.raises(DatasetError, match="yellow") as e:
        audit_dataset(colour_data)
    assert "add images" in e.value.hint


def test_class_with_only_broken_files_counts_as_empty(colour_data):
    (colour_data / "grey").mkdir()
    (colour_data / "grey" / "a.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="grey.*1 unusable"):
        audit_dataset(colour_data)


def test_single_class_is_an_error(tmp_path):
    write_class_folders(tmp_path / "one", classes=("red",))
    with pytest.raises(DatasetError, match="at least 2"):
        discover_dataset(tmp_path / "one")


def test_train_val_layout_and_unknown_val_class(tmp_path):
    write_class_folders(tmp_path / "d" / "train", classes=("red", "blue"))
    write_class_folders(tmp_path / "d" / "val", per_class=3, classes=("red", "blue"))
    audit = audit_dataset(tmp_path / "d")
    assert audit.counts("train") == [10, 10] and audit.counts("val") == [3, 3]
    write_class_folders(tmp_path / "d" / "val", per_class=2, classes=("green",))
    with pytest.raises(DatasetError, match="val split has classes the train split lacks: green"):
        discover_dataset(tmp_path / "d")


def test_missing_folder_error_says_how(tmp_path):
    with pytest.raises(DatasetError) as e:
        discover_dataset(tmp_path / "nope")
    assert "--data" in e.value.hint


def test_stratified_split_is_seeded_and_covers_every_class(colour_data):
    samples = discover_dataset(colour_data).train
    a = stratified_split(samples, 0.2, seed=3)
    b = stratified_split(samples, 0.2, seed=3)
    c = stratified_split(samples, 0.2, seed=4)
    assert a == b and a != c
    train, val = a
    assert len(val) == 6 and len(train) == 30
    assert sorted({s.label for s in val}) == [0, 1, 2]
    assert not {s.path for s in train} & {s.path for s in val}


def test_split_keeps_tiny_classes_trainable(tmp_path):
    root = write_class_folders(tmp_path / "d", per_class=1)
    train, val = stratified_split(discover_dataset(root).train, 0.5, 0)
    assert len(train) == 3 and val == []


def test_demo_data_is_the_real_digits(tmp_path):
    out = write_demo_data(tmp_path / "digits")
    audit = audit_dataset(out)
    assert audit.classes == [str(i) for i in range(10)]
    assert sum(audit.counts()) == 1797 and not audit.unusable
    with pytest.raises(RunError, match="already exists"):
        write_demo_data(out)
    (out / "0" / "0000.png").unlink()  # ftedge's own folder: --overwrite replaces it whole
    assert write_demo_data(out, overwrite=True) == out and (out / "0" / "0000.png").is_file()
    (out / "mine.txt").write_text("the user's")  # ... but never once the user added files
    with pytest.raises(RunError, match="did not write"):
        write_demo_data(out, overwrite=True)
    assert (out / "mine.txt").read_text() == "the user's"


def test_demo_data_small_train_split(tmp_path):
    out = write_demo_data(tmp_path / "few", train_per_class=10, seed=1)
    audit = audit_dataset(out)
    assert audit.counts("train") == [10] * 10
    assert sum(audit.counts("val")) == 1797 - 100
