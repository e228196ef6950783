"""What a Q/DQ graph really runs in INT8, read from the graph itself (never from how the
model was prepared): the numbers a user trusts are measured on the thing shipped."""

from __future__ import annotations

from pathlib import Path

from ftedge.graph import edges

COMPUTE_OPS = ("Conv", "Gemm", "MatMul")


def _from_dq(producer: dict, name: str) -> bool:
    node = producer.get(name)
    return node is not None and node.op_type == "DequantizeLinear"


def int8_coverage(model) -> dict:
    """Per compute layer (Conv/Gemm/MatMul): INT8 when both its input and its weight come from
    a DequantizeLinear; per residual Add: whether both inputs do.

    Returns counts plus the names of the layers left in float.
    """
    producer, _ = edges(model)
    layers = [n for n in model.graph.node if n.op_type in COMPUTE_OPS]
    int8 = [n for n in layers if len(n.input) > 1
            and _from_dq(producer, n.input[0]) and _from_dq(producer, n.input[1])]
    floats = [n.name or n.output[0] for n in layers if n not in int8]
    adds = [n for n in model.graph.node if n.op_type == "Add"
            and all(i in producer for i in n.input[:2])
            and producer[n.input[0]].op_type not in ("Constant",)
            and producer[n.input[1]].op_type not in ("Constant",)]
    adds_int8 = [n for n in adds if all(_from_dq(producer, i) for i in n.input[:2])]
    return {"compute_layers": len(layers), "int8_layers": len(int8), "float_layers": floats,
            "residual_adds": len(adds), "int8_residual_adds": len(adds_int8),
            "fraction_int8": len(int8) / len(layers) if layers else 0.0}


def coverage_of_file(path: str | Path) -> dict:
    from ftedge.formats.run import load_onnx

    return int8_coverage(load_onnx(path))
