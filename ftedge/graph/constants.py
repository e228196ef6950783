"""Constants as initializers: Constant/Identity nodes turned into initializers, constant
arithmetic folded, unused initializers pruned."""

from __future__ import annotations

import numpy as np

def constants_to_initializers(model) -> None:
    """Turn Constant nodes, and Identity nodes of constants (the exporter's de-duplication),
    into initializers, so every constant is found in one place."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    for node in list(model.graph.node):
        arr = None
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            arr = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Identity" and node.input[0] in inits:
            arr = numpy_helper.to_array(inits[node.input[0]])
        if arr is None or node.output[0] in outputs:
            continue
        t = numpy_helper.from_array(arr, node.output[0])
        model.graph.initializer.append(t)
        inits[t.name] = t
        model.graph.node.remove(node)


def fold_constant_nodes(model, opset: int) -> int:
    """Evaluate nodes whose inputs are all constants (shape and pad arithmetic) into initializers.

    Q/DQ nodes are left alone: weights are quantized by `store_quantized_weights` with
    PyTorch's exact rounding. Returns the number of nodes folded.
    """
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    constants_to_initializers(model)
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    folded = 0
    for node in list(model.graph.node):
        if (node.op_type in ("QuantizeLinear", "DequantizeLinear") or not node.input
                or not all(i == "" or i in consts for i in node.input)
                or any(o in outputs for o in node.output)):
            continue
        feeds = {i: consts[i] for i in node.input if i}
        values = ReferenceEvaluator(node, opsets={"": opset}).run(None, feeds)
        for name, value in zip(node.output, values):
            arr = np.asarray(value)
            consts[name] = arr
            model.graph.initializer.append(numpy_helper.from_array(arr, name))
        model.graph.node.remove(node)
        folded += 1
    return folded


def prune_unused_initializers(model) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    for t in [t for t in model.graph.initializer if t.name not in used]:
        model.graph.initializer.remove(t)
