"""The runtime layouts keep the shared graph's values: same saturation, at most half a step off."""

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from ftedge.graph.layout import to_openvino_layout, to_ort_layout


def _relu_q_model(act: str = "Relu", scale: float = 0.1):
    nodes = [helper.make_node(act, ["x", "lo", "hi"] if act == "Clip" else ["x"], ["a"]),
             helper.make_node("QuantizeLinear", ["a", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    inits = [numpy_helper.from_array(np.array([scale], np.float32), "s"),
             numpy_helper.from_array(np.array([0], np.int8), "z"),
             numpy_helper.from_array(np.array(0, np.float32), "lo"),
             numpy_helper.from_array(np.array(30, np.float32), "hi")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_uint8_after_relu_saturates_where_int8_did():
    x = np.array([1.0, 12.7, 20.0, 30.0], np.float32)
    for act in ("Relu", "Clip"):
        for layout in (to_ort_layout, to_openvino_layout):
            model = _relu_q_model(act)
            before = _run(model, x)
            layout(model)
            after = _run(model, x)
            np.testing.assert_allclose(before, [1.0, 12.7, 12.7, 12.7], rtol=1e-6)
            np.testing.assert_allclose(after[1:], before[1:], rtol=1e-6)  # saturation kept
            assert abs(after[0] - before[0]) <= 0.1 * 127 / 255 / 2 + 1e-6  # finer grid
            zps = [t for t in model.graph.initializer if t.data_type == TensorProto.UINT8]
            assert zps, "the Q after the activation became uint8"


def test_layout_leaves_a_graph_without_a_pattern_alone():
    model = _relu_q_model("Sigmoid")
    x = np.array([-1.0, 0.0, 0.5, 3.0], np.float32)
    before = _run(model, x)
    facts = to_openvino_layout(model)
    assert facts["relu_q_to_uint8"] == 0
    np.testing.assert_array_equal(_run(model, x), before)
