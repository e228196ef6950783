"""Calibrated confidence on a run (PyTorch FP32): tune fits it, predict/eval apply it,
`ftedge calibrate` refits it, and a record for another checkpoint is not applied. Predict's
threaded decoding keeps input order and results; frames match files."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ftedge.confidence import fit_temperature
from ftedge.formats.run import CONFIDENCE as RECORD
from ftedge.data.transforms import preprocess_image, preprocess_samples
from ftedge.errors import ConfigError, DatasetError, RunError
from ftedge.formats.run import RunFolder
from ftedge.stages.inference import calibrate, evaluate, open_model, predict
from ftedge.metrics import softmax


def _val(run):
    loaded = open_model(run)
    samples = RunFolder(run).samples("val", loaded.classes)
    x = preprocess_samples(samples, loaded.contract)
    return loaded, loaded.runner.infer(x), np.array([s.label for s in samples])


def test_tune_fits_the_run_temperature_on_best_pt(qat_run):
    record = json.loads((qat_run.run_dir / RECORD).read_text())
    loaded, logits, labels = _val(qat_run.run_dir)
    assert record["checkpoint"] == "best.pt" and record["n"] == len(labels)
    assert record["temperature"] == pytest.approx(fit_temperature(logits, labels), rel=1e-3)
    assert (qat_run.run_dir / "reliability.png").is_file()


def test_predict_and_eval_on_a_run_apply_its_temperature(qat_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(qat_run.run_dir, run)
    record = json.loads((run / RECORD).read_text())
    record["temperature"] = 2.5  # a T far from 1, so applying it shows
    (run / RECORD).write_text(json.dumps(record))
    image = sorted(Path(qat_run.run_dir).parent.glob("colours/*/*.png"))[0]
    loaded = open_model(run)
    want = softmax(loaded.runner.infer(preprocess_image(image, loaded.contract)), 2.5)[0]
    (r,) = predict(run, [image], topk=3)
    assert r["temperature"] == 2.5
    for t in r["top"]:
        assert t["prob"] == pytest.approx(want[loaded.classes.index(t["class"])], abs=1e-6)
    cal = evaluate(run)["calibration"]
    assert cal["calibrated"] and cal["temperature"] == 2.5 and cal["in_sample"]
    # refitting puts back the fitted T; last.pt is another checkpoint: its T is not best.pt's
    assert calibrate(run)["temperature"] == pytest.approx(
        json.loads((qat_run.run_dir / RECORD).read_text())["temperature"], rel=1e-6)
    import torch

    ckpt = torch.load(run / "best.pt", weights_only=False)
    ckpt["model_state"] = {k: v * 1.01 if v.is_floating_point() else v
                           for k, v in ckpt["model_state"].items()}
    torch.save(ckpt, run / "other.pt")
    capsys.readouterr()
    (r,) = predict(run / "other.pt", [image], topk=1)
    assert r["temperature"] == 1.0 and "another checkpoint" in capsys.readouterr().err


def test_a_run_without_or_with_a_damaged_record(qat_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(qat_run.run_dir, run)
    (run / RECORD).unlink()
    image = sorted(Path(qat_run.run_dir).parent.glob("colours/*/*.png"))[0]
    capsys.readouterr()
    assert predict(run, [image])[0]["temperature"] == 1.0
    err = capsys.readouterr().err
    assert "T = 1" in err and "ftedge calibrate" in err
    (run / RECORD).write_text(json.dumps({"method": "temperature", "temperature": -1}))
    with pytest.raises(RunError, match="damaged"):
        predict(run, [image])


def test_calibrate_refuses_an_artifact(qat_run, tmp_path):
    from ftedge.stages.export.exporter import export_run

    out = export_run(qat_run.run_dir, "onnxruntime-cpu", precision="fp32", out=tmp_path / "a",
                     log=lambda m: None).folder
    with pytest.raises(RunError, match="fitted at export"):
        calibrate(out)


# ---- predict: threads, order, frames ----

@pytest.fixture(scope="module")
def ort_int8(qat_run, tmp_path_factory):
    from ftedge.stages.export.exporter import export_run

    out = tmp_path_factory.mktemp("pred") / "onnxruntime-cpu-int8"
    return export_run(qat_run.run_dir, "onnxruntime-cpu", precision="int8", out=out,
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


def test_threads_are_bounded_by_the_cores_and_a_run_takes_them(qat_run):
    import torch

    from ftedge.deploy.templates.artifact import usable_cores

    frame = [np.zeros((9, 9, 3), np.uint8)]
    too_many = usable_cores() + 1
    with pytest.raises(ConfigError, match=f"--threads {too_many} is more than the") as e:
        predict(qat_run.run_dir, frame, threads=too_many)
    assert f"--threads 1 to {usable_cores()}" in e.value.hint
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(usable_cores())
        predict(qat_run.run_dir, frame, threads=1)  # PyTorch ignored it before
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_bad_frame_is_refused_before_any_work(qat_run):
    with pytest.raises(DatasetError, match=r"images\[1\] has dtype float64") as e:
        predict(qat_run.run_dir, [np.zeros((9, 9, 3), np.uint8), np.zeros((9, 9, 3))])
    assert "uint8" in e.value.hint
    with pytest.raises(DatasetError, match=r"images\[0\] is a int"):
        predict(qat_run.run_dir, [3])
    with pytest.raises(ConfigError, match="batch must be an integer >= 1"):
        predict(qat_run.run_dir, [np.zeros((9, 9, 3), np.uint8)], batch=0)


def test_a_stream_passes_the_open_model_and_gets_what_a_fresh_open_gives(qat_run, ort_int8,
                                                                          capsys, monkeypatch):
    from ftedge.stages import inference

    paths = sorted(Path(qat_run.run_dir).parent.glob("colours/*/*.png"))[:4]
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    capsys.readouterr()
    want = predict(ort_int8, frames, topk=2)
    fresh_notes = capsys.readouterr().err
    with open_model(ort_int8) as held:
        got = [predict(held, frames[:1], topk=2)[0]]
        assert capsys.readouterr().err == fresh_notes  # the notes, on the first call
        with monkeypatch.context() as mp:  # the temperature is read once, not per frame
            mp.setattr(inference, "confidence_of", lambda m: pytest.fail("re-read"))
            got += [predict(held, [f], topk=2)[0] for f in frames[1:]]  # one frame a call
        assert capsys.readouterr().err == ""  # not again on every frame of the stream
        assert held.runner.infer is not None  # still open: predict left it to its owner
    assert [g["top"] for g in got] == [w["top"] for w in want]
    with open_model(ort_int8) as held, pytest.raises(ConfigError, match="when the model is"):
        predict(held, frames[:1], threads=1)
    with pytest.raises(RunError, match="opened and closed again") as e:
        predict(held, frames[:1])  # its with ended
    assert "open_model" in e.value.hint
