"""graph/qdq.py on hand-built Q/DQ graphs: each clean-up changes the graph, not its outputs."""

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from ftedge.graph.qdq import hoist_pads_above_qdq, remove_repeated_qdq, store_quantized_weights

RNG = np.random.default_rng(0)


def _model(nodes, inits, shape):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _ops(model):
    return [n.op_type for n in model.graph.node]


def _scales(s2):
    return {"s": np.array(0.05, np.float32), "z": np.array(0, np.int8),
            "s2": np.array(s2, np.float32), "z2": np.array(0, np.int8)}


def _requantized(s2):
    return _model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q1"]),
                   helper.make_node("DequantizeLinear", ["q1", "s", "z"], ["d1"]),
                   helper.make_node("QuantizeLinear", ["d1", "s2", "z2"], ["q2"]),
                   helper.make_node("DequantizeLinear", ["q2", "s2", "z2"], ["d2"]),
                   helper.make_node("Relu", ["d2"], ["y"])], _scales(s2), [2, 8])


def test_a_pair_with_the_same_scale_is_removed_and_the_output_is_unchanged():
    x = RNG.normal(0, 2, (2, 8)).astype(np.float32)
    model = _requantized(0.05)  # equal values under another name: still the same quantizer
    before = _run(model, x)
    assert remove_repeated_qdq(model) == 1
    assert _ops(model) == ["QuantizeLinear", "DequantizeLinear", "Relu"]
    assert model.graph.node[2].input[0] == "d1"
    np.testing.assert_array_equal(_run(model, x), before)


def test_a_real_requantization_is_kept():
    model = _requantized(0.2)
    assert remove_repeated_qdq(model) == 0 and len(model.graph.node) == 5


def _padded(value=None):
    pads = {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
            "w": RNG.normal(0, 1, (2, 1, 3, 3)).astype(np.float32), **_scales(0.05)}
    pad_in = ["d", "pads"]
    if value is not None:
        pads["v"] = np.array(value, np.float32)
        pad_in.append("v")
    return _model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                   helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
                   helper.make_node("Pad", pad_in, ["p"], mode="constant"),
                   helper.make_node("Conv", ["p", "w"], ["y"])], pads, [1, 1, 5, 5])


def test_a_zero_pad_between_dq_and_conv_moves_above_the_quantizer():
    x = RNG.normal(0, 1, (1, 1, 5, 5)).astype(np.float32)
    model = _padded()
    before = _run(model, x)
    assert hoist_pads_above_qdq(model) == 1
    assert _ops(model) == ["Pad", "QuantizeLinear", "DequantizeLinear", "Conv"]
    assert model.graph.node[0].input[0] == "x" and model.graph.node[3].input[0] == "d"
    np.testing.assert_array_equal(_run(model, x), before)  # Q(0) == 0: not one value moves


def test_a_pad_with_a_nonzero_value_stays_where_it_is():
    model = _padded(value=1.0)
    assert hoist_pads_above_qdq(model) == 0
    assert _ops(model) == ["QuantizeLinear", "DequantizeLinear", "Pad", "Conv"]


def test_weights_are_stored_as_int8_per_channel_and_compute_the_same():
    w = RNG.normal(0, 0.3, (4, 2, 3, 3)).astype(np.float32)
    scale = (np.abs(w).reshape(4, -1).max(1) / 127).astype(np.float32)
    model = _model([helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], axis=0),
                    helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
                    helper.make_node("Conv", ["x", "wd"], ["y"])],
                   {"w": w, "ws": scale, "wz": np.zeros(4, np.int8)}, [1, 2, 6, 6])
    x = RNG.normal(0, 1, (1, 2, 6, 6)).astype(np.float32)
    before = _run(model, x)
    assert store_quantized_weights(model) == 1
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert "w" not in inits and inits["wq"].dtype == np.int8 and inits["wq"].shape == w.shape
    assert np.abs(inits["wq"]).reshape(4, -1).max(1).tolist() == [127] * 4  # each channel's top
    assert _ops(model) == ["DequantizeLinear", "Conv"]
    np.testing.assert_allclose(_run(model, x), before, rtol=0, atol=1e-5)
