"""ONNX Runtime target: the cleaned ONNX itself, FP32 / FP16 / INT8 (the run's Q/DQ graph)."""

from __future__ import annotations

import json
from pathlib import Path

from ftedge.runtime.base import Artifact, FixedBatchRunner, Problem, SourceModel, Target
from ftedge.runtime.profiles import TargetProfile
from ftedge.formats.artifact import SATURATES_WITHOUT_VNNI
from ftedge.runtime.onnxruntime.runner import OrtRunner


def fold_normalization(model) -> bool | None:
    """Fold an INT8 graph's in-graph normalisation into its input quantizer (graph/normalize.py
    fold_into_quantizer) when ONNX Runtime gives both the same integers for every pixel
    value; edits `model`. True: folded; False: kept as Mul/Sub/Div (a .5 tie differed);
    None: nothing to fold (a float input, or no input quantizer)."""
    import numpy as np
    import onnx

    from ftedge.graph.normalize import fold_into_quantizer, probe_pixels, quantizer_probe
    from ftedge.runtime.onnxruntime.runner import inference_session

    before = quantizer_probe(model)
    if before is None:
        return None
    candidate = onnx.ModelProto()
    candidate.CopyFrom(model)
    if not fold_into_quantizer(candidate):
        return None
    x = probe_pixels(before)

    def integers(probe):
        session = inference_session(probe)
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    if not np.array_equal(integers(before), integers(quantizer_probe(candidate))):
        return False
    model.CopyFrom(candidate)
    return True


class OnnxRuntimeTarget(Target):
    name = "onnxruntime"

    def preflight(self, profile: TargetProfile) -> list[Problem]:
        try:
            import onnxruntime as ort
        except ImportError:
            return [Problem("error", "onnxruntime is not installed", "pip install onnxruntime")]
        if "CPUExecutionProvider" not in ort.get_available_providers():
            return [Problem("error", "ONNX Runtime has no CPU execution provider")]
        return []

    def export(self, source: SourceModel, profile: TargetProfile, out: Path) -> Artifact:
        from ftedge.formats.run import load_onnx
        from ftedge.graph import edit as onnx_graph
        from ftedge.graph.layout import pair_sums_may_saturate, to_ort_layout

        model = load_onnx(source.path)
        onnx_graph.set_batch(model, source.batch)
        facts: dict = {}
        if source.precision == "int8":
            # the shared graph re-expressed for ORT's integer kernels (same scales; see module)
            facts = to_ort_layout(model)
            folded = fold_normalization(model)
            if folded is not None:  # the graph normalises 8-bit pixels itself
                facts["normalization_in_quantizer"] = folded
            if pair_sums_may_saturate(facts):  # kept S8 x S8: exact only without QDQS8ToU8
                facts[SATURATES_WITHOUT_VNNI] = True
        model = onnx_graph.clean(model)
        if source.precision == "fp16":
            model = onnx_graph.to_fp16(model)
        onnx_graph.update_metadata(model, {"ftedge.precision": source.precision,
                                           "ftedge.target": profile.name,
                                           "ftedge.ort_layout": json.dumps(facts)})
        name = f"model.{source.precision}.onnx"
        onnx_graph.save(model, out / name)
        return Artifact(out, name, profile.name, self.name, source.precision, source.batch,
                        extra={"graph": facts} if facts else {})

    def runner(self, artifact: Artifact, profile: TargetProfile, threads: int | None = None):
        inner = OrtRunner(artifact.path, threads)
        return inner if artifact.batch is None else FixedBatchRunner(inner, artifact.batch)

    def versions(self) -> dict[str, str]:
        import onnxruntime

        return {"onnxruntime": onnxruntime.__version__}
