"""deploy/templates/runner_onnxruntime.py: the optimizers it turns off, and its outputs."""

import numpy as np
import onnxruntime as ort
import pytest

from ftedge.deploy.templates import runner_onnxruntime as piece
from tests.deploy.conftest import make_manifest, tiny_onnx


@pytest.mark.parametrize("state, off", [("vnni", []), ("not-x86", []),
                                        ("no-vnni", ["QDQS8ToU8Transformer"]),
                                        ("unknown", ["QDQS8ToU8Transformer"])])
def test_the_u8_rewrite_is_off_where_it_could_saturate(monkeypatch, state, off):
    monkeypatch.setattr(piece, "vnni_state", lambda: state)
    assert piece.disabled_optimizers() == off


def test_the_model_computes_what_onnx_runtime_computes(tmp_path):
    tiny_onnx(tmp_path / "model.fp32.onnx", 3)
    manifest = make_manifest("onnxruntime", "model.fp32.onnx", classes=["a", "b", "c"])
    assert piece.model_files(manifest) == ["model.fp32.onnx"]
    model = piece.Model(tmp_path, manifest)
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 32, 32))  # float64 in: cast for the graph
    want = ort.InferenceSession(str(tmp_path / "model.fp32.onnx")).run(
        None, {"input": x.astype(np.float32)})[0]
    logits, score = model.infer_scored(x)
    np.testing.assert_allclose(logits, want, rtol=1e-6, atol=1e-6)
    assert score is None  # no unknown output in this manifest
