"""FP32 and Q/DQ INT8 ONNX export with the run's contract in metadata_props."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from ftedge.config import OPSET, or_default
from ftedge.graph.constants import fold_constant_nodes, prune_unused_initializers
from ftedge.graph.metadata import contract_metadata, set_metadata
from ftedge.graph.qdq import hoist_pads_above_qdq, remove_repeated_qdq, store_quantized_weights
from ftedge.formats.run import RunFolder
from ftedge.io import atomic_path, folder_lock
from ftedge.quant.qat import freeze_all_observers, is_prepared

INPUT_NAME, OUTPUT_NAME = "input", "logits"


def _conv2d_same_types() -> tuple[type, ...]:
    try:
        from timm.layers import Conv2dSame
    except ImportError:
        return ()
    return (Conv2dSame,)


def freeze_same_padding(model: nn.Module, example: torch.Tensor) -> int:
    """Give timm's TF-"same" convolutions fixed pads for the export resolution.

    They compute their padding from the input's shape at run time, which the exporter turns
    into Shape/Gather/Ceil arithmetic before every such Conv and a Pad between its
    DequantizeLinear and the Conv. Artifacts have a fixed input size (dynamic batch only),
    so the pads are constants. Returns the number of convolutions changed.
    """
    import torch.nn.functional as F
    from timm.layers.padding import get_same_padding

    same = [m for m in model.modules() if isinstance(m, _conv2d_same_types())]
    sizes: dict[nn.Module, tuple[int, int]] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, a: sizes.__setitem__(mod, a[0].shape[-2:]))
             for m in same]
    with torch.no_grad():
        model(example)
    for h in hooks:
        h.remove()
    for m in same:
        ih, iw = (int(v) for v in sizes[m])
        kh, kw = m.weight.shape[-2:]
        ph = get_same_padding(ih, kh, m.stride[0], m.dilation[0])
        pw = get_same_padding(iw, kw, m.stride[1], m.dilation[1])
        pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)

        def forward(x, m=m, pads=pads):
            return F.conv2d(F.pad(x, pads), m.weight, m.bias, m.stride, 0, m.dilation, m.groups)

        m.forward = forward
    return len(same)


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path, *, opset: int,
                metadata: dict, dynamic_batch: bool = True) -> dict:
    """Export `model` (FP32, or QAT-prepared: then as Q/DQ INT8) to one self-contained file.

    Returns:
        facts about the graph: node counts per op type and residual Adds rewired.
    """
    import onnx

    model = model.eval()
    int8 = is_prepared(model)
    if int8:
        freeze_all_observers(model)
    freeze_same_padding(model, example)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    path = Path(path)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            # The TorchScript exporter is the one that maps fake quantization to Q/DQ.
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=axes, do_constant_folding=True)
        proto = onnx.load(str(tmp))
        fold_constant_nodes(proto, opset)
        removed = remove_repeated_qdq(proto) if int8 else 0
        hoisted = hoist_pads_above_qdq(proto) if int8 else 0
        stored = store_quantized_weights(proto) if int8 else 0
        prune_unused_initializers(proto)
        set_metadata(proto, metadata)
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
    ops: dict[str, int] = {}
    for n in proto.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return {"path": str(path), "opset": opset, "int8": int8, "ops": ops,
            "repeated_qdq_removed": removed, "pads_hoisted": hoisted, "int8_weights_stored": stored}


def export_fp32(loaded, path: Path, opset: int) -> None:
    """The run's best FP32 model as model.fp32.onnx, with its contract in the metadata."""
    example = torch.zeros(1, *loaded.contract["input_size"])
    meta = contract_metadata(loaded.model_name, loaded.classes, loaded.contract, precision="fp32",
                             checkpoint=loaded.checkpoint)
    export_onnx(copy.deepcopy(loaded.runner.model), example, path, opset=opset, metadata=meta)


def ensure_fp32(loaded, path: Path, *, opset: int | None = None, log=None) -> None:
    """model.fp32.onnx as made from the run's best.pt as it is now: exported when missing, and
    again when it was made from an earlier best.pt (a resumed run improved it), under the run
    folder's lock. `log` (a stage's printer) hears why a stale one is remade."""
    if path.is_file():
        why = RunFolder(loaded.path).stale_reason(path)
        if why is None:
            return
        if log is not None:
            log(f"{path.name} is out of date ({why}): exporting it again from "
                f"{loaded.checkpoint.name}")
    with folder_lock(loaded.path):
        export_fp32(loaded, path, or_default(opset, OPSET))
