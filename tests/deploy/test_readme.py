"""deploy/readme.py: the deploy README says what this artifact's manifest says."""

import numpy as np

from ftedge.deploy.readme import readme_text
from tests.deploy.conftest import CLASSES, CONTRACT, make_manifest

UNKNOWN = {"output": "unknown_score", "score": "knn", "threshold": 0.123456789,
           "target_tpr": 0.95, "val": {"n": 40, "tpr": 0.95}, "measured_on": "the artifact"}


def _readme(tmp_path, runtime, artifact, **kw):
    return readme_text(tmp_path, make_manifest(runtime, artifact, **kw), "tiny",
                       written=["deploy/infer.py", "deploy/labels.txt"])


def test_the_contract_numbers_are_the_manifests_float32_values(tmp_path):
    text = _readme(tmp_path, "onnxruntime", "model.fp32.onnx")
    assert text.startswith("# Deploy kit: tiny_net on onnxruntime-cpu (onnxruntime, fp32)")
    for m in CONTRACT["mean"]:
        assert f"{float(np.float32(m)):.9g}" in text
    assert f"{len(CLASSES)} logits" in text and "N x 3 x 32 x 32" in text
    assert "- `deploy/README.md`\n- `deploy/infer.py`\n- `deploy/labels.txt`" in text
    assert "export the run for a TensorRT target" in text  # no DeepStream config here
    assert "pip install onnxruntime" in text and "trtexec.sh" not in text


def test_unknown_score_and_fixed_batch_sections(tmp_path):
    off = _readme(tmp_path, "onnxruntime", "model.fp32.onnx")
    assert "has no unknown score" in off and "Batches of up to 8" in off
    on = _readme(tmp_path, "onnxruntime", "model.fp32.onnx", batch=4, unknown=UNKNOWN)
    assert "above **0.123456789**" in on and "`unknown_score`" in on
    assert "batches of exactly 4" in on


def test_a_tensorrt_kit_says_how_to_build_its_engine(tmp_path):
    text = _readme(tmp_path, "tensorrt", "model.engine", precision="int8",
                   extra={"onnx": "model.int8.onnx"})
    assert "sh trtexec.sh" in text and "model.engine" in text
    assert "## 2. DeepStream" in text and "export the run for a TensorRT target" not in text


def test_the_decode_step_names_the_contracts_draft_margin(tmp_path):
    full = _readme(tmp_path, "onnxruntime", "model.fp32.onnx")
    assert "1. **Decode** the whole file;" in full
    old = _readme(tmp_path, "onnxruntime", "model.fp32.onnx",
                  contract={**CONTRACT, "decode": "draft"})  # before the key: 2
    assert "(w, h) = ceil(2 x the size step 2 resizes to" in old
    one = _readme(tmp_path, "onnxruntime", "model.fp32.onnx",
                  contract={**CONTRACT, "decode": "draft", "draft_margin": 1.0})
    assert "(w, h) = ceil(1 x the size step 2 resizes to" in one
