"""A Triton Inference Server model repository for the artifact: deploy/triton/<model>/.

config.pbtxt, labels.txt (for the classification extension) and the version folder 1/ with
copies of the model files under the backend's default names (model.onnx; model.xml +
model.bin; model.plan). The files are copied, not linked, so the repository can be mounted
or moved on its own; they are small. A TensorRT plan is copied only once the engine exists:
it is built on the device, after the export (the kit's README gives the copy command).

The text is written by hand (ftedge does not depend on tritonclient); the tests parse it
with tritonclient's ModelConfig protobuf. Batching follows Triton's rule: a model whose first
dimension is a dynamic batch gets max_batch_size = the profile's max_batch, dims without
the batch dimension and dynamic batching; a fixed-batch model cannot take Triton's smaller
batches, so it gets max_batch_size 0 and its full shape.
"""

from __future__ import annotations

from pathlib import Path

from ftedge.deploy.common import (KitWriter, batch_of, input_dims, max_batch, safe_model_name,
                                  temperature_sentence)
from ftedge.deploy.labels import labels_text
from ftedge.runtime.kit import kit_pieces

# config.pbtxt parameter carrying the calibration temperature for clients (Triton ignores it)
TEMPERATURE_PARAMETER = "ftedge_calibration_temperature"
MAX_QUEUE_DELAY_US = 100  # how long Triton may hold a request to batch it with others


def version_files(folder: Path, manifest: dict) -> dict[str, str]:
    """{name in 1/: source file relative to the artifact folder}."""
    return kit_pieces(manifest["runtime"]).triton_files(Path(folder), manifest)


def preferred_batch_sizes(largest: int) -> list[int]:
    return sorted({b for b in (largest // 4, largest // 2, largest) if b >= 1})


def _dims(values) -> str:
    return "[ " + ", ".join(str(int(v)) for v in values) + " ]"


def _unknown_output(manifest: dict, batching: bool, fixed: int | None) -> list[str]:
    """The second output, the unknown score, when the graph has one (manifest "unknown")."""
    unknown = manifest.get("unknown")
    if not unknown:
        return []
    return ["  {",
            f"    # {unknown['score']} score, higher = more unknown: an image scoring above "
            f"{unknown['threshold']:.9g} is none of the classes",
            f'    name: "{unknown["output"]}"',
            "    data_type: TYPE_FP32",
            f"    dims: {_dims([1] if batching else [fixed, 1])}", "  }"]


def config_pbtxt(manifest: dict, name: str) -> str:
    """The text of config.pbtxt (protobuf text format of Triton's ModelConfig)."""
    runtime, fixed = manifest["runtime"], batch_of(manifest)
    pieces = kit_pieces(runtime)
    size, n_classes = input_dims(manifest), len(manifest["classes"])
    fmt, layout = manifest.get("input_format", "normalized"), manifest.get("input_layout", "NCHW")
    batching = fixed is None
    in_dims = size if batching else [fixed, *size]
    out_dims = [n_classes] if batching else [fixed, n_classes]
    lines = [
        f"# Triton model configuration for {manifest['model_name']} "
        f"({manifest.get('target', runtime)}, {manifest['precision']}), written by ftedge.",
        *(["# Input: NCHW float32, already preprocessed as deploy/README.md says (the client",
           "# applies the contract, e.g. with deploy/infer.py's preprocess_file)."]
          if fmt == "normalized" else
          [f"# Input: {layout} {'uint8' if fmt == 'uint8' else 'float32'} RGB pixels 0..255, "
           "resized as deploy/README.md says",
           "# (e.g. deploy/infer.py's model_input); the model normalises them itself."]),
        "# Output: raw logits; the classification extension returns labels.txt's escaped names,",
        "# ranked by raw logit.",
        f"# Confidence: {temperature_sentence(manifest)[1]};",
        "# Triton does not apply it: the client divides by T (parameter",
        f"# {TEMPERATURE_PARAMETER}, readable with the model-config API) before the softmax.",
        f'name: "{name}"',
        pieces.triton_platform,
        f"max_batch_size: {max_batch(manifest) if batching else 0}",
        "input [",
        "  {",
        f'    name: "{manifest["input_name"]}"',
        f"    data_type: {'TYPE_UINT8' if fmt == 'uint8' else 'TYPE_FP32'}",
        *([f"    format: FORMAT_{layout}"] if batching else []),
        f"    dims: {_dims(in_dims)}",
        "  }",
        "]",
        "output [",
        "  {",
        f'    name: "{manifest["output_name"]}"',
        "    data_type: TYPE_FP32",
        f"    dims: {_dims(out_dims)}",
        '    label_filename: "labels.txt"',
        "  }," if manifest.get("unknown") else "  }",
        *_unknown_output(manifest, batching, fixed),
        "]",
    ]
    if batching:
        lines += ["dynamic_batching {",
                  f"  preferred_batch_size: {_dims(preferred_batch_sizes(max_batch(manifest)))}",
                  f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}",
                  "}"]
    lines += ["instance_group [", "  {", "    count: 1", f"    kind: {pieces.triton_kind}", "  }",
              "]"]
    lines += ["parameters: {", f'  key: "{TEMPERATURE_PARAMETER}"',
              f'  value: {{ string_value: "{temperature_sentence(manifest)[0]:.9g}" }}', "}"]
    for key, value in pieces.triton_parameters(manifest).items():
        lines += ["parameters: {", f'  key: "{key}"', f'  value: {{ string_value: "{value}" }}',
                  "}"]
    return "\n".join(lines) + "\n"


def write_triton_repository(folder: Path, manifest: dict, out: KitWriter) -> str:
    """Write deploy/triton/<model>/...; returns the model's directory name."""
    name = safe_model_name(manifest["model_name"])
    base = f"triton/{name}"
    out.text(f"{base}/config.pbtxt", config_pbtxt(manifest, name))
    out.text(f"{base}/labels.txt", labels_text(manifest["classes"]))
    for dest, source in version_files(folder, manifest).items():
        out.copy(source, f"{base}/1/{dest}")
    return name
