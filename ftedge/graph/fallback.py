"""Keep chosen layers of the shared Q/DQ graph in float, for every runtime at once.

A layer stays in float by losing the Q/DQ pairs that feed it: its weight becomes the float
weight it dequantized to (exactly the values the INT8 graph computed with), and its input
reads the float tensor before the activation's QuantizeLinear. Other consumers of a shared
Q/DQ pair (a residual shortcut) keep theirs. The edited graph is still the one graph that
ONNX Runtime, OpenVINO and TensorRT all read; the names of the float layers travel in its
metadata as `ftedge.float_layers` (a JSON list).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import numpy as np
from onnx import numpy_helper

from ftedge.graph import const, edges, qparam_shape
from ftedge.graph.constants import prune_unused_initializers
from ftedge.graph.coverage import COMPUTE_OPS
from ftedge.graph.edit import update_metadata

FLOAT_LAYERS_KEY = "ftedge.float_layers"


@dataclass(frozen=True)
class QuantizedLayer:
    """A Conv/Gemm whose input and weight both come from DequantizeLinear."""

    name: str
    op_type: str
    weight_shape: tuple[int, ...]


def layer_name(node) -> str:
    return node.name or node.output[0]


def quantized_layers(model) -> list[QuantizedLayer]:
    """The graph's INT8 compute layers, in graph order."""
    producer, _ = edges(model)
    out = []
    for n in model.graph.node:
        if n.op_type not in COMPUTE_OPS or len(n.input) < 2:
            continue
        x, w = producer.get(n.input[0]), producer.get(n.input[1])
        if x is not None and w is not None and x.op_type == w.op_type == "DequantizeLinear":
            wq = const(model, w.input[0])
            out.append(QuantizedLayer(layer_name(n), n.op_type,
                                      tuple(wq.shape) if wq is not None else ()))
    return out


def _dequantized_weight(model, dq) -> np.ndarray:
    """The float weight a weight DequantizeLinear produces, in float32 as runtimes compute it."""
    q = const(model, dq.input[0]).astype(np.float32)
    scale = const(model, dq.input[1]).astype(np.float32)
    zp = const(model, dq.input[2]).astype(np.float32) if len(dq.input) > 2 and dq.input[2] \
        else np.zeros_like(scale)
    shape = qparam_shape(dq, scale, q.ndim)
    return ((q - zp.reshape(shape)) * scale.reshape(shape)).astype(np.float32)


def _prune_dead_qdq(model) -> None:
    """Drop Q/DQ nodes nothing reads any more (repeat: a dead DQ can leave its Q dead)."""
    outputs = {o.name for o in model.graph.output}
    while True:
        used = {i for n in model.graph.node for i in n.input} | outputs
        dead = [n for n in model.graph.node
                if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    prune_unused_initializers(model)


def keep_in_float(model, names: list[str]):
    """A copy of `model` with the layers `names` computing in float (see the module)."""
    model = copy.deepcopy(model)
    producer, _ = edges(model)
    by_name = {layer_name(n): n for n in model.graph.node}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"no layer named {unknown[0]!r} in the graph")
    for name in names:
        node = by_name[name]
        x_dq, w_dq = producer.get(node.input[0]), producer.get(node.input[1])
        if x_dq is None or w_dq is None or x_dq.op_type != "DequantizeLinear" \
                or w_dq.op_type != "DequantizeLinear":
            continue  # already float
        x_q = producer.get(x_dq.input[0])
        if x_q is None or x_q.op_type != "QuantizeLinear":
            continue
        weight = numpy_helper.from_array(_dequantized_weight(model, w_dq),
                                         f"{name}.float_weight")
        model.graph.initializer.append(weight)
        node.input[0], node.input[1] = x_q.input[0], weight.name
    _prune_dead_qdq(model)
    previous = {p.key: p.value for p in model.metadata_props}.get(FLOAT_LAYERS_KEY)
    kept = list(dict.fromkeys((json.loads(previous) if previous else []) + list(names)))
    update_metadata(model, {FLOAT_LAYERS_KEY: json.dumps(kept)})
    return model


def float_layers_of(path) -> list[str]:
    """The layers a graph file keeps in float (its `ftedge.float_layers` metadata)."""
    from ftedge.graph.metadata import read_metadata

    value = read_metadata(path).get(FLOAT_LAYERS_KEY)
    return json.loads(value) if value else []
