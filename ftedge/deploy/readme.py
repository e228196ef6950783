"""deploy/README.md: the commands for each way to run this artifact, and the exact contract.

Written for the artifact at hand (its runtime, names, numbers), so a user copies commands
rather than adapting them, and a C++ or DeepStream developer gets every rounding rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ftedge.deploy.common import batch_of, max_batch, temperature_sentence
from ftedge.deploy.deepstream import CONFIG as DS_CONFIG
from ftedge.deploy.deepstream import deepstream_normalization
from ftedge.deploy.templates.preprocess import draft_margin
from ftedge.formats.artifact import MANIFEST
from ftedge.runtime.kit import kit_pieces, vnni_caveat


def _f32(x: float) -> str:
    return f"{float(np.float32(x)):.9g}"


def _run_section(manifest: dict, folder: Path) -> str:
    runtime = manifest["runtime"]
    pieces = kit_pieces(runtime)
    build = pieces.build_step(folder, manifest)
    fixed = batch_of(manifest)
    batch_note = (f"The model takes batches of exactly {fixed}: the last batch is zero-padded."
                  if fixed else f"Batches of up to {max_batch(manifest)} (--batch N).")
    return f"""## 1. Your own app: deploy/infer.py

One file, no ftedge and no torch: {runtime}, numpy and Pillow. Run it from the artifact
folder (the one with {MANIFEST}), or pass `--artifact DIR`:

```sh
{pieces.pip}
{build}python3 deploy/infer.py photo.jpg more_photos/ --topk 3
python3 deploy/infer.py photo.jpg --json > predictions.json
```

It refuses a manifest whose digest does not match (sha256 of the canonical JSON of the
manifest without `digest`/`section_digests`: Python `json.dumps` with sorted keys, separators `,` `:`, UTF-8) and a
model file whose sha256 differs from the manifest's `files`; the digest catches damage and
edits, it is not a signature. Unreadable images are reported one by one on stderr (and as
`"error"` entries with `--json`). Exit status: 0 at least one image classified, 1 none could
be read, 2 the artifact cannot be used.
{batch_note}
Import it to reuse its preprocessing elsewhere (e.g. in a Triton client):
`sys.path.insert(0, "deploy"); import infer; x = infer.preprocess_file(path, contract)`.
"""


def _deepstream_section(manifest: dict) -> str:
    norm = deepstream_normalization(manifest["preprocessing"])
    exact = ("exact (one std for all channels)" if norm.exact else
             "APPROXIMATED (the std differs per channel; see the comment in the config)")
    return f"""## 2. DeepStream (gst-nvinfer)

`{DS_CONFIG}` and its `labels.txt`
(one line, names split by `;`, a `;` inside a name written `\\u003b`). Build the engine
first (section 1): the config points `model-engine-file` at it. For an H.264 MP4, from the
artifact folder:

```sh
gst-launch-1.0 filesrc location=video.mp4 ! qtdemux ! h264parse ! nvv4l2decoder ! m.sink_0 \\
  nvstreammux name=m batch-size=1 width=1280 height=720 ! \\
  nvinfer config-file-path=deploy/{DS_CONFIG} ! nvvideoconvert ! nvdsosd ! fakesink
```

In deepstream-app, point `[primary-gie] config-file=` at the same file.
Normalisation is {exact}.
The geometry is approximated (nvinfer scales the whole frame or object, ftedge resizes the
short side and centre-crops), and the output holds raw logits, which nvinfer's default
classifier parser reads as probabilities. The comment at the top of the config says
by how much, and how to close the gap. Measure the accuracy this costs with
`ftedge.deploy.deepstream.deepstream_style_preprocess` on the val split before relying on it.
"""


def _triton_section(manifest: dict, name: str) -> str:
    pieces = kit_pieces(manifest["runtime"])
    plan = pieces.triton_build_step(manifest, name)
    batching = ("Dims exclude the batch dimension, max_batch_size is the profile's max_batch\n"
                "and dynamic batching is on." if batch_of(manifest) is None else
                "The model has a fixed batch, so max_batch_size is 0 and dims are its full "
                "shape.")
    caveat = pieces.triton_caveat(manifest)
    return f"""## 3. Triton Inference Server

A model repository in `deploy/triton/`: model `{name}` with config.pbtxt, labels.txt and
version 1 holding a copy of the model file(s). {batching} From the artifact folder:

```sh
{plan}docker run --rm -p8000:8000 -p8001:8001 -p8002:8002 -v "$PWD/deploy/triton:/models" \\
  nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models
```

Clients send the preprocessed float32 tensor `{manifest['input_name']}` (section 4, e.g.
`infer.preprocess_file`) and read `{manifest['output_name']}` (raw logits); ask for
`class_count` to get `value:index:label` strings.
{caveat}"""


def _decode_step(c: dict) -> str:
    if c.get("decode", "full") != "draft":
        return "1. **Decode** the whole file;"
    margin = draft_margin(c)
    return ("1. **Decode** the file; a JPEG in draft mode (Pillow `Image.draft(None, (w, h))`, "
            f"libjpeg's\n   DCT-domain scaling by 1/2, 1/4 or 1/8) with (w, h) = ceil({margin:g} "
            "x the size step 2 resizes to,\n   computed from the stored size);")


def _filter_text(c: dict) -> str:
    if c["interpolation"] == "bilinear" and not c.get("antialias", True):
        return ("Filter: plain bilinear on 8-bit RGB, not antialiased (a 2x2 support "
                "however much it\n   shrinks, as DeepStream's scaling-filter=1): half-pixel "
                "centres, edges clamped, rounded half\n   up to 8 bit (`resize_bilinear` in "
                "infer.py).")
    return (f"Filter: Pillow's\n   `{c['interpolation']}` on 8-bit RGB, which "
            + ("antialiases (its support widens with the\n   downscale factor) and "
               if c.get("antialias", True) else "")
            + "rounds in fixed point: reproduce Pillow's `Resample.c`, not OpenCV."
            + _reduce_text(c))


def _reduce_text(c: dict) -> str:
    gap = c.get("reducing_gap")
    if gap is None:
        return ""
    return (f"\n   First, as Pillow's `resize(..., reducing_gap={gap:g})`: box-average by the "
            f"factor `int(in / out / {gap:g})`\n   per axis (at least 1; `Image.reduce`, edge "
            "boxes partial), then the filter from the reduced\n   image with the original "
            "coordinates scaled by the factor.")


def _geometry_steps(c: dict) -> str:
    size, resize = int(c["input_size"][-1]), int(c["resize"])
    geometry = c.get("geometry", "crop")
    if geometry == "stretch":
        return (f"2. **Stretch** the whole image to {size}x{size} (aspect not kept); nothing "
                f"happens when it is\n   already that size. {_filter_text(c)}\n3. (no crop)")
    if geometry == "letterbox":
        pad = tuple(c.get("pad_value", (0, 0, 0)))
        return (f"2. **Fit** the image into {size}x{size} with its aspect kept: the long side "
                f"becomes {size}, the\n   short one `max(1, (2 * short * {size} + long) // "
                f"(2 * long))` (integers). {_filter_text(c)}\n"
                f"3. **Pad** to {size}x{size} with RGB{pad}: `(d // 2)` before, the rest after, "
                "d the shortfall.")
    return (f"2. **Resize** so the short side is {resize}: the long side is "
            f"`floor({resize} * long / short)`\n   (double precision); nothing happens when the "
            f"size is already that. {_filter_text(c)}\n"
            f"3. **Centre-crop** {size}x{size}. A side shorter than {size} is first "
            "zero-padded: `(d // 2)`\n   before, `((d + 1) // 2)` after, d the shortfall. Then "
            f"`top = round((H - {size}) / 2)` and\n   `left = round((W - {size}) / 2)` with "
            "round-half-to-even (2.5 -> 2, 3.5 -> 4).")


def _contract_section(manifest: dict) -> str:
    c = manifest["preprocessing"]
    size = int(c["input_size"][-1])
    bg = tuple(c.get("background", (255, 255, 255)))
    mean = ", ".join(_f32(m) for m in c["mean"])
    std = ", ".join(_f32(s) for s in c["std"])
    return f"""## 4. The preprocessing contract, exactly

What `infer.py` does, bit for bit as ftedge (tests assert `np.array_equal` against
torchvision). A C++ or DeepStream app must match every step to get the same INT8 answers:
inputs that differ by one float32 rounding flip the top-1 class of some images.

{_decode_step(c)} apply the EXIF orientation; convert to 8-bit RGB: alpha is
   composited onto RGB{bg} (Pillow `paste` with the alpha mask), palette
   images are expanded, 16-bit images divided by 257 and rounded, float images scaled by
   their min..max, grayscale replicated to R, G, B.
{_geometry_steps(c)}
4. **To float32**, planar, channel order RGB, layout NCHW: `x = float32(v) * {_f32(1 / 255)}`
   (float32(1/255); dividing by 255 differs in the last bit), rounded to float32.
5. **Normalise** per channel, each step rounded to float32, no fused multiply-add:
   `y = (x - mean[c]) / std[c]`, divided (not multiplied by a reciprocal), with
   mean = [{mean}]
   std = [{std}] (float32).
6. **Batch** as N x 3 x {size} x {size}, input `{manifest['input_name']}`; the output
   `{manifest['output_name']}` holds N x {len(manifest['classes'])} logits (section 5 turns them
   into calibrated probabilities).

Class i is line i of `deploy/labels.txt`. Names are escaped so that each stays on one line:
`\\\\` is a backslash, `\\n` and `\\r` are newline and carriage return, `\\uXXXX` (4 lowercase
hex digits) any other line-breaking character; every other character is itself.
"""


def _unknown_section(manifest: dict) -> str:
    u = manifest.get("unknown")
    if not u:
        return ("## 6. Images of none of the classes\n\nThis artifact has no unknown score "
                "(exported with --unknown-score off, or by an older\nftedge): every image "
                "gets one of the classes. Export it again to get one.\n")
    return f"""## 6. Images of none of the classes

The graph has a second output, `{u['output']}` (N x 1 float32, the {u['score']} score, higher =
more unknown). An image whose score is above **{u['threshold']:.9g}** is of none of the classes:
the threshold accepts {u['target_tpr']:.0%} of the val images ({u['val']['tpr']:.1%} measured on
{u['val']['n']}, {u['measured_on']}). The same rule is in `{MANIFEST}` (`unknown`).

- `infer.py` prints `UNKNOWN` above the nearest classes (`"unknown"` in `--json`).
- Triton: the config declares `{u['output']}`; ask for it with the logits and compare.
- DeepStream: nvinfer's default classifier parser does not apply the threshold; the config
  sets `output-tensor-meta=1` so a probe can read `{u['output']}` (see the comment in the
  config, and a custom parser as the other way). Not run here.
- Any other runtime: run the ONNX and read the output by name.
"""


def _confidence_section(manifest: dict) -> str:
    t, sentence = temperature_sentence(manifest)
    return f"""## 5. Calibrated confidence

The output holds logits; {sentence}. The temperature never changes the top-1 class. It was
fitted on this artifact's own logits, so a probability threshold chosen on it means the same
on every ftedge artifact of the run (each has its own T in its {MANIFEST}, `calibration`).

- `infer.py` and `ftedge predict` apply T (`"temperature"` in their JSON).
- Triton serves raw logits: the client computes softmax(logits / {t:.6g}); config.pbtxt carries
  T as the parameter `ftedge_calibration_temperature` (the model-config API returns it). The
  classification extension (`class_count`) ranks raw logits and returns them, not probabilities.
- DeepStream (TensorRT artifacts): nvinfer cannot apply T. Its default classifier parser has
  no softmax; `classifier-threshold` compares raw logits, and no value of it equals a threshold
  on calibrated probabilities, which depend on every class's logit. For calibrated confidence
  in a pipeline, a custom `parse-classifier-func-name` must compute softmax(logits / T), or
  `output-tensor-meta=1` hands the raw tensor to a downstream probe that does.
"""


def readme_text(folder: Path, manifest: dict, triton_name: str, *, written: list[str]) -> str:
    runtime = manifest["runtime"]
    files = "\n".join(f"- `{p}`" for p in sorted([*written, "deploy/README.md"]))
    sections = [_run_section(manifest, folder)]
    if kit_pieces(runtime).deepstream:
        sections.append(_deepstream_section(manifest))
    else:
        sections.append("## 2. DeepStream (gst-nvinfer)\n\nDeepStream runs TensorRT engines: "
                        "export the run for a TensorRT target (e.g.\n`--target "
                        "jetson-orin-nano`) to get a DeepStream config in its deploy kit.\n")
    sections += [_triton_section(manifest, triton_name), _contract_section(manifest),
                 _confidence_section(manifest), _unknown_section(manifest)]
    title = (f"# Deploy kit: {manifest['model_name']} on {manifest.get('target', runtime)} "
             f"({runtime}, {manifest['precision']})")
    caveat = vnni_caveat(manifest["runtime"], manifest.get("extra"))
    warning = f"**Which CPUs:** {caveat}.\n\n" if caveat else ""
    return (f"{title}\n\n{warning}Written by ftedge with this artifact:\n\n{files}\n\n"
            + "\n".join(sections))
