"""The export-time parity check: an artifact against its PyTorch reference on the val split.

FP32 and FP16 artifacts are compared with the FP32 PyTorch model; INT8 artifacts with the
model whose numbers they must reproduce: the QAT model's own fake-quantized outputs (or, for
PTQ, the Q/DQ graph run exactly in ONNX Runtime), on the images that model decides firmly
(`int8_agreement`).
"""

from __future__ import annotations

import numpy as np

from ftedge.data.transforms import preprocess_samples
from ftedge.errors import ExportError
from ftedge.export.base import Artifact
from ftedge.export.profiles import TargetProfile
from ftedge.formats.run import SPLIT, RunFolder
from ftedge.io import first_line, sha256_file
from ftedge.runtime import infer_batches


def compare_logits(ref: np.ndarray, test: np.ndarray, labels: np.ndarray) -> dict:
    agree = ref.argmax(1) == test.argmax(1)
    return {"n": int(len(ref)), "top1_agreement": float(agree.mean()),
            "disagreements": int((~agree).sum()),
            "max_abs_logit_diff": float(np.abs(ref - test).max()),
            "mean_abs_logit_diff": float(np.abs(ref - test).mean()),
            "reference_top1": float((ref.argmax(1) == labels).mean()),
            "artifact_top1": float((test.argmax(1) == labels).mean())}


MIN_DECISIVE_SHARE = 0.5  # below it the INT8 rule counts every image: no vacuous pass


def int8_agreement(ref: np.ndarray, test: np.ndarray, fp32: np.ndarray) -> dict:
    """Top-1 agreement of an INT8 artifact with its INT8 reference on the images the reference
    decides by more than INT8 quantization itself moves a logit.

    Two correct executions of one INT8 graph (the QAT model's float simulation, ONNX Runtime's
    integer kernels, OpenVINO's) round some activations differently, and the runtime layouts
    put post-ReLU activations on a finer uint8 grid (graph/layout.py). Top-1 then flips where
    the reference's two best classes are nearly tied, and few-shot sets have many such images.
    Measured with benchmarks/int8_parity.py on 11 QAT graphs (digits demo, three real-photo
    cells; README): 15 of 33 graph x runtime pairs agreed on fewer than 99% of all images,
    OpenVINO running the unchanged shared graph in 5 of 11; on the decisive images all 33
    agreed on >= 99.6%, while OpenVINO saturating u8 x s8 sums (8-bit weights, AVX2 without
    VNNI) agreed on 78-86% of them. The yardstick is the mean |logit change| between the
    reference and the FP32 model: it comes from the reference, never from the artifact, so a
    broken artifact cannot widen it.
    """
    noise = float(np.abs(ref - fp32).mean())
    top2 = np.sort(ref, axis=1)[:, -2:]
    decisive = (top2[:, -1] - top2[:, 0]) > noise  # one class: margin 0, every image counts
    basis = "images whose reference top-1 margin exceeds the INT8 noise"
    if decisive.mean() < MIN_DECISIVE_SHARE:
        decisive = np.ones(len(ref), bool)
        basis = "all images (fewer than half are decided by more than the INT8 noise)"
    agree = ref.argmax(1) == test.argmax(1)
    return {"int8_noise_logit": noise, "decisive_images": int(decisive.sum()), "decisive_basis": basis,
            "decisive_top1_agreement": float(agree[decisive].mean()),
            "decisive_disagreements": int((~agree & decisive).sum())}


def agreement_line(parity: dict) -> str:
    """The agreement the check judged, in words: for INT8 on the decisive images, with all."""
    if "decisive_top1_agreement" in parity:
        return (f"top-1 agreement {parity['decisive_top1_agreement']:.4f} on the "
                f"{parity['decisive_images']} of {parity['n']} val images decided by more than "
                f"the INT8 noise ({parity['top1_agreement']:.4f} on all)")
    return f"top-1 agreement {parity['top1_agreement']:.4f} on {parity['n']} val images"


def _reference_name(source) -> str:
    if source.precision != "int8":
        return "PyTorch FP32 (best.pt)"
    if source.kind == "qat" and not source.float_layers:  # else QAT no longer describes it
        return "PyTorch QAT fake-quant (qat_best.pt)"
    return f"{source.path.name} in ONNX Runtime (exact S8S8)"


def _reference_runner(loaded, source):
    if source.precision != "int8":
        return loaded.runner
    if source.kind == "qat" and not source.float_layers:
        from ftedge.quant.reference import qat_reference

        return qat_reference(loaded)
    from ftedge.runtime.ort import OrtRunner

    return OrtRunner(source.path)


_CACHE: dict = {}  # (run, reference) -> (labels, reference logits, val images): one export
                  # command making several artifacts decodes and runs the reference once


def _val_and_reference(loaded, source):
    split = loaded.path / SPLIT
    ref_name = _reference_name(source)
    key = (str(loaded.path.resolve()), ref_name, sha256_file(split))
    if key not in _CACHE:
        images_key = key[0], key[2]
        if images_key not in _CACHE:
            samples = RunFolder(loaded.path).samples("val", loaded.classes)
            _CACHE[images_key] = (preprocess_samples(samples, loaded.contract),
                                  np.array([s.label for s in samples]))
        x, labels = _CACHE[images_key]
        _CACHE[key] = (x, labels, infer_batches(_reference_runner(loaded, source), x), ref_name)
    return _CACHE[key]


def _fp32_logits(loaded, x):
    key = (str(loaded.path.resolve()), "fp32", sha256_file(loaded.path / SPLIT))
    if key not in _CACHE:
        _CACHE[key] = infer_batches(loaded.runner, x)
    return _CACHE[key]


def deepstream_accuracy(loaded, source) -> dict:
    """Top-1 of the graph a TensorRT engine is built from (run exactly in ONNX Runtime) on the
    val split, preprocessed as the contract says and as DeepStream's nvinfer would (whole
    image scaled to the network size, one scale for all channels): what a DeepStream pipeline
    loses to its preprocessing alone."""
    from ftedge.data.images import load_image
    from ftedge.deploy.deepstream import deepstream_normalization, deepstream_style_preprocess
    from ftedge.runtime.ort import OrtRunner

    x, labels, _, _ = _val_and_reference(loaded, source)
    contract = loaded.contract
    background = tuple(contract.get("background", (255, 255, 255)))
    samples = RunFolder(loaded.path).samples("val", loaded.classes)
    ds_x = np.stack([deepstream_style_preprocess(load_image(s.path, background), contract)
                     for s in samples]).astype(np.float32)
    runner = OrtRunner(source.path)
    exact, ds = infer_batches(runner, x).argmax(1), infer_batches(runner, ds_x).argmax(1)
    norm = deepstream_normalization(contract)
    return {"n": int(len(labels)), "graph": f"{source.path.name} in ONNX Runtime",
            "top1_exact_contract": float((exact == labels).mean()),
            "top1_deepstream_style": float((ds == labels).mean()),
            "top1_agreement": float((exact == ds).mean()),
            "normalization_exact": bool(norm.exact),
            "resize": "whole image stretched to the input size (maintain-aspect-ratio=0)"}


def parity_check(loaded, source, artifact: Artifact, profile: TargetProfile, target,
                 threads: int | None = None) -> dict:
    """Run reference and artifact on the run's val images; `passed` per the profile tolerances."""
    split = loaded.path / SPLIT
    if not split.is_file():
        return {"status": "skipped", "passed": None, "reason": f"{split} is missing"}
    extra = {"deepstream_preprocessing": deepstream_accuracy(loaded, source)} \
        if profile.runtime == "tensorrt" else {}
    if not artifact.built:
        return {"status": "pending", "passed": None, **extra,
                "reason": "the engine is built on the device; parity runs there (ftedge eval "
                          "ARTIFACT on the device)"}
    x, labels, ref_logits, ref_name = _val_and_reference(loaded, source)
    try:
        runner = target.runner(artifact, profile, threads)
    except ExportError as e:  # e.g. the profile's device is not on this machine
        return {"status": "skipped", "passed": None, "reason": str(e)}
    try:
        logits = infer_batches(runner, x)
    except Exception as e:  # a runtime refusing the artifact is the export's failure
        raise ExportError(f"{profile.name} {source.precision}: the artifact does not run here: "
                          f"{type(e).__name__}: {first_line(e)}",
                          "check the profile (device, inference_precision, batch)") from e
    result = compare_logits(ref_logits, logits, labels)
    tol = profile.tolerances
    need = tol.top1_agreement(source.precision)
    if source.precision == "int8":
        result.update(int8_agreement(ref_logits, logits, _fp32_logits(loaded, x)))
        ok = result["decisive_top1_agreement"] >= need
        limits = {"decisive_top1_agreement": need}
    else:
        ok = result["top1_agreement"] >= need
        limits = {"top1_agreement": need}
    if source.precision == "fp32":
        ok = ok and result["max_abs_logit_diff"] <= tol.fp32_max_abs_logit
        limits["max_abs_logit_diff"] = tol.fp32_max_abs_logit
    return {"status": "checked", "passed": bool(ok), "reference": ref_name,
            "images": "val split of the run", "limits": limits, **result, **extra}
