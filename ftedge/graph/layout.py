"""Rewrite the shared Q/DQ graph into the layouts ONNX Runtime's and OpenVINO's CPU kernels fuse.

The run's model.int8.onnx follows TensorRT's placement: activations are quantized at the
inputs of convolutions, symmetric INT8 with zero-point 0. ONNX Runtime only turns
DQ -> Conv -> Q into an integer QLinearConv when the convolution's output goes straight into a
QuantizeLinear, and it only drops the ReLU6 between them when the Q range already clips at 0,
which a signed zero-point-0 Q does not. Without the rewrite ONNX Runtime runs most
convolutions in FP32 between Q/DQ pairs, slower than the FP32 model.

The rewrite keeps every scale the QAT model learned:
- a Q after Clip(0, M) / Relu becomes uint8 with zero-point 0 over exactly the INT8 range
  [0, 127 s] (scale 127 s / 255: a grid twice as fine, saturating where INT8 saturates), so
  the Q range implies the clip and ONNX Runtime's ClipQuantFusion/ReluQuantFusion remove it;
- TF-"same" Pad nodes fold into the convolutions' own pads, and per-tensor scales become
  scalars (the form ORT's fusions match);
- for ONNX Runtime, every other activation Q/DQ becomes uint8 with zero-point 128 (the same
  values), where the weights are narrow enough (7-bit; depthwise ones need not be) for u8 x s8
  kernels not to saturate.
OpenVINO gains from the first two as well (measured on Lite0: 5 Pads and 4 FP32
FakeQuantize ops fewer in its execution graph, about 1.5x faster than the shared graph).
The shared graph itself stays as TensorRT wants it: signed INT8, zero-point 0 everywhere.
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from ftedge.graph import const, edges
from ftedge.graph.constants import prune_unused_initializers


def _clip_max(model, node) -> float | None:
    """The upper bound of a Relu (inf) or Clip(min=0) node, None for anything else."""
    if node.op_type == "Relu":
        return float("inf")
    if node.op_type != "Clip" or len(node.input) < 2:
        return None
    lo = const(model, node.input[1]) if node.input[1] else None
    hi = const(model, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if lo is None or float(lo) != 0.0:
        return None
    return float("inf") if hi is None else float(hi)


def unsigned_after_relu(model) -> int:
    """Turn each INT8 Q that follows ReLU/ReLU6 into a uint8 Q over the same range."""
    producer, consumers = edges(model)
    changed = 0
    for q in [n for n in model.graph.node if n.op_type == "QuantizeLinear"]:
        act = producer.get(q.input[0])
        top = _clip_max(model, act) if act is not None else None
        scale = const(model, q.input[1])
        zp = const(model, q.input[2]) if len(q.input) > 2 else None
        if top is None or scale is None or scale.size != 1 or zp is None:
            continue
        if zp.dtype != np.int8 or zp.size != 1 or zp.item() != 0 or 127 * scale.item() > top:
            continue
        dqs = consumers.get(q.output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" or len(d.input) < 3 for d in dqs):
            continue
        # The INT8 range [0, 127 s] on a grid twice as fine: uint8 saturates where INT8 did
        # (a same-scale uint8 Q would stop clipping at 127 s), and the clip becomes redundant.
        new_scale = (scale.astype(np.float32) * np.float32(127.0 / 255.0)).astype(np.float32)
        s_name, z_name = q.output[0] + "_u8_scale", q.output[0] + "_u8_zp"
        model.graph.initializer.extend([
            numpy_helper.from_array(new_scale.reshape(()), s_name),  # scalars: ORT's fusions want 0-d
            numpy_helper.from_array(np.zeros((), np.uint8), z_name)])
        for node in [q, *dqs]:
            node.input[1], node.input[2] = s_name, z_name
        changed += 1
    return changed


def scalar_qparams(model) -> int:
    """Store per-tensor scales and zero-points as 0-d tensors, the form ORT's fusions match."""
    names = {n.input[i] for n in model.graph.node
             if n.op_type in ("QuantizeLinear", "DequantizeLinear") for i in (1, 2) if i < len(n.input)}
    other_uses = {i for n in model.graph.node for k, i in enumerate(n.input)
                  if not (n.op_type in ("QuantizeLinear", "DequantizeLinear") and k in (1, 2))}
    names -= other_uses | {v.name for v in model.graph.input}
    changed = 0
    for init in model.graph.initializer:
        if init.name in names and list(init.dims) == [1]:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).reshape(()), init.name))
            changed += 1
    return changed


def fold_pads_into_convs(model) -> int:
    """Fold Pad(zeros) -> Q -> DQ -> Conv into the Conv's own (asymmetric) pads attribute.

    TF-"same" stride-2 convolutions pad one pixel more at the bottom/right; ONNX Conv takes
    asymmetric pads, so the separate Pad node, which keeps ORT from fusing the ReLU6 -> Q
    before it, can go. Zero padding commutes with zero-point-0 quantization: no value changes.
    """
    from onnx import helper

    producer, consumers = edges(model)
    folded = 0
    for pad in [n for n in model.graph.node if n.op_type == "Pad"]:
        pads = const(model, pad.input[1]) if len(pad.input) > 1 else None
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        fill = const(model, pad.input[2]) if len(pad.input) > 2 and pad.input[2] else np.zeros(1)
        outs = consumers.get(pad.output[0], [])
        if (pads is None or pads.size != 8 or pads[[0, 1, 4, 5]].any() or (pads < 0).any()
                or mode != b"constant"
                or fill is None or fill.any() or len(outs) != 1 or outs[0].op_type != "QuantizeLinear"):
            continue
        q = outs[0]
        zp = const(model, q.input[2]) if len(q.input) > 2 else None
        dqs = consumers.get(q.output[0], [])
        convs = [c for d in dqs for c in consumers.get(d.output[0], [])]
        dq_outs = {d.output[0] for d in dqs}
        if (zp is None or zp.any() or not dqs or any(d.op_type != "DequantizeLinear" for d in dqs)
                or not convs or any(c.op_type != "Conv" for c in convs)
                or any(c.input[0] not in dq_outs or set(c.input[1:]) & dq_outs for c in convs)
                or any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET")
                       for c in convs for a in c.attribute)):
            continue
        for conv in convs:
            old = next((list(a.ints) for a in conv.attribute if a.name == "pads"), [0, 0, 0, 0])
            new = [old[0] + int(pads[2]), old[1] + int(pads[3]), old[2] + int(pads[6]),
                   old[3] + int(pads[7])]
            keep = [a for a in conv.attribute if a.name not in ("pads", "auto_pad")]
            del conv.attribute[:]
            conv.attribute.extend([*keep, helper.make_attribute("pads", new)])
        q.input[0] = pad.input[0]
        model.graph.node.remove(pad)
        folded += 1
    return folded


def unsigned_activations(model) -> int:
    """Re-express every remaining INT8 zero-point-0 activation Q/DQ as uint8 zero-point 128.

    Exactly the same values (q_u8 = q_s8 + 128). ONNX Runtime only fuses integer convolutions
    with int8 activations on CPUs with VNNI/AMX; with uint8 it fuses everywhere. Its own
    QDQS8ToU8 pass does this too, but skips a Q whose output several DQs share.
    """
    producer, consumers = edges(model)
    changed = 0
    for q in [n for n in model.graph.node if n.op_type == "QuantizeLinear"]:
        zp = const(model, q.input[2]) if len(q.input) > 2 else None
        if zp is None or zp.dtype != np.int8 or zp.size != 1 or zp.item() != 0:
            continue
        dqs = consumers.get(q.output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" or len(d.input) < 3 for d in dqs):
            continue
        z_name = q.output[0] + "_u8_zp128"
        model.graph.initializer.append(numpy_helper.from_array(np.full((), 128, np.uint8), z_name))
        for node in [q, *dqs]:
            node.input[2] = z_name
        changed += 1
    return changed


def _depthwise_weight(w: np.ndarray, consumers: list) -> bool:
    """Whether weights `w` feed only depthwise Convs (one input and output channel per group)."""
    def depthwise(node) -> bool:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        return (node.op_type == "Conv" and group > 1 and w.ndim == 4 and w.shape[1] == 1
                and w.shape[0] == group)
    return bool(consumers) and all(depthwise(c) for c in consumers)


# |q| up to 64 (7-bit weights, quant/qat.py NarrowWeightObserver): u8 x s8 pair sums stay
# within 16 bits (255 * 64 * 2 < 32768) on x86 CPUs without VNNI
PAIR_SAFE_WEIGHT = 64


def pair_sums_may_saturate(facts: dict) -> bool:
    """Whether a layout's weights (its facts' weight_max_abs) can overflow u8 x s8 pair sums."""
    return facts["weight_max_abs"] > PAIR_SAFE_WEIGHT


def max_weight_magnitude(model) -> int:
    """Largest |q| over the INT8 weights (DequantizeLinear of an int8 initializer) that go
    through u8 x s8 pair sums: depthwise convolutions' weights do not (quant/qat.py
    is_depthwise), so they may use the full range."""
    inits = {t.name: t for t in model.graph.initializer}
    _, consumers = edges(model)
    top = 0
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            w = numpy_helper.to_array(inits[n.input[0]])
            if (w.dtype == np.int8 and w.ndim > 1
                    and not _depthwise_weight(w, consumers.get(n.output[0], []))):
                top = max(top, int(np.abs(w.astype(np.int16)).max()))
    return top


def to_openvino_layout(model) -> dict:
    """Rewrite a shared Q/DQ graph in place for OpenVINO's CPU plugin; returns what changed."""
    facts = {"pads_folded": fold_pads_into_convs(model),
             "weight_max_abs": max_weight_magnitude(model),
             "relu_q_to_uint8": unsigned_after_relu(model),
             "scalar_qparams": scalar_qparams(model)}
    prune_unused_initializers(model)  # the replaced scales and zero-points
    return facts


def to_ort_layout(model) -> dict:
    """Rewrite a shared Q/DQ graph in place for ONNX Runtime's CPU kernels; returns what changed.

    uint8 activations are used only when every weight fits in [-64, 64], depthwise weights
    aside: then the u8 x s8 kernels of x86 CPUs without VNNI cannot saturate (see quant/qat.py
    NarrowWeightObserver and is_depthwise).
    With full 8-bit weights the graph keeps int8, which ONNX Runtime fuses only on CPUs with
    VNNI/AMX or on ARM.
    """
    facts = {"pads_folded": fold_pads_into_convs(model),
             "weight_max_abs": max_weight_magnitude(model)}
    facts["unsigned_activations"] = not pair_sums_may_saturate(facts)
    if facts["unsigned_activations"]:
        facts["relu_q_to_uint8"] = unsigned_after_relu(model)
    facts["scalar_qparams"] = scalar_qparams(model)
    if facts["unsigned_activations"]:
        facts["s8_to_u8"] = unsigned_activations(model)
    prune_unused_initializers(model)  # the replaced scales and zero-points
    return facts
