"""ftedge.predict: threaded decoding keeps input order and results; frames match files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ftedge.errors import ConfigError, DatasetError
from ftedge.inference import predict


@pytest.fixture(scope="module")
def ort_int8(qat_run, tmp_path_factory):
    from ftedge.export.exporter import export_run

    out = tmp_path_factory.mktemp("pred") / "onnxruntime-cpu-int8"
    return export_run(qat_run.run_dir, "onnxruntime-cpu", "int8", out=out,
                      log=lambda m: None).folder


def _inputs(qat_run, tmp_path):
    files = sorted(Path(qat_run.run_dir).parent.glob("colours/*/*.png"))[::3]
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return files[:3] + [tmp_path / "broken.jpg"] + files[3:]


@pytest.mark.parametrize("which", ["run", "artifact"])
def test_threaded_predict_is_sequential_predict_in_input_order(which, qat_run, ort_int8,
                                                               tmp_path):
    model = qat_run.run_dir if which == "run" else ort_int8
    paths = _inputs(qat_run, tmp_path)
    one = predict(model, paths, topk=3, batch=1, workers=1)
    many = predict(model, paths, topk=3, batch=4, workers=3)
    assert [r["image"] for r in many] == [str(p) for p in paths]
    assert "error" in many[3] and "not an image" in many[3]["error"]
    for a, b in zip(one, many):
        assert a.keys() == b.keys()
        if "top" in a:
            assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
            np.testing.assert_allclose([t["prob"] for t in a["top"]],
                                       [t["prob"] for t in b["top"]], atol=1e-5)


@pytest.mark.parametrize("which", ["run", "artifact"])
def test_a_frame_gives_the_logits_of_the_file_with_its_pixels(which, qat_run, ort_int8):
    model = qat_run.run_dir if which == "run" else ort_int8
    paths = sorted(Path(qat_run.run_dir).parent.glob("colours/*/*.png"))[:6]
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    by_file = predict(model, paths, topk=3, batch=6)
    mixed = predict(model, [x for pair in zip(frames, paths) for x in pair], topk=3, batch=6)
    assert [r.get("frame") for r in mixed[::2]] == list(range(0, 12, 2))
    for f, r, want in zip(mixed[::2], mixed[1::2], by_file):
        assert f["top"] == want["top"] == r["top"]


def test_a_bad_frame_is_refused_before_any_work(qat_run):
    with pytest.raises(DatasetError, match=r"images\[1\] has dtype float64") as e:
        predict(qat_run.run_dir, [np.zeros((9, 9, 3), np.uint8), np.zeros((9, 9, 3))])
    assert "uint8" in e.value.hint
    with pytest.raises(DatasetError, match=r"images\[0\] is a int"):
        predict(qat_run.run_dir, [3])
    with pytest.raises(ConfigError, match="batch must be an integer >= 1"):
        predict(qat_run.run_dir, [np.zeros((9, 9, 3), np.uint8)], batch=0)
