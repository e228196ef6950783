"""Normalisation inside the graph: 8-bit pixels in give the logits the float input gave."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ftedge.errors import ExportError
from ftedge.graph.normalize import pixels_from_normalized, prepend_normalization

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # three stds: nvinfer cannot
CONTRACT = {"mean": MEAN, "std": STD}


def _graph(qdq: bool) -> onnx.ModelProto:
    """input [N,3,8,8] -> (Q/DQ) -> Conv 3x3 -> GlobalAveragePool -> Flatten -> logits [N,4]."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    nodes, x = [], "input"
    if qdq:  # the shape of ftedge's INT8 graphs: the input quantizer first, int8 weights
        scale = np.float32(2.7 / 127)
        wscale = (np.abs(w).reshape(4, -1).max(1) / 127).astype(np.float32)
        inits += [numpy_helper.from_array(np.array(scale), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z"),
                  numpy_helper.from_array(np.rint(w / wscale[:, None, None, None]).astype(
                      np.int8), "wq"),
                  numpy_helper.from_array(wscale, "ws"),
                  numpy_helper.from_array(np.zeros(4, np.int8), "wz")]
        nodes += [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
                  helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0)]
        x, weight = "xd", "wd"
    else:
        weight = "w"
    nodes += [helper.make_node("Conv", [x, weight], ["c"], pads=[1, 1, 1, 1]),
              helper.make_node("GlobalAveragePool", ["c"], ["p"]),
              helper.make_node("Flatten", ["p"], ["logits"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                   ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _contract_floats(pixels: np.ndarray) -> np.ndarray:
    """The contract's float path (deploy/templates/preprocess.normalize), NCHW."""
    x = pixels.astype(np.float32) * np.float32(1.0 / 255)
    return (x - np.float32(MEAN).reshape(1, 3, 1, 1)) / np.float32(STD).reshape(1, 3, 1, 1)


def _ort(model, x):
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def _ov(model, x):
    import openvino as ov

    compiled = ov.Core().compile_model(ov.Core().read_model(model.SerializeToString(), b""),
                                       "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(x)[0]


@pytest.mark.parametrize("qdq", [False, True], ids=["fp32", "int8-qdq"])
@pytest.mark.parametrize("fmt,layout", [("uint8", "NCHW"), ("float255", "NCHW"),
                                        ("uint8", "NHWC")])
def test_pixels_in_give_the_float_inputs_logits(qdq, fmt, layout):
    pixels = np.random.default_rng(1).integers(0, 256, (5, 3, 8, 8)).astype(np.uint8)
    want = _ort(_graph(qdq), _contract_floats(pixels))
    model = prepend_normalization(_graph(qdq), mean=MEAN, std=STD, input_format=fmt,
                                  layout=layout)
    onnx.checker.check_model(onnx.shape_inference.infer_shapes(model, strict_mode=True),
                             full_check=True)
    feed = pixels.transpose(0, 2, 3, 1) if layout == "NHWC" else pixels
    feed = np.ascontiguousarray(feed, np.uint8 if fmt == "uint8" else np.float32)
    assert model.graph.input[0].type.tensor_type.elem_type == (
        TensorProto.UINT8 if fmt == "uint8" else TensorProto.FLOAT)
    # ONNX Runtime runs Mul, Sub, Div as written: the very tensor, the very logits
    assert np.array_equal(_ort(model, feed), want)
    # OpenVINO fuses them into one scale-shift: equal up to float rounding (and the INT8
    # input quantizer's rounding of a value on a .5 boundary)
    got = _ov(model, feed)
    assert np.allclose(got, _ov(_graph(qdq), _contract_floats(pixels)), atol=0.05)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_the_contracts_floats_go_back_to_their_pixels_exactly():
    pixels = np.arange(256, dtype=np.uint8).repeat(3).reshape(1, 16, 16, 3).transpose(0, 3, 1, 2)
    for mean, std in ((MEAN, STD), ([0.5] * 3, [0.5] * 3), ([0.0] * 3, [1.0] * 3),
                      ([0.1, 0.9, 0.33], [0.01, 3.0, 0.7])):
        x = (pixels.astype(np.float32) * np.float32(1 / 255) - np.float32(mean).reshape(
            1, 3, 1, 1)) / np.float32(std).reshape(1, 3, 1, 1)
        back = pixels_from_normalized(x, {"mean": mean, "std": std}, "uint8")
        assert back.dtype == np.uint8 and np.array_equal(back, pixels)
    hwc = pixels_from_normalized(x, {"mean": [0.1, 0.9, 0.33], "std": [0.01, 3.0, 0.7]},
                                 "float255", layout="NHWC")
    assert hwc.dtype == np.float32 and np.array_equal(hwc, pixels.transpose(0, 2, 3, 1))


def test_graphs_it_cannot_take_are_refused():
    model = _graph(False)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    with pytest.raises(ExportError, match="one float32 input"):
        prepend_normalization(model, mean=MEAN, std=STD, input_format="uint8")
    with pytest.raises(ExportError, match="unknown input"):
        prepend_normalization(_graph(False), mean=MEAN, std=STD, input_format="int4")


def _ort_session_run(model, x):
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("mean,std", [(MEAN, STD), ([0.5] * 3, [0.5] * 3)],
                         ids=["imagenet-per-channel", "lite0-one-std"])
@pytest.mark.parametrize("fmt,layout", [("uint8", "NCHW"), ("float255", "NCHW"),
                                        ("uint8", "NHWC")])
def test_the_input_quantizer_absorbs_the_normalisation_with_the_same_integers(
        mean, std, fmt, layout):
    from ftedge.graph.normalize import fold_into_quantizer, probe_pixels, quantizer_probe

    model = prepend_normalization(_graph(True), mean=mean, std=std, input_format=fmt,
                                  layout=layout)
    before = quantizer_probe(model)
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    assert fold_into_quantizer(folded)
    ops = [n.op_type for n in folded.graph.node]
    assert "Mul" not in ops and "Sub" not in ops and "Div" not in ops
    assert ops.count("QuantizeLinear") == 1 and "Add" in ops
    onnx.checker.check_model(onnx.shape_inference.infer_shapes(folded, strict_mode=True),
                             full_check=True)
    # every pixel value of every channel: the same integers as Mul/Sub/Div + the quantizer
    x = probe_pixels(before)
    assert x.shape[3 if layout == "NCHW" else 2] > 256
    assert np.array_equal(_ort_session_run(before, x),
                          _ort_session_run(quantizer_probe(folded), x))
    # so the same logits for any image
    pixels = np.random.default_rng(2).integers(0, 256, (4, 3, 8, 8)).astype(np.uint8)
    feed = pixels.transpose(0, 2, 3, 1) if layout == "NHWC" else pixels
    feed = np.ascontiguousarray(feed, np.uint8 if fmt == "uint8" else np.float32)
    assert np.array_equal(_ort(folded, feed), _ort(model, feed))


def test_a_graph_without_an_input_quantizer_is_left_alone():
    from ftedge.graph.normalize import fold_into_quantizer, quantizer_probe

    fp32 = prepend_normalization(_graph(False), mean=MEAN, std=STD, input_format="uint8")
    before = fp32.SerializeToString()
    assert quantizer_probe(fp32) is None and not fold_into_quantizer(fp32)
    assert fp32.SerializeToString() == before
    int8 = _graph(True)  # float input: no in-graph normalisation to fold
    assert quantizer_probe(int8) is None and not fold_into_quantizer(int8)
