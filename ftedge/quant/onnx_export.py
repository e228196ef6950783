"""FP32 and Q/DQ INT8 ONNX export with the run's contract in metadata_props."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ftedge.io import atomic_path
from ftedge.quant.qat import freeze_all_observers, is_prepared

INPUT_NAME, OUTPUT_NAME = "input", "logits"


def _edges(model) -> tuple[dict, dict]:
    """Which node produces each tensor, and which nodes consume it."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def remove_repeated_qdq(model) -> int:
    """Drop a Q/DQ pair that re-quantizes an already dequantized tensor with the same scale.

    A residual block quantizes its input for the shortcut and its first convolution quantizes
    the same tensor again with the same quantizer: Q(DQ(q)) == q, so the second pair is a
    no-op that only costs runtimes a re-quantization. Returns the pairs removed.
    """
    nodes = model.graph.node
    producer, consumers = _edges(model)
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
    producer, consumers = _edges(model)
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
    from onnx import numpy_helper

    for t in model.graph.initializer:
        if t.name == name:
            return not numpy_helper.to_array(t).any()
    return False


def _same_constants(model, names_a, names_b) -> bool:
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    if len(names_a) != len(names_b) or not all(n in inits for n in [*names_a, *names_b]):
        return False
    return all(np.array_equal(numpy_helper.to_array(inits[a]), numpy_helper.to_array(inits[b]))
               for a, b in zip(names_a, names_b))


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
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * w.ndim
        if scale.ndim == 1 and scale.size > 1:
            shape[axis] = -1
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


def prune_unused_initializers(model) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    for t in [t for t in model.graph.initializer if t.name not in used]:
        model.graph.initializer.remove(t)


def set_metadata(model, metadata: dict) -> None:
    """Store each key as a metadata_prop; non-strings as JSON."""
    del model.metadata_props[:]
    for k, v in metadata.items():
        p = model.metadata_props.add()
        p.key = k
        p.value = v if isinstance(v, str) else json.dumps(v)


def contract_metadata(model_name: str, classes: list[str], contract: dict, precision: str,
                      checkpoint: Path, **extra) -> dict:
    """The facts every exported graph carries (ARCHITECTURE.md: every artifact carries its
    contract)."""
    import onnx

    from ftedge import __version__
    from ftedge.io import sha256_file

    return {"ftedge.version": __version__, "ftedge.model_name": model_name,
            "ftedge.classes": classes, "ftedge.preprocessing": contract,
            "ftedge.precision": precision, "ftedge.checkpoint": checkpoint.name,
            "ftedge.checkpoint_sha256": sha256_file(checkpoint),
            "ftedge.torch_version": torch.__version__, "ftedge.onnx_version": onnx.__version__,
            **{f"ftedge.{k}": v for k, v in extra.items()}}


def read_metadata(path: str | Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


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


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path, opset: int,
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
