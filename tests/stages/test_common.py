"""stages/common.py: which images a model is judged on."""

from types import SimpleNamespace

import pytest

from ftedge.errors import DatasetError, RunError
from ftedge.stages.common import eval_samples
from tests.conftest import write_class_folders


def _loaded(tmp_path, kind="run", classes=("blue", "green", "red"), run=None):
    return SimpleNamespace(kind=kind, path=tmp_path, classes=list(classes),
                           manifest=SimpleNamespace(source={"run": str(run or tmp_path)}))


def test_a_subset_of_the_classes_gets_the_models_labels(tmp_path):
    data = write_class_folders(tmp_path / "d", per_class=2, classes=("red", "blue"))
    samples = eval_samples(_loaded(tmp_path), data)
    by_label = {s.label: s.path.parent.name for s in samples}
    assert by_label == {0: "blue", 2: "red"} and len(samples) == 4  # the model's order


def test_unknown_classes_and_splits_are_refused(tmp_path):
    data = write_class_folders(tmp_path / "d", per_class=2, classes=("red",))
    (data / "violet").mkdir()
    (data / "red" / "000.png").rename(data / "violet" / "000.png")
    with pytest.raises(DatasetError, match="not trained on: violet") as e:
        eval_samples(_loaded(tmp_path), data)
    assert "blue, green, red" in e.value.hint
    with pytest.raises(DatasetError, match="--split 'dev' is not one of val, test, train"):
        eval_samples(_loaded(tmp_path), data, split="dev")


def test_the_split_folder_asked_for_or_train_when_there_is_none(tmp_path):
    data = tmp_path / "d"
    write_class_folders(data / "train", per_class=3)
    write_class_folders(data / "val", per_class=2, seed=1)
    assert len(eval_samples(_loaded(tmp_path), data, "val")) == 6
    assert len(eval_samples(_loaded(tmp_path), data, "train")) == 9
    flat = write_class_folders(tmp_path / "flat", per_class=2)
    assert len(eval_samples(_loaded(tmp_path), flat, "test")) == 6  # no test/: every image


def test_an_artifact_whose_run_is_elsewhere_needs_data(tmp_path):
    with pytest.raises(RunError, match="source run .* is not here") as e:
        eval_samples(_loaded(tmp_path, "artifact", run=tmp_path / "gone"), None)
    assert "--data" in e.value.hint
