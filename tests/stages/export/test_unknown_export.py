"""Every artifact decides "unknown" by itself: export appends the score and records its
threshold; predict, eval --unknown and deploy/infer.py use it; old artifacts say they have none."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper
from PIL import Image

from ftedge.cli import cli
from ftedge.config import UNKNOWN_SCORE
from ftedge.errors import ConfigError, RunError
from ftedge.runtime.artifact import load_artifact
from ftedge.stages.export.exporter import export_run
from ftedge.formats.artifact import digests
from ftedge.formats.run import RunFolder
from ftedge.graph.unknown import UNKNOWN_OUTPUT, feature_tensor, score_numpy, with_outputs
from ftedge.stages.inference import evaluate, predict
from ftedge.runtime import infer_scored


@pytest.fixture(scope="module")
def artifacts(qat_run, tmp_path_factory):
    """INT8 artifacts with the default score (k-NN), and ONNX Runtime with max softmax."""
    root = tmp_path_factory.mktemp("unknown")
    out = {t: export_run(qat_run.run_dir, t, precision="int8", out=root / t,
                         log=lambda m: None).folder
           for t in ("onnxruntime-cpu", "openvino-cpu")}
    out["onnxruntime-cpu-msp"] = export_run(qat_run.run_dir, "onnxruntime-cpu", precision="int8",
                                            out=root / "msp", log=lambda m: None,
                                            unknown_score="msp").folder
    return out


@pytest.fixture(scope="module")
def noise_images(tmp_path_factory):
    """Images of none of the (red, green, blue) classes: uniform noise and flat grey."""
    folder = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(3)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
            folder / f"noise{i}.png")
        Image.fromarray(np.full((24, 24, 3), 60 + 30 * i, np.uint8)).save(folder / f"grey{i}.png")
    return folder


def val_of(qat_run, loaded):
    from ftedge.data.transforms import preprocess_samples

    samples = RunFolder(qat_run.run_dir).samples("val", loaded.classes)
    return preprocess_samples(samples, loaded.contract)


@pytest.mark.parametrize("target", ["onnxruntime-cpu", "openvino-cpu", "onnxruntime-cpu-msp"])
def test_the_threshold_accepts_the_stated_share_of_val_on_the_artifact(artifacts, qat_run,
                                                                      target):
    loaded = load_artifact(artifacts[target])
    unk = loaded.manifest.unknown
    assert unk["score"] == ("msp" if target.endswith("msp") else UNKNOWN_SCORE)
    assert unk["output"] == UNKNOWN_OUTPUT
    assert unk["target_tpr"] == 0.95 and unk["fitted_on"]["split"] == "train"
    _, scores = infer_scored(loaded.runner, val_of(qat_run, loaded))
    accepted = float((scores <= unk["threshold"]).mean())
    assert accepted == unk["val"]["tpr"]
    assert 0.95 <= accepted < 0.95 + 1 / len(scores) + 1e-9


def test_the_shipped_graph_computes_the_numpy_score_of_its_own_features(artifacts, qat_run):
    from ftedge.runtime.onnxruntime.runner import inference_session

    folder = artifacts["onnxruntime-cpu"]
    loaded = load_artifact(folder)
    model = onnx.load(str(folder / loaded.manifest.artifact))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    params = {"bank": inits[f"ftedge_{UNKNOWN_OUTPUT}/bank_t"].T,
              "k": loaded.manifest.unknown["k"]}
    assert params["bank"].shape[0] == loaded.manifest.unknown["fitted_on"]["n"]
    feats = feature_tensor(model)
    names = ["logits", UNKNOWN_OUTPUT, feats]
    logits, score, f = inference_session(with_outputs(model, [feats])).run(
        names, {"input": val_of(qat_run, loaded)})
    np.testing.assert_allclose(score[:, 0], score_numpy("knn", params, logits, features=f),
                               rtol=1e-4, atol=1e-5)


def test_predict_says_unknown_over_the_threshold(artifacts, qat_run, noise_images):
    folder = artifacts["onnxruntime-cpu"]
    red = sorted((qat_run.run_dir.parent / "colours" / "red").glob("*.png"))[0]
    noise = sorted(noise_images.glob("noise*.png"))[0]
    known, other = predict(folder, [red, noise])
    assert known["unknown"]["is_unknown"] is False and known["top"][0]["class"] == "red"
    assert other["unknown"]["is_unknown"] is True
    assert other["unknown"]["score"] > other["unknown"]["threshold"]
    out = CliRunner().invoke(cli, ["predict", str(folder), str(red), str(noise)])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert "unknown" not in lines[0] and lines[0].split(": ")[1].startswith("red ")
    assert ": unknown (score " in lines[1] and "> threshold" in lines[1]


def test_eval_unknown_reports_auroc_fpr_and_coverage_per_artifact(artifacts, noise_images,
                                                                  qat_run):
    for name, folder in artifacts.items():
        rep = evaluate(folder, unknown=noise_images)["unknown"]
        assert rep["n_unknown"] == 12 and rep["n_known"] == rep["accuracy_coverage"][0]["n"]
        assert rep["score"] == ("msp" if name.endswith("msp") else "knn")
        assert 0 <= rep["auroc"] <= 1 and 0 <= rep["fpr95"] <= 1
        assert 0 <= rep["accepted"] <= 1 and rep["known_accepted"] >= 0.95
        if not name.endswith("msp"):  # k-NN tells noise from the colours sharply
            assert rep["auroc"] > 0.9 and rep["fpr95"] < 0.5
        assert [p["coverage"] for p in rep["accuracy_coverage"]] == [1.0, 0.95, 0.9, 0.8, 0.7,
                                                                     0.5]
    run_rep = evaluate(qat_run.run_dir, unknown=noise_images)["unknown"]
    assert "model.fp32.onnx" in run_rep["measured_on"] and run_rep["score"] == UNKNOWN_SCORE


def test_artifacts_without_a_score_load_and_say_so(qat_run, tmp_path, noise_images):
    off = export_run(qat_run.run_dir, "onnxruntime-cpu", precision="int8", out=tmp_path / "off",
                     log=lambda m: None, unknown_score="off").folder
    # an artifact from before the field existed: no "unknown" key at all, sealed as then
    data = json.loads((off / "manifest.json").read_text())
    del data["unknown"]
    body = {k: v for k, v in data.items() if k not in ("digest", "section_digests")}
    (off / "manifest.json").write_text(json.dumps({**body, **digests(body)}))
    loaded = load_artifact(off)
    assert loaded.manifest.unknown is None
    assert infer_scored(loaded.runner, val_of(qat_run, loaded))[1] is None
    (result,) = predict(off, [sorted(noise_images.glob("*.png"))[0]])
    assert result["unknown"] is None and result["top"]
    out = CliRunner().invoke(cli, ["predict", str(off), str(sorted(noise_images.glob("*"))[0])])
    assert out.exit_code == 0 and "no unknown score" in out.stderr
    with pytest.raises(RunError, match="no unknown score"):
        evaluate(off, unknown=noise_images)
    script = subprocess.run([sys.executable, str(off / "deploy" / "infer.py"),
                             str(noise_images)], capture_output=True, text=True)
    assert script.returncode == 0 and "no unknown score" in script.stderr
    assert "UNKNOWN" not in script.stdout


def test_infer_py_says_unknown_without_ftedge(artifacts, noise_images, qat_run):
    red = sorted((qat_run.run_dir.parent / "colours" / "red").glob("*.png"))[0]
    for folder in (artifacts["onnxruntime-cpu"], artifacts["openvino-cpu"]):
        script = subprocess.run([sys.executable, str(folder / "deploy" / "infer.py"),
                                 str(red), str(noise_images / "noise0.png"), "--json"],
                                capture_output=True, text=True)
        assert script.returncode == 0, script.stderr
        known, other = json.loads(script.stdout)
        assert known["unknown"]["is_unknown"] is False
        assert other["unknown"]["is_unknown"] is True
        # the same decision, score and threshold as ftedge's own predict
        mine = predict(folder, [noise_images / "noise0.png"])[0]["unknown"]
        assert other["unknown"]["threshold"] == mine["threshold"]
        assert other["unknown"]["score"] == pytest.approx(mine["score"], rel=1e-5)


@pytest.mark.parametrize("score, tpr, match", [("cosine", None, "--unknown-score"),
                                               (None, 1.0, "--unknown-tpr"),
                                               (None, float("nan"), "--unknown-tpr")])
def test_bad_unknown_options_are_refused_before_any_work(qat_run, tmp_path, score, tpr, match):
    with pytest.raises(ConfigError, match=match):
        export_run(qat_run.run_dir, "onnxruntime-cpu", precision="int8", out=tmp_path / "x",
                   log=lambda m: None, unknown_score=score, unknown_tpr=tpr)
    assert not (tmp_path / "x").exists()
