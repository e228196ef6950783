"""Deploy-kit fixtures: a tiny ONNX classifier, sealed artifact folders, awkward images, and a
way to run deploy/infer.py in an interpreter that cannot import ftedge or torch."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# folder names make odd class names: a ';' (DeepStream's separator), a backslash, a newline,
# a Unicode line separator, non-ASCII text
CLASSES = ["cat", "dog;wolf", "back\\slash", "two\nlines", "para\u2029graph", "ünï cödé ✓"]
CONTRACT = {"input_size": [3, 32, 32], "resize": 36, "crop": "center",
            "interpolation": "bilinear", "scale": "1/255", "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225], "channel_order": "RGB", "layout": "NCHW",
            "background": [255, 255, 255]}
PROFILES = {"onnxruntime": {"name": "onnxruntime-cpu", "batch": "dynamic", "max_batch": 8},
            # as targets/openvino-cpu.yaml: the CPU plugin would run FP32 in bf16 where it can
            "openvino": {"name": "openvino-cpu", "batch": "dynamic", "max_batch": 8,
                         "inference_precision": "f32"},
            "tensorrt": {"name": "jetson-orin-nano", "batch": "dynamic", "max_batch": 8,
                         "tensorrt": {"use_dla_core": None}}}
DEVICES = {"onnxruntime": "cpu", "openvino": "CPU", "tensorrt": "gpu"}

# Runs a script with ftedge, torch and torchvision unimportable, as on a bare device.
BLOCKER = '''
import runpy, sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ftedge", "torch", "torchvision"):
            raise ModuleNotFoundError(f"{name} is blocked: the deploy kit must not need it",
                                      name=name)
        return None
sys.meta_path.insert(0, _Blocked())
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
'''


def tiny_onnx(path: Path, n_classes: int, batch: int | None = None, seed: int = 0) -> Path:
    """input [N,3,32,32] -> Flatten -> Gemm -> logits [N,C]: every input pixel moves the logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = (rng.normal(0, 0.05, (n_classes, 3 * 32 * 32))).astype(np.float32)
    b = rng.normal(0, 0.5, n_classes).astype(np.float32)
    n = batch if batch is not None else "batch"
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1)],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, n_classes])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def digest_of(manifest: dict) -> str:
    """The rule the brief states, written independently of ftedge.deploy."""
    body = {k: v for k, v in manifest.items() if k not in ("digest", "section_digests")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def seal(folder: Path, manifest: dict) -> dict:
    """Hash every file but manifest.json into "files", add "digest", write manifest.json."""
    manifest = dict(manifest)
    manifest["files"] = {p.relative_to(folder).as_posix():
                         hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(folder.rglob("*"))
                         if p.is_file() and p.name != "manifest.json"}
    manifest["digest"] = digest_of(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def make_manifest(runtime: str, artifact: str, batch=None, contract=None, precision="fp32",
                  classes=None, **extra) -> dict:
    contract = contract or CONTRACT
    profile = dict(PROFILES[runtime])
    if batch is not None:
        profile["batch"] = batch
    return {"format": "ftedge-artifact/1", "target": profile["name"], "runtime": runtime,
            "device": DEVICES[runtime], "precision": precision, "artifact": artifact,
            "input_name": "input", "output_name": "logits",
            "input_shape": ["dynamic" if batch is None else batch, *contract["input_size"]],
            "classes": list(classes or CLASSES), "preprocessing": contract,
            "profile": profile, "model_name": "tiny_net", **extra}


def build_artifact(folder: Path, runtime: str, batch=None, contract=None, precision="fp32",
                   classes=None, calibration=None) -> tuple[Path, dict]:
    """An artifact folder as the exporter stages it: model file(s), kit, sealed manifest."""
    from ftedge.deploy.kit import write_deploy_kit

    classes = classes or CLASSES
    folder.mkdir(parents=True)
    extra = {}
    if runtime == "openvino":
        import openvino as ov

        onnx_path = tiny_onnx(folder.parent / f"{folder.name}.src.onnx", len(classes), batch)
        ov.save_model(ov.convert_model(str(onnx_path)), str(folder / "model.xml"),
                      compress_to_fp16=False)
        artifact = "model.xml"
    elif runtime == "onnxruntime":
        artifact = tiny_onnx(folder / f"model.{precision}.onnx", len(classes), batch).name
    else:  # the export writes the ONNX; the engine comes later, on the device
        tiny_onnx(folder / f"model.{precision}.onnx", len(classes), batch)
        artifact, extra = "model.engine", {"extra": {"onnx": f"model.{precision}.onnx"}}
    if calibration is not None:
        extra["calibration"] = calibration
    manifest = make_manifest(runtime, artifact, batch, contract, precision, classes, **extra)
    written = write_deploy_kit(folder, manifest)
    return folder, {**seal(folder, manifest), "_written": written}


def write_images(root: Path) -> dict[str, Path]:
    """Files that exercise every branch of the decoder and of resize/crop."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)

    def rgb(w, h):
        # smooth gradients plus noise: resampling filters differ visibly on it
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1),
                         (xx + yy) * 127 / max(w + h - 2, 1)], -1)
        return np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)

    out = {}

    def save(name, img, **kw):
        out[name] = root / name
        img.save(out[name], **kw)

    save("rgb_nonsquare.png", Image.fromarray(rgb(53, 37)))
    save("wide.png", Image.fromarray(rgb(200, 90)))
    save("tiny_smaller_than_crop.png", Image.fromarray(rgb(10, 7)))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to view
    save("exif_rotated.jpg", Image.fromarray(rgb(60, 40)), exif=exif.tobytes(), quality=95)
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (50, 1)))
    rgba = Image.fromarray(rgb(40, 50)).convert("RGBA")
    rgba.putalpha(alpha)
    save("rgba.png", rgba)
    gray = Image.fromarray(rgb(45, 45)[..., 0])
    save("gray.png", gray)
    save("gray_alpha.png", Image.merge("LA", (gray, Image.fromarray(rgb(45, 45)[..., 1]))))
    pal = Image.fromarray(rgb(33, 41)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    save("palette_transparent.png", pal, transparency=0)
    save("palette.gif", Image.fromarray(rgb(38, 30)).convert("P"))
    save("sixteen_bit.png", Image.fromarray((rgb(41, 35)[..., 0].astype(np.uint16) * 257
                                             + rng.integers(0, 257, (35, 41))).astype(np.uint16)))
    save("float.tif", Image.fromarray(rng.normal(0, 1, (30, 44)).astype(np.float32), mode="F"))
    save("cmyk.jpg", Image.fromarray(rgb(39, 48)).convert("CMYK"), quality=95)
    save("bilevel.png", Image.fromarray(rgb(36, 36)[..., 2] > 128))
    # large enough that a draft decode (decode: draft) shrinks them in the DCT domain
    save("big.jpg", Image.fromarray(rgb(400, 300)), quality=90)
    save("big_tall_exif.jpg", Image.fromarray(rgb(420, 300)), exif=exif.tobytes(), quality=90)
    save("big_gray.jpg", Image.fromarray(rgb(350, 260)[..., 1]), quality=90)
    save("big_progressive.jpg", Image.fromarray(rgb(333, 517)), quality=85, progressive=True)
    return out


def write_bad_images(root: Path, good: Path) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "garbage.jpg").write_bytes(b"this is not an image at all")
    (root / "empty.png").write_bytes(b"")
    data = good.read_bytes()
    (root / "truncated.png").write_bytes(data[:len(data) // 2])
    return [root / "garbage.jpg", root / "empty.png", root / "truncated.png"]


def run_infer(script: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    """python -I (no PYTHONPATH, no user site, no cwd on sys.path) with the blocker."""
    blocker = cwd / "_block_ftedge_torch.py"
    blocker.write_text(BLOCKER)
    return subprocess.run([sys.executable, "-I", str(blocker), str(script), *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def copy_artifact(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict[str, Path]:
    return write_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def ort_artifact(tmp_path_factory) -> tuple[Path, dict]:
    return build_artifact(tmp_path_factory.mktemp("ort") / "onnxruntime-cpu-fp32",
                          "onnxruntime")


@pytest.fixture(scope="session")
def ov_artifact(tmp_path_factory) -> tuple[Path, dict]:
    return build_artifact(tmp_path_factory.mktemp("ov") / "openvino-cpu-fp32", "openvino")


@pytest.fixture(scope="session")
def trt_artifact(tmp_path_factory) -> tuple[Path, dict]:
    return build_artifact(tmp_path_factory.mktemp("trt") / "jetson-orin-nano-int8", "tensorrt",
                          precision="int8")
