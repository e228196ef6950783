"""Normalisation inside the graph: an artifact that takes 8-bit RGB as the device has it.

The contract's last steps, x = v * float32(1/255), y = (x - mean[c]) / std[c], become the
graph's first nodes (Cast when the input is uint8, then Mul, Sub, Div), in the float32 order
torchvision and deploy/infer.py use, so a runtime that executes them as written (ONNX Runtime)
gets the very tensor the float input had; any mean and std are exact, where DeepStream's one
net-scale-factor cannot express three stds. In an INT8 Q/DQ graph they sit before the input's
QuantizeLinear, the pattern TensorRT's explicit quantization and OpenVINO's FakeQuantize
handle as ordinary float ops ahead of the first quantizer.

ONNX Runtime runs those four elementwise passes over the input one after the other (about
0.1 ms a 224 px image on 2 cores, 3-5% of an INT8 EfficientNet-Lite0 at batch 1). For it, the
INT8 graph's input quantizer absorbs them (`fold_into_quantizer`): Add(-255 mean) then one
per-channel QuantizeLinear with scale 255 std s, the same integers as Mul/Sub/Div followed by
the per-tensor quantizer of scale s, since round((v/255 - m)/sd/s) = round((v - 255 m)/(255 sd s))
for the 256 values v a pixel can take. Float rounding could only tell the two apart on a .5
tie, so the exporter keeps the fold only after running both prefixes over every pixel value
of every channel in the runtime that will run it (`quantizer_probe`, `probe_pixels`).
Ties are not rare: an input quantizer of scale 2/255 (Lite0's mean = std = 0.5 with a min-max
range of exactly [-1, 1], as the demo's QAT graph has) puts every pixel value on one, and
Mul/Sub/Div's float32 errors then round 16 of the 256 one way and the rest the other, which
no float32 scale and shift reproduce (their nearest neighbours were tried): that graph keeps
Mul/Sub/Div, exact, and the manifest says so (normalization_in_quantizer false).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ftedge.config import DEFAULT_LAYOUT
from ftedge.graph import const, edges
from ftedge.graph.constants import prune_unused_initializers
from ftedge.errors import ExportError
from ftedge.formats.run import FP32_ONNX, INT8_ONNX

NORMALIZED = "normalized"  # float32 NCHW, already (x/255 - mean)/std: the graph as trained
PIXEL_FORMATS = {"float255": TensorProto.FLOAT, "uint8": TensorProto.UINT8}
_INNER = "ftedge_normalized_input"


def prepend_normalization(model: onnx.ModelProto, *, mean, std, input_format: str,
                          layout: str = DEFAULT_LAYOUT) -> onnx.ModelProto:
    """Make `model`'s single input take 0..255 RGB pixels (`input_format` uint8 or float255,
    `layout` NCHW or NHWC) and normalise them in the graph; edits and returns `model`.

    Raises:
        ExportError: the graph does not have one float32 [N, 3, H, W] input, or a choice is
            unknown.
    """
    if input_format not in PIXEL_FORMATS or layout not in ("NCHW", "NHWC"):
        raise ExportError(f"unknown input {input_format!r} / layout {layout!r}",
                          f"input: {', '.join(PIXEL_FORMATS)}; layout: NCHW or NHWC")
    graph = model.graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ExportError("in-graph normalisation needs a graph with one float32 input",
                          f"export the run's own ONNX ({FP32_ONNX} / {INT8_ONNX['qat']})")
    old = inputs[0]
    dims = list(old.type.tensor_type.shape.dim)
    if len(dims) != 4 or dims[1].dim_value != 3:
        raise ExportError("in-graph normalisation needs an [N, 3, H, W] input",
                          "export the run's own ONNX")
    name = old.name
    for node in graph.node:  # the old input becomes an inner tensor
        node.input[:] = [_INNER if i == name else i for i in node.input]
    shape = [d.dim_param or d.dim_value for d in dims]
    if layout == "NHWC":
        shape = [shape[0], shape[2], shape[3], shape[1]]
    new_input = helper.make_tensor_value_info(name, PIXEL_FORMATS[input_format], shape)
    graph.input.remove(old)
    graph.input.insert(0, new_input)
    channels = (1, 3, 1, 1)
    graph.initializer.extend([
        numpy_helper.from_array(np.array(1.0 / 255, np.float32), "ftedge_inv255"),
        numpy_helper.from_array(np.asarray(mean, np.float32).reshape(channels), "ftedge_mean"),
        numpy_helper.from_array(np.asarray(std, np.float32).reshape(channels), "ftedge_std"),
    ])
    nodes, x = [], name
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["ftedge_nchw"], perm=[0, 3, 1, 2]))
        x = "ftedge_nchw"
    if input_format == "uint8":
        nodes.append(helper.make_node("Cast", [x], ["ftedge_float"], to=TensorProto.FLOAT))
        x = "ftedge_float"
    nodes += [helper.make_node("Mul", [x, "ftedge_inv255"], ["ftedge_unit"]),
              helper.make_node("Sub", ["ftedge_unit", "ftedge_mean"], ["ftedge_centred"]),
              helper.make_node("Div", ["ftedge_centred", "ftedge_std"], [_INNER])]
    for i, node in enumerate(nodes):
        graph.node.insert(i, node)
    del graph.value_info[:]  # stale shapes; infer_shapes recomputes them
    return model


_PREFIX = ("ftedge_unit", "ftedge_centred", _INNER)  # Mul, Sub, Div outputs
_FOLDED = "ftedge_shifted"


def input_quantizer(model: onnx.ModelProto):
    """The per-tensor QuantizeLinear that alone reads prepend_normalization's output (an INT8
    graph's input quantizer), or None: no in-graph normalisation, or not that shape."""
    producer, consumers = edges(model)
    if any(name not in producer for name in _PREFIX):
        return None
    readers = consumers.get(_INNER, [])
    if len(readers) != 1 or readers[0].op_type != "QuantizeLinear" or len(readers[0].input) < 3:
        return None
    q = readers[0]
    scale, zero = const(model, q.input[1]), const(model, q.input[2])
    if scale is None or zero is None or scale.size != 1 or zero.size != 1:
        return None
    if any(len(consumers.get(name, [])) != 1 for name in _PREFIX[:2]):
        return None  # something else reads the intermediate tensors
    return q


def fold_into_quantizer(model: onnx.ModelProto) -> bool:
    """Replace Mul(1/255), Sub(mean), Div(std) and the input quantizer (scale s) by Add(-255
    mean) and one QuantizeLinear of scale 255 std s per channel; edits `model` in place.

    The same integers for every pixel value unless float rounding meets a .5 tie: the caller
    checks with quantizer_probe in the runtime before it keeps the result. False when the
    graph has no such input quantizer (nothing changed)."""
    q = input_quantizer(model)
    if q is None:
        return False
    producer, _ = edges(model)
    pixels = producer["ftedge_unit"].input[0]  # 0..255 float32 NCHW (after Cast/Transpose)
    mean = np.asarray(const(model, "ftedge_mean"), np.float64).reshape(3)
    std = np.asarray(const(model, "ftedge_std"), np.float64).reshape(3)
    scale = float(const(model, q.input[1]))
    zero = const(model, q.input[2]).reshape(())
    per_channel = (255.0 * std * scale).astype(np.float32)
    channel_wise = not np.all(per_channel == per_channel[0])
    names = [q.output[0] + "_shift", q.output[0] + "_scale", q.output[0] + "_zp"]
    model.graph.initializer.extend([
        numpy_helper.from_array((-255.0 * mean).astype(np.float32).reshape(1, 3, 1, 1),
                                names[0]),
        numpy_helper.from_array(per_channel if channel_wise else per_channel[0].reshape(()),
                                names[1]),
        numpy_helper.from_array(np.full(3, zero) if channel_wise else zero, names[2])])
    gone = {*_PREFIX, q.output[0]}
    nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in model.graph.node]
    at = next(i for i, n in enumerate(nodes) if n.output[0] == "ftedge_unit")
    new = [helper.make_node("Add", [pixels, names[0]], [_FOLDED]),
           helper.make_node("QuantizeLinear", [_FOLDED, names[1], names[2]], [q.output[0]],
                            **({"axis": 1} if channel_wise else {}))]
    kept = [n for n in nodes if n.output[0] not in gone]
    del model.graph.node[:]
    model.graph.node.extend(kept[:at] + new + kept[at:])
    prune_unused_initializers(model)  # 1/255, mean, std and the old scale if nothing else reads
    return True


def quantizer_probe(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """The graph's first nodes, from its pixel input to the input quantizer's integers (the
    original Mul/Sub/Div + Q, or the folded Add + Q): a small model over any H x W, to run on
    probe_pixels. None when the graph has neither."""
    producer, _ = edges(model)
    q = input_quantizer(model)
    if q is None:
        q = next((n for n in model.graph.node if n.op_type == "QuantizeLinear"
                  and n.input[0] == _FOLDED), None)
    if q is None:
        return None
    needed, stack = set(), [q]
    while stack:  # the nodes q depends on, back to the graph input
        n = stack.pop()
        if n.output[0] not in needed:
            needed.add(n.output[0])
            stack += [producer[i] for i in n.input if i in producer]
    nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in model.graph.node
             if n.output[0] in needed]
    source = model.graph.input[0]
    layout_nhwc = any(n.op_type == "Transpose" and n.output[0] == "ftedge_nchw" for n in nodes)
    shape = ["n", "h", "w", 3] if layout_nhwc else ["n", 3, "h", "w"]
    names = {i for n in nodes for i in n.input}
    inits = [t for t in model.graph.initializer if t.name in names]
    out_type = const(model, q.input[2]).dtype
    graph = helper.make_graph(
        nodes, "probe", [helper.make_tensor_value_info(source.name,
                                                       source.type.tensor_type.elem_type, shape)],
        [helper.make_tensor_value_info(q.output[0], helper.np_dtype_to_tensor_dtype(out_type),
                                       None)], inits)
    probe = helper.make_model(graph, opset_imports=list(model.opset_import))
    probe.ir_version = model.ir_version
    return probe


def probe_pixels(probe: onnx.ModelProto) -> np.ndarray:
    """Every pixel value 0..255 in every channel, at odd positions and widths (vector bodies
    and scalar tails of a runtime's kernels), shaped and typed for `probe`'s input."""
    values = np.arange(256, dtype=np.uint8)
    rng = np.random.default_rng(0)
    rows = [np.roll(values, k) for k in range(3)] + [rng.permutation(values) for _ in range(3)]
    x = np.stack([np.stack([np.concatenate([r, r[:7]]) for r in rows])] * 3, axis=0)[None]
    x = np.ascontiguousarray(np.concatenate([x, x[:, ::-1]], axis=0))  # [2, 3, 6, 263]
    t = probe.graph.input[0].type.tensor_type
    if t.shape.dim[-1].dim_value == 3:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x.astype(np.uint8 if t.elem_type == TensorProto.UINT8 else np.float32)


def pixels_from_normalized(x: np.ndarray, contract: dict, input_format: str,
                           *, layout: str = DEFAULT_LAYOUT) -> np.ndarray:
    """The contract's float32 NCHW batch back to the 8-bit pixels it was computed from.

    Every value the contract produces is (v/255 - mean)/std of an integer v in 0..255 (crop
    and letterbox pads included), so rounding (x * std + mean) * 255 recovers v exactly."""
    mean = np.asarray(contract["mean"], np.float64).reshape(1, 3, 1, 1)
    std = np.asarray(contract["std"], np.float64).reshape(1, 3, 1, 1)
    v = np.clip(np.rint((x.astype(np.float64) * std + mean) * 255.0), 0, 255)
    if layout == "NHWC":
        v = v.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(v, dtype=np.uint8 if input_format == "uint8" else np.float32)
