"""ONNX Runtime (CPU EP) sessions that run our symmetric INT8 Q/DQ graphs correctly on every
x86 CPU, behind the Runner protocol."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ftedge.config import EVAL_BATCH, disable_telemetry, or_default
from ftedge.deploy.templates.artifact import vnni_state as template_vnni_state
from ftedge.deploy.templates.runner_onnxruntime import session_threads
from ftedge.runtime import ClosingRunner

# Every ftedge session comes through here: ONNX Runtime's telemetry (its device id file) is off
# before the first one, for API users too (the CLI turns it off at start)
disable_telemetry()

# The deploy kit's own check (deploy/templates/artifact.py, copied into every infer.py): one
# copy, so ftedge and the standalone script decide alike. Cached: /proc/cpuinfo does not change.
vnni_state = lru_cache(maxsize=1)(template_vnni_state)


def x86_without_vnni() -> bool:
    """Take the always-correct path: an x86 CPU without VNNI, or one that cannot tell."""
    return vnni_state() in ("no-vnni", "unknown")


def disabled_optimizers() -> list[str]:
    """ONNX Runtime optimizers to turn off for symmetric INT8 graphs on this CPU.

    ORT rewrites signed INT8 activations to unsigned (QDQS8ToU8Transformer) to use u8 x s8
    kernels. On x86 without VNNI those kernels sum pairs of products in 16 bits (VPMADDUBSW)
    and saturate when weights use the full INT8 range, as symmetric per-channel weights with
    folded BatchNorm do (ORT's quantization docs: "saturation issue"; measured here: a QAT
    EfficientNet-Lite0 at 99.4% top-1 fell to 20%). Keeping S8 x S8 avoids it.
    """
    return ["QDQS8ToU8Transformer"] if x86_without_vnni() else []


def inference_session(model, threads: int | None = None):
    """A CPU-EP session for an FP32 or Q/DQ INT8 model: a file, or an onnx.ModelProto."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    # as the kit's runner: ORT's own pool (0) only when this process may use every core
    so.intra_op_num_threads = threads or session_threads()
    # as the kit's runner (deploy/templates/runner_onnxruntime.py, which says what it costs and
    # buys): its threads never spin, so the threads decoding the next batch (predict, bench's
    # end to end) get the cores, and bench times the session the device runs
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    try:
        return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=disabled_optimizers())
    except Exception:
        if isinstance(source, str):
            from ftedge.formats.run import load_onnx

            load_onnx(source, load_external_data=False)  # a damaged file: a RunError naming it
        raise


INTEGER_CONVS = ("QLinearConv", "ConvInteger")
FLOAT_CONVS = ("Conv", "FusedConv", "NchwcConv")


def executed_ops(model) -> dict[str, int]:
    """Op counts of the graph ONNX Runtime actually executes on this CPU (its optimized model,
    after its Q/DQ fusions): what a graph's INT8 coverage means in this runtime."""
    import tempfile
    from collections import Counter

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        so.log_severity_level = 3  # its "hardware specific optimizations" warning is the point here
        source = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
        ort.InferenceSession(source, so, providers=["CPUExecutionProvider"],
                             disabled_optimizers=disabled_optimizers())
        return dict(Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node))


def conv_kernels(model) -> dict[str, int]:
    """How many convolutions ONNX Runtime runs with each kernel: {"QLinearConv": 62} when every
    convolution of an INT8 graph is integer; "Conv"/"FusedConv" are convolutions left in FP32."""
    ops = executed_ops(model)
    return {op: ops[op] for op in INTEGER_CONVS + FLOAT_CONVS if ops.get(op)}


class OrtRunner(ClosingRunner):
    """An ONNX Runtime CPU session behind the Runner protocol (NCHW float in, logits out)."""

    _held = ("session", "_model")

    def __init__(self, model, threads: int | None = None):
        self.session = inference_session(model, threads)
        self.input = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        # graphs exported with an unknown score have it as a second output (graph/unknown.py)
        self.unknown = "unknown_score" if "unknown_score" in names else None
        self.logits = next(n for n in names if n != self.unknown)
        self._model = model

    def conv_kernels(self) -> dict[str, int]:
        return conv_kernels(self._model)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.infer_scored(batch)[0]

    def infer_scored(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and the unknown score ([N], higher = more unknown; None without one)."""
        names = [self.logits] + ([self.unknown] if self.unknown else [])
        # uint8 stays uint8: an artifact that normalises in its graph takes 8-bit pixels
        dtype = np.uint8 if batch.dtype == np.uint8 else np.float32
        out = self.session.run(names, {self.input: np.ascontiguousarray(batch, dtype)})
        return out[0], (out[1][:, 0] if self.unknown else None)


def onnx_logits(path: str | Path, x: np.ndarray, *, batch_size: int | None = None,
                threads: int | None = None) -> np.ndarray:
    """Run an ONNX model in ONNX Runtime's CPU EP over NCHW float images (`batch_size` None:
    config.EVAL_BATCH)."""
    from ftedge.runtime import infer_batches

    with OrtRunner(path, threads) as runner:
        return infer_batches(runner, x, or_default(batch_size, EVAL_BATCH))
