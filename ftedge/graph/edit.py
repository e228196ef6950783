"""Graph edits every ONNX-consuming target shares: batch dimension, cleaning, FP16, save."""

from __future__ import annotations

from pathlib import Path

import onnx

from ftedge.errors import ExportError


def set_batch(model: onnx.ModelProto, batch: int | None) -> None:
    """Fix the batch dimension of every graph input and output to `batch` (None: dynamic)."""
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if not dims:
            continue
        dims[0].Clear()
        if batch is None:
            dims[0].dim_param = "batch"
        else:
            dims[0].dim_value = batch
    del model.graph.value_info[:]  # stale shapes; infer_shapes recomputes them


def clean(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shape inference (strict) and the full checker: a graph every runtime can parse."""
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                  data_prop=True)
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the exported ONNX graph does not check: {str(e).splitlines()[0]}",
                          "re-export the run (ftedge tune --resume, or ftedge quantize)") from e
    return model


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and compute, FP32 input/output so callers feed the same arrays."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    props = {p.key: p.value for p in model.metadata_props}
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    del half.metadata_props[:]
    for k, v in props.items():
        half.metadata_props.add(key=k, value=v)
    return half


def update_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:  # noqa: D401
    """Set (or replace) metadata_props entries."""
    existing = {p.key: p for p in model.metadata_props}
    for k, v in values.items():
        if k in existing:
            existing[k].value = v
        else:
            model.metadata_props.add(key=k, value=v)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path
