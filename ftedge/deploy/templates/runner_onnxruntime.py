"""ONNX Runtime (CPU) model for deploy/infer.py, with the session options ftedge uses.

Template piece; needs only the onnxruntime package, imported when the model is opened.
"""

import os
from pathlib import Path

import numpy as np

from ftedge.deploy.templates.artifact import (ArtifactError, telemetry_off, usable_cores,
                                              vnni_state)

# ---- ftedge template body ----

RUNTIME = "onnxruntime"
REQUIRES = "onnxruntime"  # besides numpy and Pillow


def model_files(manifest):
    """The files this runtime loads, each checked against the manifest before loading."""
    return [manifest["artifact"]]


def disabled_optimizers():
    """ORT optimizers ftedge turns off, so this script computes what ftedge verified.

    ORT rewrites signed INT8 activations to unsigned (QDQS8ToU8Transformer); on x86 CPUs
    without VNNI its u8 x s8 kernels sum pairs of products in 16 bits and saturate on
    symmetric full-range INT8 weights (ORT's quantization docs: "saturation issue").
    """
    slow = vnni_state() in ("no-vnni", "unknown")  # cannot tell: the always-correct path
    return ["QDQS8ToU8Transformer"] if slow else []


def session_threads():
    """intra_op_num_threads: 0 (ONNX Runtime's own pool) when this process may use every core,
    else one per core it may use. ORT's own pool pins a thread to each core of the machine,
    outside the process's affinity mask: under `taskset -c 0` on 2 cores its second thread ran
    on core 1. Given a number, it pins nothing and the mask holds."""
    cores = usable_cores()
    return cores if cores < (os.cpu_count() or 1) else 0


class Model:
    """An ONNX Runtime CPU session: NCHW float32 batch in, logits (and the unknown
    score) out."""

    def __init__(self, folder, manifest):
        telemetry_off()  # before the first session: no device id file
        try:
            import onnxruntime as ort
        except ImportError:
            raise ArtifactError("onnxruntime is not installed",
                                "pip install onnxruntime numpy pillow") from None
        options = ort.SessionOptions()
        # its threads never spin: the threads that decode the next batch need the cores, also
        # while a batch runs (Classifier overlaps the two). Measured on 2 cores (Lite0 INT8):
        # 8% more 1080p JPEGs/s and 11% more raw frames/s end to end than spinning within
        # runs (session.force_spinning_stop), for a lone batch of 1 taking about 1.3x as long
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = session_threads()
        self.session = ort.InferenceSession(str(Path(folder) / manifest["artifact"]), options,
                                            providers=["CPUExecutionProvider"],
                                            disabled_optimizers=disabled_optimizers())
        self.input_name, self.output_name = manifest["input_name"], manifest["output_name"]
        self.unknown = (manifest.get("unknown") or {}).get("output")  # None: no unknown score

    def infer(self, batch):
        return self.infer_scored(batch)[0]

    def infer_scored(self, batch):
        """Logits, and the unknown score per image (None when the graph has none)."""
        # uint8 stays uint8: an artifact that normalises in its graph takes 8-bit pixels
        dtype = np.uint8 if batch.dtype == np.uint8 else np.float32
        feed = {self.input_name: np.ascontiguousarray(batch, dtype=dtype)}
        out = self.session.run([self.output_name] + ([self.unknown] if self.unknown else []),
                               feed)
        return out[0], (out[1][:, 0] if self.unknown else None)
