"""deploy/infer.py of real exported artifacts, in an interpreter that cannot import ftedge or
torch, against `ftedge predict` on the same artifact and the run's val images."""

import importlib.util
import json

import numpy as np
import pytest

import ftedge
from ftedge.formats.run import RunFolder
from tests.deploy.conftest import run_infer

CASES = [("onnxruntime-cpu", "fp32"), ("onnxruntime-cpu", "int8"),
         ("openvino-cpu", "fp32"), ("openvino-cpu", "int8")]


@pytest.mark.parametrize("target, precision", CASES)
def test_infer_py_agrees_with_ftedge_predict(qat_run, tmp_path, target, precision):
    if target.startswith("openvino") and importlib.util.find_spec("openvino") is None:
        pytest.skip("OpenVINO is not installed")
    res = ftedge.export_run(qat_run.run_dir, target, precision=precision, out=tmp_path / "a",
                            log=lambda m: None)
    run = RunFolder(qat_run.run_dir)
    samples = run.samples("val", res.manifest["classes"]) + run.samples(
        "train", res.manifest["classes"])
    images = [s.path for s in samples]
    proc = run_infer(res.folder / "deploy" / "infer.py", *images, "--json", "--topk", 3,
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    ours = ftedge.predict(res.folder, images, topk=3)
    assert [t["image"] for t in theirs] == [str(p) for p in images]
    agree = np.mean([a["top"][0]["class"] == b["top"][0]["class"]
                     for a, b in zip(theirs, ours)])
    assert agree >= 0.99
    if precision == "fp32":
        diffs = [abs(a["top"][0]["probability"] - b["top"][0]["prob"])
                 for a, b in zip(theirs, ours)]
        assert max(diffs) <= 1e-3
    labels = (res.folder / "deploy" / "labels.txt").read_text().splitlines()
    assert labels == res.manifest["classes"]
