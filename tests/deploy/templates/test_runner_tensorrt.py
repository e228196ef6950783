"""deploy/templates/runner_tensorrt.py without a GPU: which engine it loads and checks.
Running the engine is tests/deploy/test_tensorrt_gpu.py's (marked tensorrt)."""

import json

import pytest

from ftedge.deploy.templates.artifact import ArtifactError
from ftedge.deploy.templates.runner_tensorrt import (_check, _check_unlisted_engine,
                                                     engine_name, model_files)
from ftedge.io import sha256_file


def test_the_engine_name_and_when_it_is_a_listed_file():
    built = {"artifact": "model.engine", "files": {"model.engine": "0" * 64}}
    assert engine_name(built) == "model.engine" and model_files(built) == ["model.engine"]
    plan_only = {"artifact": "model.int8.onnx", "extra": {"engine": "custom.plan"},
                 "files": {"model.int8.onnx": "0" * 64}}
    assert engine_name(plan_only) == "custom.plan" and model_files(plan_only) == []
    assert engine_name({"artifact": "model.int8.onnx"}) == "model.engine"


def test_an_engine_built_later_is_checked_against_engine_json(tmp_path, capsys):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine bytes")
    _check_unlisted_engine(engine, {})
    assert "used unchecked" in capsys.readouterr().err  # no record: said, not refused
    (tmp_path / "engine.json").write_text(json.dumps({"engine_sha256": sha256_file(engine)}))
    _check_unlisted_engine(engine, {})
    engine.write_bytes(b"another engine")
    with pytest.raises(ArtifactError, match="not the engine recorded") as e:
        _check_unlisted_engine(engine, {})
    assert "trtexec.sh" in e.value.hint


def test_cuda_results_are_unpacked_or_raised():
    assert _check((0, 7)) == 7 and _check((0, 1, 2)) == (1, 2)
    with pytest.raises(ArtifactError, match="CUDA call failed: 2"):
        _check((2, None))
