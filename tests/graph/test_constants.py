"""graph/constants.py on hand-built graphs: the values ONNX Runtime computes stay the same."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ftedge.graph.constants import (constants_to_initializers, fold_constant_nodes,
                                    prune_unused_initializers)

X = np.arange(6, dtype=np.float32).reshape(2, 3)


def _model(nodes, inits, outputs=("y",)):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X})


def _inits(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_constant_and_identity_nodes_become_initializers_but_outputs_stay_nodes():
    c = numpy_helper.from_array(np.array([1, 2, 3], np.float32))
    out_c = numpy_helper.from_array(np.array([7], np.float32))
    model = _model([helper.make_node("Constant", [], ["c"], value=c),
                    helper.make_node("Identity", ["w"], ["w2"]),
                    helper.make_node("Add", ["x", "c"], ["s"]),
                    helper.make_node("Mul", ["s", "w2"], ["y"]),
                    helper.make_node("Constant", [], ["k"], value=out_c)],
                   [numpy_helper.from_array(np.full(3, 2, np.float32), "w")], ("y", "k"))
    before = _run(model)
    constants_to_initializers(model)
    assert [n.op_type for n in model.graph.node] == ["Add", "Mul", "Constant"]  # k: an output
    inits = _inits(model)
    assert inits["c"].tolist() == [1, 2, 3] and inits["w2"].tolist() == [2, 2, 2]
    for a, b in zip(before, _run(model)):
        np.testing.assert_array_equal(a, b)


def test_constant_arithmetic_is_folded_and_qdq_is_left_alone():
    inits = [numpy_helper.from_array(np.array([1, 2, 3], np.float32), "a"),
             numpy_helper.from_array(np.array([4, 5, 6], np.float32), "b"),
             numpy_helper.from_array(np.array([0.5, 0.5, 0.5], np.float32), "w"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z")]
    model = _model([helper.make_node("Add", ["a", "b"], ["ab"]),
                    helper.make_node("Mul", ["ab", "ab"], ["ab2"]),
                    helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"]),
                    helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
                    helper.make_node("Mul", ["x", "ab2"], ["xa"]),
                    helper.make_node("Add", ["xa", "wd"], ["y"])], inits)
    before = _run(model)
    assert fold_constant_nodes(model, 17) == 2
    assert [n.op_type for n in model.graph.node] == ["QuantizeLinear", "DequantizeLinear",
                                                      "Mul", "Add"]
    assert _inits(model)["ab2"].tolist() == [25, 49, 81]
    np.testing.assert_array_equal(before[0], _run(model)[0])


def test_unused_initializers_are_pruned_and_used_ones_kept():
    model = _model([helper.make_node("Add", ["x", "a"], ["y"])],
                   [numpy_helper.from_array(np.ones(3, np.float32), "a"),
                    numpy_helper.from_array(np.ones(3, np.float32), "unused")])
    prune_unused_initializers(model)
    assert list(_inits(model)) == ["a"]
    np.testing.assert_array_equal(_run(model)[0], X + 1)


@pytest.mark.parametrize("op", ["QuantizeLinear", "DequantizeLinear"])
def test_a_qdq_node_of_constants_is_never_folded(op):
    inits = [numpy_helper.from_array(np.array([0.5, -0.5], np.float32 if op[0] == "Q"
                                              else np.int8), "v"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z")]
    model = _model([helper.make_node(op, ["v", "s", "z"], ["q"]),
                    helper.make_node("Identity", ["x"], ["y"])], inits)
    assert fold_constant_nodes(model, 17) == 0
    assert model.graph.node[0].op_type == op
