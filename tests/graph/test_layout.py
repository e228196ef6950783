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


def _conv_qdq_model(w: np.ndarray, group: int):
    """x -> Q/DQ (int8) -> Conv(DQ(int8 weights w), group) -> y."""
    c = w.shape[0]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["y"], group=group, pads=[1, 1, 1, 1])]
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(w.astype(np.int8), "wq"),
             numpy_helper.from_array(np.full(c, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(c, np.int8), "wz")]
    cin = w.shape[1] * group
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_full_range_depthwise_weights_keep_uint8_activations():
    """Depthwise kernels cannot saturate: their full-range weights do not stop the uint8
    layout; full-range weights of a plain or grouped (2 outputs per group) conv do."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, (1, 8, 6, 6)).astype(np.float32)
    cases = {"depthwise": (rng.integers(-127, 128, (8, 1, 3, 3)), 8, True),
             "dense": (rng.integers(-127, 128, (8, 8, 3, 3)), 1, False),
             "dense 7-bit": (rng.integers(-64, 65, (8, 8, 3, 3)), 1, True),
             "grouped": (rng.integers(-127, 128, (16, 1, 3, 3)), 8, False)}
    for name, (w, group, unsigned) in cases.items():
        w[:, :, 0, 0] = 127 if name != "dense 7-bit" else 64  # the extreme is always present
        model = _conv_qdq_model(w, group)
        before = _run_conv(model, x)
        facts = to_ort_layout(model)
        assert facts["unsigned_activations"] is unsigned, name
        np.testing.assert_allclose(_run_conv(model, x), before, rtol=1e-5, atol=1e-5)


def _run_conv(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]
