"""OpenVINO model for deploy/infer.py, compiled for the manifest's device as ftedge does.

Template piece; needs only the openvino package, imported when the model is opened.
"""

import os
import sys
from pathlib import Path

import numpy as np

from ftedge.deploy.templates.artifact import ArtifactError, telemetry_off, vnni_state

# ---- ftedge template body ----

RUNTIME = "openvino"
REQUIRES = "openvino"  # besides numpy and Pillow


def model_files(manifest):
    """The IR: the .xml the manifest names and the .bin beside it, both checked."""
    xml = manifest["artifact"]
    return [xml, xml[:-len(".xml")] + ".bin" if xml.endswith(".xml") else xml + ".bin"]


def cpu_int8_without_vnni():
    """Whether OpenVINO's CPU plugin here multiplies u8 x s8 without VNNI (16-bit pair sums):
    "no-vnni" (the CPU lacks it, or ONEDNN_MAX_CPU_ISA limits oneDNN below it), "unknown"
    (an x86 CPU that cannot be told), None (VNNI, or not x86). ftedge imports this one
    (runtime/openvino/runner.py, for bench's and eval's host note)."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    state = vnni_state()
    if state == "no-vnni" or (state != "not-x86" and isa and isa != "ALL"
                              and "VNNI" not in isa and "AMX" not in isa):
        return "no-vnni"
    return "unknown" if state == "unknown" else None


class Model:
    """A compiled OpenVINO model: NCHW float32 batch in, logits out."""

    def __init__(self, folder, manifest):
        telemetry_off()  # importing openvino would write $HOME/intel otherwise
        try:
            import openvino as ov
        except ImportError:
            raise ArtifactError("openvino is not installed",
                                "pip install openvino numpy pillow") from None
        core = ov.Core()
        device = manifest["device"]
        if not any(d.split(".")[0] == device for d in core.available_devices):
            raise ArtifactError(f"OpenVINO device {device} is not available here (found: "
                                f"{', '.join(core.available_devices)})",
                                "run on the device the artifact was exported for, or export "
                                "for this one (e.g. --target openvino-cpu)")
        config = {}
        hint = (manifest.get("profile") or {}).get("inference_precision")
        if hint:  # the same compile option ftedge's parity check ran with
            config["INFERENCE_PRECISION_HINT"] = hint
        extra = manifest.get("extra")
        graph = extra.get("graph") if isinstance(extra, dict) else None
        host = cpu_int8_without_vnni() if device == "CPU" else None
        if isinstance(graph, dict) and graph.get("saturates_without_vnni") is True and host:
            why = ("this x86 CPU (no VNNI) multiplies" if host == "no-vnni" else
                   "x86 CPUs without VNNI (this one could not be told) multiply")
            print(f"warning: this artifact's INT8 weights use the full 8-bit range, which "
                  f"{why} with saturating 16-bit pair sums: its results differ from the "
                  "ones ftedge verified; export a run trained with qat.weight_bits: 7 "
                  "(the default) for such CPUs", file=sys.stderr)
        output = (manifest.get("unknown") or {}).get("output")
        self.net = CompiledModel(ov, core, Path(folder) / manifest["artifact"], device=device,
                                 config=config, logits_output=manifest["output_name"],
                                 unknown_output=output)

    def infer(self, batch):
        return self.net.infer_scored(batch)[0]

    def infer_scored(self, batch):
        """Logits, and the unknown score per image (None when the graph has none)."""
        return self.net.infer_scored(batch)


class CompiledModel:
    """A compiled OpenVINO model and its requests. ftedge's own runner holds one too
    (runtime/openvino/runner.py), so bench times the same call infer.py makes.

    A dynamic-batch model is compiled once more per batch shape (the `keep` most recent
    kept): OpenVINO's CPU plugin runs a static shape with its memory planned once (2x at
    batch 1 on a 96 px EfficientNet-Lite0); the results are the same. Outputs are named, or
    found: the unknown score is the one named "unknown_score", the logits the other one."""

    def __init__(self, ov, core, path, *, device, config, keep=4, logits_output=None,
                 unknown_output=None):
        self.ov, self.core, self.device, self.config = ov, core, device, config
        self.model = core.read_model(str(path))
        self.compiled = core.compile_model(self.model, device, config)
        self.keep = keep if self.model.input(0).get_partial_shape().is_dynamic else 0
        self.default = self.compiled.create_infer_request()
        self.requests = {}  # batch shape -> request, oldest first
        index = {n: i for i, o in enumerate(self.compiled.outputs) for n in o.get_names()}
        unknown = unknown_output or next((n for n in index if "unknown_score" in n), None)
        self.unknown = index.get(unknown) if unknown else None  # None: no unknown output
        self.logits = index.get(logits_output, next(
            (i for i in range(len(self.compiled.outputs)) if i != self.unknown), 0))

    def request(self, shape):
        """The request for `shape`: its own static compile while fewer than `keep` are kept."""
        if not self.keep:
            return self.default
        request = self.requests.pop(shape, None)
        if request is None:
            if len(self.requests) >= self.keep:
                self.requests.pop(next(iter(self.requests)))
            static = self.model.clone()
            static.reshape({static.input(0): self.ov.PartialShape(list(shape))})
            request = self.core.compile_model(static, self.device,
                                              self.config).create_infer_request()
        self.requests[shape] = request  # most recent last
        return request

    def infer_scored(self, batch):
        """Logits, and the unknown score per image (None when the graph has none)."""
        # no copy when it already is; 8-bit pixel input (a graph that normalises itself) stays uint8
        batch = np.ascontiguousarray(batch, dtype=np.uint8 if batch.dtype == np.uint8 else np.float32)
        request = self.request(batch.shape)
        # the request reads the array in place, and start_async/wait skips infer()'s input dict
        # and its copied result dict: together ~0.1 ms a call, 5% of Lite0 INT8 at batch 1
        # against benchmark_app (ftedge's benchmarks/bench_vs_benchmark_app.py)
        request.set_input_tensor(self.ov.Tensor(batch, shared_memory=True))
        request.start_async()
        request.wait()
        # copies: the request reuses its buffers
        logits = request.get_output_tensor(self.logits).data.copy()
        if self.unknown is None:
            return logits, None
        return logits, request.get_output_tensor(self.unknown).data[:, 0].copy()
