"""deploy/infer.py's Python API (Classifier): frames and files alike, threads in order."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from tests.deploy.conftest import build_artifact, run_infer, write_bad_images


def load_script(folder, name):
    spec = importlib.util.spec_from_file_location(name, folder / "deploy" / "infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=["onnxruntime", "openvino"])
def script(request, tmp_path_factory):
    folder, _ = build_artifact(tmp_path_factory.mktemp(request.param) / "art", request.param)
    return folder, load_script(folder, f"infer_{request.param}")


def test_a_frame_gives_the_result_of_the_file_with_its_pixels(script, images, tmp_path):
    folder, infer = script
    names = ["rgb_nonsquare.png", "wide.png", "tiny_smaller_than_crop.png"]
    frames = [np.asarray(Image.open(images[n])) for n in names]
    files = [images[n] for n in names]
    clf = infer.Classifier(folder, batch=4, workers=2)
    out = clf.classify([frames[0], files[0], frames[1], files[1], frames[2], files[2]], topk=3)
    assert [r.get("frame") for r in out[::2]] == [0, 2, 4]
    for frame_result, file_result in zip(out[::2], out[1::2]):
        assert frame_result["top"] == file_result["top"]  # logits too, to the last bit
    with pytest.raises(ValueError, match=r"frame 1: dtype float32"):
        clf.classify([frames[0], frames[0].astype(np.float32)])


def test_threads_return_what_one_thread_does_in_input_order(script, images, tmp_path):
    folder, infer = script
    paths = list(images.values())
    paths[3:3] = write_bad_images(tmp_path / "bad", paths[0])
    one = infer.Classifier(folder, batch=1, workers=1).classify(paths)
    many = infer.Classifier(folder, batch=5, workers=4).classify(paths)
    assert [r["image"] for r in many] == [str(p) for p in paths]
    for a, b in zip(one, many):  # batch 1 and batch 5 may round differently in the kernels
        assert a.keys() == b.keys() and a.get("error") == b.get("error")
        assert [t["index"] for t in a.get("top", [])] == [t["index"] for t in b.get("top", [])]
        assert [t["probability"] for t in a.get("top", [])] == pytest.approx(
            [t["probability"] for t in b.get("top", [])], abs=1e-5)
    assert sum("error" in r for r in many) == 3 and "error" in many[3]


def test_cli_workers(script, images, tmp_path):
    folder, _ = script
    res = run_infer(folder / "deploy" / "infer.py", images["wide.png"], images["rgba.png"],
                    "--workers", "3", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [r["image"] for r in json.loads(res.stdout)] == [str(images["wide.png"]),
                                                           str(images["rgba.png"])]
    res = run_infer(folder / "deploy" / "infer.py", images["wide.png"], "--workers", "0",
                    cwd=tmp_path)
    assert res.returncode == 2 and "--workers must be at least 1" in res.stderr
