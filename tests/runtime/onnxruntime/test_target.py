"""ONNX Runtime target: the INT8 graph's input quantizer absorbs the in-graph normalisation
only when ONNX Runtime computes the same integers for every pixel value."""

from __future__ import annotations

import numpy as np
import onnx

from ftedge.graph import normalize
from ftedge.graph.normalize import prepend_normalization
from ftedge.runtime.onnxruntime.target import fold_normalization
from tests.graph.test_normalize import MEAN, STD, _graph, _ort


def _pixels_graph(qdq=True):
    return prepend_normalization(_graph(qdq), mean=MEAN, std=STD, input_format="uint8")


def test_the_fold_is_kept_when_every_pixel_value_quantizes_alike():
    model = _pixels_graph()
    feed = np.random.default_rng(3).integers(0, 256, (3, 3, 8, 8)).astype(np.uint8)
    want = _ort(model, feed)
    assert fold_normalization(model) is True
    assert not {"Mul", "Sub", "Div"} & {n.op_type for n in model.graph.node}
    assert np.array_equal(_ort(model, feed), want)


def test_a_fold_that_changes_one_integer_is_refused_and_the_graph_kept(monkeypatch):
    real = normalize.fold_into_quantizer

    def off_by_a_tie(model):  # as if float rounding had met a .5 tie on one pixel value
        assert real(model)
        shift = next(t for t in model.graph.initializer if t.name.endswith("_shift"))
        values = onnx.numpy_helper.to_array(shift).copy()
        values[0, 0, 0, 0] += np.float32(0.9)
        shift.CopyFrom(onnx.numpy_helper.from_array(values, shift.name))
        return True

    monkeypatch.setattr(normalize, "fold_into_quantizer", off_by_a_tie)
    model = _pixels_graph()
    before = model.SerializeToString()
    assert fold_normalization(model) is False
    assert model.SerializeToString() == before


def test_nothing_to_fold_without_pixels_in_or_an_input_quantizer():
    assert fold_normalization(_graph(True)) is None  # float input
    assert fold_normalization(_pixels_graph(qdq=False)) is None  # FP32: no quantizer
