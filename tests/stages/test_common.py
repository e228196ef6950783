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


@pytest.mark.parametrize("kind, name, label", [("qat", "gate", "INT8 gate"),
                                               ("ptq", "gate_ptq", "PTQ INT8 gate")])
def test_publish_gate_writes_the_kinds_files_beside_the_graph_and_prints_the_verdict(
        tmp_path, capsys, kind, name, label):
    import json

    import numpy as np

    from ftedge.io import sha256_file
    from ftedge.quant.gate import accuracy_gate
    from ftedge.stages.common import publish_gate

    graph = tmp_path / "model.int8.onnx"
    graph.write_bytes(b"a graph")
    labels = np.array([0, 1, 2, 0])
    ref = np.eye(3)[labels]
    test = ref.copy()
    test[3] = np.eye(3)[1]  # one of four wrong: 25 points lost, over a 1-point budget
    result = accuracy_gate(ref, test, labels, classes=["a", "b", "c"], max_drop=1.0)
    md = publish_gate(graph, result, kind=kind, title="My gate")
    assert md == tmp_path / f"{name}.md" and md.read_text().startswith("# My gate\n")
    written = json.loads((tmp_path / f"{name}.json").read_text())
    assert written["graph"] == graph.name and written["graph_sha256"] == sha256_file(graph)
    assert written["drop_points"] == pytest.approx(25.0) and written["passed"] is False
    err = " ".join(capsys.readouterr().err.split())
    assert f"{label} FAILED: FP32 top-1 1.0000, INT8 (ONNX Runtime) 0.7500, drop +25.00" in err
    assert str(md) in err


def test_native_inputs_prepare_pixels_for_a_pixel_input_artifact_and_floats_otherwise(tmp_path):
    import numpy as np
    from PIL import Image

    from ftedge.data.transforms import preprocess_image
    from ftedge.graph.normalize import pixels_from_normalized
    from ftedge.runtime import PixelInputRunner
    from ftedge.stages.common import native_inputs

    contract = {"input_size": [3, 8, 8], "resize": 10, "crop": "center",
                "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225], "scale": "1/255", "channel_order": "RGB",
                "layout": "NCHW"}
    frame = np.random.default_rng(0).integers(0, 256, (12, 15, 3)).astype(np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(frame).save(path)
    inner = SimpleNamespace(infer=lambda b: b)
    floats = preprocess_image(path, contract)
    for layout in ("NCHW", "NHWC"):
        prepare, model = native_inputs(PixelInputRunner(inner, contract, "uint8", layout=layout),
                                       contract)
        assert model is inner  # fed directly: no float round trip
        want = pixels_from_normalized(floats, contract, "uint8", layout=layout)[0]
        for x in (path, frame):
            got = prepare(x)
            assert got.dtype == np.uint8 and np.array_equal(got, want)
    prepare, model = native_inputs(inner, contract)
    assert model is inner and np.array_equal(prepare(path), floats[0])
    assert np.array_equal(prepare(frame), floats[0])
