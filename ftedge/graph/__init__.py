"""Every ONNX graph pass in one place: the Q/DQ clean-ups after export, constant folding,
metadata, the per-runtime layouts, batch/FP16 edits, and what the graph's INT8 covers.

Passes edit an onnx.ModelProto in place and return counts; none imports torch.
"""

from __future__ import annotations


def edges(model) -> tuple[dict, dict]:
    """Which node produces each tensor, and which nodes consume it."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def const(model, name: str):
    """An initializer's value as a numpy array, None when `name` is not an initializer."""
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def qparam_shape(node, scale, ndim: int) -> list[int]:
    """The shape that broadcasts a Q/DQ node's scale and zero-point over its `ndim`-d tensor:
    the channel axis (the node's `axis`, 1 by default) for per-channel ones, else all 1."""
    shape = [1] * ndim
    if scale.ndim == 1 and scale.size > 1:
        shape[next((a.i for a in node.attribute if a.name == "axis"), 1)] = -1
    return shape
