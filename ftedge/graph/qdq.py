"""Q/DQ clean-ups of the exported INT8 graph: repeated pairs, Pads between DQ and Conv, and
weights stored as INT8."""

from __future__ import annotations

import numpy as np

from ftedge.graph import const, edges, qparam_shape
from ftedge.graph.constants import constants_to_initializers

def remove_repeated_qdq(model) -> int:
    """Drop a Q/DQ pair that re-quantizes an already dequantized tensor with the same scale.

    A residual block quantizes its input for the shortcut and its first convolution quantizes
    the same tensor again with the same quantizer: Q(DQ(q)) == q, so the second pair is a
    no-op that only costs runtimes a re-quantization. Returns the pairs removed.
    """
    nodes = model.graph.node
    producer, consumers = edges(model)
    removed = 0
    for q in list(nodes):
        if q.op_type != "QuantizeLinear":
            continue
        prev_dq = producer.get(q.input[0])
        if prev_dq is None or prev_dq.op_type != "DequantizeLinear":
            continue
        if not _same_constants(model, prev_dq.input[1:], q.input[1:]):
            continue  # another scale: a real re-quantization
        for dq in [c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"]:
            for c in consumers.get(dq.output[0], []):
                c.input[:] = [prev_dq.output[0] if i == dq.output[0] else i for i in c.input]
            nodes.remove(dq)
        if not [c for c in nodes if q.output[0] in c.input]:
            nodes.remove(q)
            removed += 1
    return removed


def hoist_pads_above_qdq(model) -> int:
    """Rewrite Q -> DQ -> Pad(zeros) -> Conv as Pad -> Q -> DQ -> Conv.

    TF-"same" convolutions pad inside their forward, after the input quantizer ran, which
    leaves a Pad between DequantizeLinear and Conv; runtimes then cannot fuse the pair into an
    INT8 convolution. Zero padding commutes with symmetric quantization (Q(0) = 0 exactly),
    so moving it up changes no value. Returns the number of Pads moved.
    """
    nodes = model.graph.node
    producer, consumers = edges(model)
    inits = {t.name for t in model.graph.initializer}
    moved = 0
    for pad in [n for n in nodes if n.op_type == "Pad"]:
        dq = producer.get(pad.input[0])
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        zero_fill = len(pad.input) < 3 or pad.input[2] == "" or _is_zero(model, pad.input[2])
        if (q is None or q.op_type != "QuantizeLinear" or mode != b"constant" or not zero_fill
                or len(consumers[dq.output[0]]) != 1 or len(consumers[q.output[0]]) != 1
                or any(i not in inits and i in producer and _after(nodes, producer[i], q)
                       for i in pad.input[1:] if i)):
            continue
        pad_out, dq_out = pad.output[0], dq.output[0]
        for c in consumers[pad_out]:
            c.input[:] = [dq_out if i == pad_out else i for i in c.input]
        pad.input[0], q.input[0] = q.input[0], pad_out
        nodes.remove(pad)
        nodes.insert(list(nodes).index(q), pad)
        moved += 1
    return moved


def _after(nodes, a, b) -> bool:
    """Whether node `a` comes after node `b` in the graph's order."""
    order = list(nodes)
    return order.index(a) > order.index(b)


def _is_zero(model, name: str) -> bool:
    value = const(model, name)
    return value is not None and not value.any()


def _same_constants(model, names_a, names_b) -> bool:
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    if len(names_a) != len(names_b) or not all(n in inits for n in [*names_a, *names_b]):
        return False
    return all(np.array_equal(numpy_helper.to_array(inits[a]), numpy_helper.to_array(inits[b]))
               for a, b in zip(names_a, names_b))


def store_quantized_weights(model) -> int:
    """Replace each constant weight -> QuantizeLinear with the INT8 weight it produces.

    The exporter writes FP32 weights followed by QuantizeLinear; every runtime would quantize
    them at load anyway. Storing the INT8 values (DequantizeLinear reads them directly, as
    TensorRT and ONNX Runtime expect) makes the file ~4x smaller and the values exact.
    Returns the number of weights converted.
    """
    from onnx import numpy_helper

    constants_to_initializers(model)
    inits = {t.name: t for t in model.graph.initializer}
    uses: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    dead, converted = [], 0
    for node in list(model.graph.node):
        if node.op_type != "QuantizeLinear" or not all(i in inits for i in node.input[:3]):
            continue
        w, scale, zp = (numpy_helper.to_array(inits[i]) for i in node.input[:3])
        shape = qparam_shape(node, scale, w.ndim)
        info = np.iinfo(zp.dtype)
        # x * (1 / scale) in float32, as PyTorch's fake quantization computes it: the extreme
        # weight of each channel sits exactly on a rounding tie (amax / scale == 127.5), where
        # x / scale would round the other way and break parity with the QAT model.
        inv = (np.float32(1.0) / scale.astype(np.float32)).reshape(shape)
        q = np.clip(np.rint(w.astype(np.float32) * inv) + zp.reshape(shape), info.min, info.max)
        name = node.output[0]
        model.graph.initializer.append(numpy_helper.from_array(q.astype(zp.dtype), name))
        model.graph.node.remove(node)
        uses[node.input[0]] -= 1
        if uses[node.input[0]] == 0:
            dead.append(node.input[0])
        converted += 1
    for name in dead:
        model.graph.initializer.remove(inits[name])
    return converted
