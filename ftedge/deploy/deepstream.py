"""DeepStream (gst-nvinfer) for a TensorRT artifact: its config, and an emulation to measure it.

nvinfer scales the whole frame (or object) to the network size and computes
y = net-scale-factor * (x - offsets[c]) with one scale for every channel. ftedge's contract
resizes the short side, centre-crops, and divides each channel by its own std. What the
config cannot express is said in a comment in the file; `deepstream_style_preprocess`
emulates this config in numpy so the exporter can measure the accuracy it costs on the val
split. It is an emulation (NvBufSurfTransform's GPU/VIC scalers are not reproduced bit for
bit), not a promise of DeepStream's numbers.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ftedge.deploy.common import KitWriter, max_batch, temperature_sentence
from ftedge.deploy.labels import deepstream_labels_text
from ftedge.deploy.templates.preprocess import resize_bilinear, to_rgb
from ftedge.deploy.templates.runner_tensorrt import engine_name
from ftedge.formats.contract import describe
from ftedge.runtime.tensorrt.deploy import onnx_name

CONFIG = "deepstream/config_infer_primary_classifier.txt"
LABELS = "deepstream/labels.txt"
NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # NvDsInferNetworkMode
COLOR_FORMAT = {"RGB": 0, "BGR": 1}  # model-color-format
SCALING_FILTER_BILINEAR = 1  # NvBufSurfTransformInter_Bilinear


class DeepStreamNormalization(NamedTuple):
    """nvinfer's y = net_scale_factor * (x - offsets[c]) for a contract; exact or not."""

    net_scale_factor: float
    offsets: tuple[float, float, float]
    exact: bool  # equal to the contract up to float32 rounding (one std for all channels)


def deepstream_normalization(contract: dict) -> DeepStreamNormalization:
    """net-scale-factor and offsets for the contract's mean/std (x in 0..255).

    (x/255 - m_c)/s_c == (x - 255 m_c) / (255 s_c): offsets are 255*mean. With one std for
    all channels the scale 1/(255 std) is exact; otherwise the single scale uses the
    midrange of the stds, which makes the largest relative error across channels smallest.
    """
    mean = [float(m) for m in contract["mean"]]
    std = [float(s) for s in contract["std"]]
    sigma = (min(std) + max(std)) / 2.0
    return DeepStreamNormalization(1.0 / (255.0 * sigma), tuple(255.0 * m for m in mean),
                                   min(std) == max(std))


def normalization_error(contract: dict) -> tuple[float, ...]:
    """Per channel, the largest |y_deepstream - y_contract| over x in 0..255 (real numbers)."""
    norm = deepstream_normalization(contract)
    out = []
    for o, m, s in zip(norm.offsets, contract["mean"], contract["std"]):
        slope = abs(norm.net_scale_factor - 1.0 / (255.0 * float(s)))
        out.append(max(abs(0.0 - o), abs(255.0 - o)) * slope)
    return tuple(out)


# What `deepstream_style_preprocess` reproduces of a DeepStream device and what it cannot;
# recorded beside every emulated number (parity.json) so the number is read with it.
EMULATION_FIDELITY = {
    "reproduces": [
        "the geometry: the whole frame scaled to the network size, stretched "
        "(maintain-aspect-ratio=0) or letterboxed with black, centred (=1, symmetric-padding=1),"
        " with gstnvinfer.cpp's rounding of the scaled size",
        "the filter's kind: bilinear at half-pixel centres without antialiasing "
        "(scaling-filter=1), rounded to 8 bit as the RGBA surface holds it",
        "the normalisation: y = net-scale-factor * (x - offsets[c]) in float32, one scale for "
        "all channels (exact when the graph normalises and nvinfer passes 0..255)",
    ],
    "cannot": [
        "the scaler's own arithmetic: NvBufSurfTransform on the GPU (NPP/CUDA) or the Jetson "
        "VIC uses fixed-point weights and its own taps: pixels may differ by a level or two",
        "decoding: nvjpegdec / nvv4l2decoder and libjpeg differ in IDCT and chroma upsampling; "
        "here frames are decoded by Pillow (libjpeg), in full",
        "colour conversion: video frames arrive as NV12 (4:2:0 chroma, limited-range "
        "BT.601/709) and nvvideoconvert turns them into RGBA; here images are RGB already",
        "the engine's arithmetic: the emulated inputs run the ONNX graph in ONNX Runtime, not "
        "the TensorRT engine (its own parity is checked on the device)",
    ],
}


def deepstream_style_preprocess(image, contract: dict, *, maintain_aspect_ratio: bool = False,
                                symmetric_padding: bool = True,
                                exact_normalization: bool = False) -> np.ndarray:
    """An RGB uint8 HxWx3 array or PIL image -> float32 CHW as the kit's nvinfer config does.

    The whole image is scaled to the network size (bilinear): stretched, or with
    `maintain_aspect_ratio` scaled to fit and padded with black (centred when
    `symmetric_padding`, else right/bottom), as gstnvinfer.cpp computes it; then
    y = net_scale_factor * (x - offsets[c]) in float32, or with `exact_normalization` (the
    graph normalises; nvinfer passes 0..255) the contract's (x/255 - mean)/std exactly.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 HxWx3 array, got {image.dtype} "
                             f"{image.shape}")
        arr = image
    else:
        background = tuple(contract.get("background", (255, 255, 255)))
        arr = np.asarray(to_rgb(image, background), dtype=np.uint8)
    _, net_h, net_w = (int(v) for v in contract["input_size"])
    if not maintain_aspect_ratio:
        canvas = resize_bilinear(arr, net_h, net_w)
    else:
        h, w = arr.shape[:2]
        h_dest, w_dest = net_w * h / w, net_h * w / h
        dest_w, dest_h = (net_w, int(h_dest)) if h_dest <= net_h else (int(w_dest), net_h)
        dest_w, dest_h = max(dest_w, 1), max(dest_h, 1)
        top, left = ((net_h - dest_h) // 2, (net_w - dest_w) // 2) if symmetric_padding else (0, 0)
        canvas = np.zeros((net_h, net_w, 3), np.uint8)
        canvas[top:top + dest_h, left:left + dest_w] = resize_bilinear(arr, dest_h, dest_w)
    x = canvas.transpose(2, 0, 1).astype(np.float32)
    if exact_normalization:
        mean = np.asarray(contract["mean"], np.float32).reshape(3, 1, 1)
        std = np.asarray(contract["std"], np.float32).reshape(3, 1, 1)
        return (x * np.float32(1.0 / 255) - mean) / std
    norm = deepstream_normalization(contract)
    offsets = np.asarray(norm.offsets, dtype=np.float32).reshape(3, 1, 1)
    return np.float32(norm.net_scale_factor) * (x - offsets)


def emulate_samples(samples, contract: dict, pixels_in_graph: bool = False) -> np.ndarray:
    """Image files as the kit's nvinfer config preprocesses them: float32 NCHW for the graph.

    The device decodes every frame in full (nvjpegdec or a video decoder): no draft decode
    here whatever the contract's decode mode. A letterbox contract is letterboxed
    (maintain-aspect-ratio=1), any other stretched."""
    from ftedge.data.images import load_image

    background = tuple(contract.get("background", (255, 255, 255)))
    boxed = bool(maintain_aspect_ratio(contract))
    if not len(samples):
        return np.zeros((0, *contract["input_size"]), np.float32)
    return np.stack([deepstream_style_preprocess(load_image(s.path, background), contract,
                                                 maintain_aspect_ratio=boxed,
                                                 exact_normalization=pixels_in_graph)
                     for s in samples]).astype(np.float32)


def emulated_top1(labels: np.ndarray, exact_logits: np.ndarray, emulated_logits: np.ndarray,
                  *, contract: dict, pipeline_name: str = "deepstream") -> dict:
    """Top-1 under the exact contract and under the pipeline's emulation, side by side."""
    exact, emulated = exact_logits.argmax(1), emulated_logits.argmax(1)
    top_exact, top_emulated = float((exact == labels).mean()), float((emulated == labels).mean())
    return {"pipeline": pipeline_name, "n": int(len(labels)),
            "geometry": "letterbox" if maintain_aspect_ratio(contract) else "stretch",
            "top1_exact_contract": top_exact, "top1_emulated": top_emulated,
            "drop_points": round(100 * (top_exact - top_emulated), 2),
            "top1_agreement": float((exact == emulated).mean()),
            "emulation": EMULATION_FIDELITY}


def _comment(paragraphs: list[str], width: int = 94) -> list[str]:
    """Paragraphs as '# ' lines; a paragraph starting '- ' is a bullet (indented follow-ons)."""
    lines: list[str] = []
    for para in paragraphs:
        if not para:
            lines.append("#")
            continue
        indent = "  " if para.startswith("- ") else ""
        lines += ["# " + line for line in textwrap.wrap(para, width, subsequent_indent=indent,
                                                        break_on_hyphens=False)]
    return lines


def in_graph(manifest: dict) -> bool:
    """Whether the artifact normalises in its graph (takes 0..255 pixels)."""
    return manifest.get("input_format", "normalized") != "normalized"


def _normalisation_note(contract: dict, pixels: bool = False) -> str:
    if pixels:
        return ("- normalisation: exact, inside the graph. The engine takes 0..255 RGB and its "
                "first nodes compute (x/255 - mean)/std per channel, so nvinfer passes the "
                "pixels on: net-scale-factor=1, offsets=0;0;0.")
    norm = deepstream_normalization(contract)
    std = [float(s) for s in contract["std"]]
    if norm.exact:
        return (f"- normalisation: exact. std is {std[0]:g} for every channel, so "
                "net-scale-factor = 1/(255*std) and offsets = 255*mean (equal up to float32 "
                "rounding, not bit for bit).")
    # the contract's scale for channel c is 1/(255 s_c); DeepStream's is `ratio` times it
    ratios = ", ".join(f"x{norm.net_scale_factor * 255.0 * s:.4f}" for s in std)
    errors = ", ".join(f"{e:.4f}" for e in normalization_error(contract))
    return (f"- normalisation: APPROXIMATED. std differs per channel ({', '.join(map(str, std))}) "
            "but nvinfer has one scale for all channels: net-scale-factor = 1/(255*s) with s "
            f"their midrange {(min(std) + max(std)) / 2:.6g}. R, G, B are scaled {ratios} of "
            f"the contract; the largest error is |dy| = {errors} (at x = 0 or 255).")


def maintain_aspect_ratio(contract: dict) -> int:
    """nvinfer's maintain-aspect-ratio for the contract's geometry (crop has none: stretch)."""
    return 1 if contract.get("geometry", "crop") == "letterbox" else 0


def _geometry_note(c: dict) -> str:
    _, h, w = c["input_size"]
    geometry = c.get("geometry", "crop")
    if geometry == "stretch":
        return (f"- geometry: as trained. nvinfer stretches the whole frame or object to {w}x{h}"
                " (maintain-aspect-ratio=0), the run's contract (geometry stretch).")
    if geometry == "letterbox":
        pad = tuple(c.get("pad_value", (0, 0, 0)))
        return (f"- geometry: as trained. nvinfer letterboxes the frame or object into {w}x{h} "
                "(maintain-aspect-ratio=1, symmetric-padding=1) with black bars; the contract "
                f"pads with {pad}" + ("." if pad == (0, 0, 0) else
                                       ": the bars differ (retrain with pad_value 0,0,0)."))
    size, resize = int(c["input_size"][-1]), int(c["resize"])
    return (f"- geometry: APPROXIMATED. nvinfer scales the whole frame or object to {w}x{h} "
            "(maintain-aspect-ratio=0 stretches it, =1 letterboxes it with black) where ftedge "
            f"keeps the central {size}/{resize} of the short side. To match, crop each frame or "
            f"object upstream to its central square, {size}/{resize} of its short side "
            "(nvdspreprocess ROIs, or nvvideoconvert src-crop), or retrain for this pipeline: "
            "ftedge tune --target <this target> (geometry stretch, bilinear).")


def _notes(manifest: dict) -> list[str]:
    c = manifest["preprocessing"]
    _, h, w = c["input_size"]
    interp = c["interpolation"]
    return [
        f"DeepStream nvinfer config for {manifest['model_name']} "
        f"({manifest.get('target', 'tensorrt')}, {manifest['precision']}), written by ftedge. "
        "A primary (full-frame) classifier; as a secondary classifier on a detector's objects "
        "set process-mode=2 and operate-on-gie-id=<the detector's gie-unique-id>.",
        "",
        "Preprocessing: nvinfer computes y = net-scale-factor * (x - offsets[c]) on the frame "
        f"(or object) scaled to {w}x{h}. ftedge's contract is y = (x/255 - mean[c]) / std[c] "
        f"after: {describe(c)}.",
        _normalisation_note(c, in_graph(manifest)),
        _geometry_note(c),
        ("- filter: scaling-filter=1 (bilinear on the GPU or VIC, not antialiased): the "
         "contract's filter, bilinear not antialiased."
         if interp == "bilinear" and not c.get("antialias", True) else
         f"- filter: scaling-filter=1 (bilinear on the GPU or VIC, not antialiased) is not "
         f"Pillow's {interp}" + (" (antialiased)." if c.get("antialias", True) else ".")),
        "Never bit-exact with ftedge: ftedge.deploy.deepstream.deepstream_style_preprocess "
        "emulates this config, so measure its accuracy on the val split before relying on it.",
        "",
        f"Output: {manifest['output_name']!r} holds raw logits (no softmax in the graph). "
        "nvinfer's default classifier parser takes the largest value above both "
        "classifier-threshold and 0 as the class and that value as its confidence: the "
        "threshold is in logit units, and an all-negative output reports no class. For "
        "probabilities add a parse-classifier-func-name (custom-lib-path) that applies softmax.",
        f"Confidence: {temperature_sentence(manifest)[1]}. A pipeline with this config cannot "
        "apply T: nvinfer has no softmax and no temperature, and no classifier-threshold "
        "equals a threshold on calibrated probabilities (softmax(z/T) of the top class depends "
        "on every class's logit). The top-1 class is the same (T > 0 keeps the order). For "
        "calibrated confidence, the custom parser computes softmax(logits / T) with this T, or "
        "output-tensor-meta=1 hands the raw logits to a downstream probe that does.",
        *unknown_note(manifest),
        "",
        "Engine: model-engine-file is the engine ftedge (or ../../trtexec.sh) builds on the "
        "device from the explicit Q/DQ graph, with no calibration table. Build it first: with "
        "network-mode=1 and no int8-calib-file, nvinfer's own builder logs \"INT8 calibration "
        "file not specified. Trying FP16 mode.\" and sets only the FP16 flag "
        "(nvdsinfer_model_builder.cpp), so an engine it builds from onnx-file is not the one "
        "ftedge checked.",
    ]


def unknown_note(manifest: dict) -> list[str]:
    """What nvinfer does with the graph's second output, the unknown score (none: [])."""
    u = manifest.get("unknown")
    if not u:
        return []
    return [
        "",
        f"Unknown: the engine's second output {u['output']!r} ([N, 1], {u['score']}) is an "
        f"out-of-distribution score; an image scoring above {u['threshold']:.9g} is none of "
        "the classes (the threshold accepts "
        f"{u['target_tpr']:.0%} of the val images). nvinfer's default classifier parser "
        "does not apply it: it reads every output layer as one more softmax attribute. "
        "Two ways to use it: output-tensor-meta=1 (set here) attaches both raw outputs to "
        "the frame or object as NvDsInferTensorMeta, which a pad probe reads to compare "
        f"{u['output']!r} with the threshold (as DeepStream's "
        "deepstream-infer-tensor-meta-test does); or a custom classifier parser "
        "(parse-classifier-func-name and custom-lib-path), which receives every output "
        "layer and can emit the label unknown. Neither was run here: no DeepStream.",
    ]


def nvinfer_config(folder: Path, manifest: dict) -> str:
    """The text of config_infer_primary_classifier.txt (paths relative to deploy/deepstream)."""
    contract = manifest["preprocessing"]
    norm = (DeepStreamNormalization(1.0, (0.0, 0.0, 0.0), True) if in_graph(manifest)
            else deepstream_normalization(contract))
    _, h, w = contract["input_size"]
    dla = ((manifest.get("profile") or {}).get("tensorrt") or {}).get("use_dla_core")
    keys = [
        ("gpu-id", 0),
        ("net-scale-factor", f"{norm.net_scale_factor:.9g}"),
        ("offsets", ";".join(f"{o:.9g}" for o in norm.offsets)),
        ("model-color-format", COLOR_FORMAT[contract.get("channel_order", "RGB")]),
        ("onnx-file", f"../../{onnx_name(folder, manifest)}"),
        ("model-engine-file", f"../../{engine_name(manifest)}"),
        ("labelfile-path", "labels.txt"),
        ("infer-dims", f"3;{h};{w}"),
        ("network-input-order", 0),  # NCHW
        ("batch-size", max_batch(manifest)),
        ("network-mode", NETWORK_MODE[manifest["precision"]]),
        ("network-type", 1),  # classifier
        ("process-mode", 1),
        ("gie-unique-id", 1),
        ("interval", 0),
        ("output-blob-names", ";".join([manifest["output_name"]] + (
            [manifest["unknown"]["output"]] if manifest.get("unknown") else []))),
        ("classifier-threshold", 0.0),
        ("maintain-aspect-ratio", maintain_aspect_ratio(contract)),
        ("symmetric-padding", 1),
        ("scaling-filter", SCALING_FILTER_BILINEAR),
    ]
    if manifest.get("unknown"):  # both raw outputs reach the app (see the unknown note)
        keys.append(("output-tensor-meta", 1))
    if dla is not None:
        keys += [("enable-dla", 1), ("use-dla-core", int(dla))]
    lines = _comment(_notes(manifest)) + ["", "[property]"] + [f"{k}={v}" for k, v in keys]
    return "\n".join(lines) + "\n"


def write_deepstream(folder: Path, manifest: dict, out: KitWriter) -> None:
    """deploy/deepstream/: the nvinfer config and its label file."""
    out.text(CONFIG, nvinfer_config(folder, manifest))
    out.text(LABELS, deepstream_labels_text(manifest["classes"]))
