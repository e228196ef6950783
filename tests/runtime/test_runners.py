"""Runners are context managers: leaving the `with` releases the session, also on an error,
and wrappers release what they wrap."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ftedge.runtime import FixedBatchRunner, LoadedModel, PixelInputRunner, close_runner
from ftedge.runtime.onnxruntime.runner import OrtRunner, onnx_logits


def _double(path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["logits"])], "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_an_ort_runner_releases_its_session_on_exit_and_on_error(tmp_path):
    path = _double(tmp_path / "m.onnx")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with OrtRunner(path) as runner:
        np.testing.assert_array_equal(runner.infer(x), 2 * x)
    assert runner.session is None
    with pytest.raises(RuntimeError, match="boom"):
        with OrtRunner(path) as failing:
            raise RuntimeError("boom")
    assert failing.session is None
    np.testing.assert_array_equal(onnx_logits(path, x, batch_size=1), 2 * x)


def test_wrappers_and_loaded_models_close_what_they_wrap(tmp_path):
    path = _double(tmp_path / "m.onnx")
    with FixedBatchRunner(OrtRunner(path), 4) as fixed:
        out = fixed.infer(np.ones((5, 3), np.float32))
    assert out.shape == (5, 3) and fixed.inner.session is None
    pixel = PixelInputRunner(OrtRunner(path), {}, "uint8")
    with LoadedModel(tmp_path, ["a", "b", "c"], {}, pixel, tmp_path / "m.onnx", "m"):
        pass
    assert pixel.inner.session is None

    class Bare:  # a runner with only infer() (as tests pass) holds nothing to release
        def infer(self, batch):
            return batch

    close_runner(Bare())
