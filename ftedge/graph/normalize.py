"""Normalisation inside the graph: an artifact that takes 8-bit RGB as the device has it.

The contract's last steps, x = v * float32(1/255), y = (x - mean[c]) / std[c], become the
graph's first nodes (Cast when the input is uint8, then Mul, Sub, Div), in the float32 order
torchvision and deploy/infer.py use, so a runtime that executes them as written (ONNX Runtime)
gets the very tensor the float input had; any mean and std are exact, where DeepStream's one
net-scale-factor cannot express three stds. In an INT8 Q/DQ graph they sit before the input's
QuantizeLinear, the pattern TensorRT's explicit quantization and OpenVINO's FakeQuantize
handle as ordinary float ops ahead of the first quantizer.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ftedge.config import DEFAULT_LAYOUT
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
