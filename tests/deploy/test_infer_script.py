"""deploy/infer.py runs where ftedge and torch cannot be imported, and agrees with ftedge."""

from __future__ import annotations

import importlib.util
import json
import py_compile
import shutil

import numpy as np
import pytest

from ftedge.data.folder import Sample
from ftedge.data.transforms import preprocess_samples
from ftedge.deploy.infer_script import split_piece
from tests.deploy.conftest import (CLASSES, build_artifact, copy_artifact, run_infer, seal,
                                   write_bad_images)


def reference(folder, manifest, paths, temperature=1.0):
    """ftedge's preprocessing fed to the artifact's ONNX in ONNX Runtime: softmax(logits / T)."""
    import onnxruntime as ort

    onnx_file = next(folder.glob("*.onnx"), None) or folder.parent / f"{folder.name}.src.onnx"
    x = preprocess_samples([Sample(p, 0) for p in paths], manifest["preprocessing"])
    session = ort.InferenceSession(str(onnx_file))
    batch = manifest["input_shape"][0]
    if batch == "dynamic":
        logits = session.run(None, {"input": x})[0]
    else:  # one image per call, zero-padded to the fixed batch
        pad = np.zeros((batch - 1, *x.shape[1:]), np.float32)
        logits = np.concatenate([session.run(None, {"input": np.concatenate([xi[None], pad])})[0][:1]
                                 for xi in x])
    logits = logits.astype(np.float64) / temperature
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def test_the_blocker_blocks(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text("import torch\n")
    res = run_infer(script, cwd=tmp_path)
    assert res.returncode != 0 and "torch is blocked" in res.stderr
    script.write_text("import sys\nimport ftedge.deploy\n")
    assert "ftedge is blocked" in run_infer(script, cwd=tmp_path).stderr


@pytest.mark.parametrize("which", ["ort_artifact", "ov_artifact"])
def test_json_top1_and_probabilities_match_ftedge(which, request, images, tmp_path):
    folder, manifest = request.getfixturevalue(which)
    paths = list(images.values())
    res = run_infer(folder / "deploy" / "infer.py", *paths, "--json", "--topk", "3",
                    "--batch", "5", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    want = reference(folder, manifest, paths)
    assert [r["image"] for r in out] == [str(p) for p in paths]
    for r, p in zip(out, want):
        assert "error" not in r and len(r["top"]) == 3
        top = r["top"][0]
        assert top["index"] == int(p.argmax()) and top["class"] == CLASSES[top["index"]]
        for t in r["top"]:
            assert t["probability"] == pytest.approx(p[t["index"]], abs=1e-3)


@pytest.mark.parametrize("temperature", [0.25, 3.0])
def test_probabilities_are_softmax_of_logits_over_the_manifest_temperature(temperature, images,
                                                                          tmp_path):
    folder, manifest = build_artifact(
        tmp_path / "calibrated", "onnxruntime",
        calibration={"method": "temperature", "temperature": temperature})
    paths = list(images.values())[:4]
    res = run_infer(folder / "deploy" / "infer.py", *paths, "--json", "--topk", "6", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "T = 1" not in res.stderr
    want = reference(folder, manifest, paths, temperature)
    assert not np.allclose(want, reference(folder, manifest, paths))  # T changes the numbers
    for r, p in zip(json.loads(res.stdout), want):
        assert r["temperature"] == temperature
        got = np.array([t["probability"] for t in sorted(r["top"], key=lambda t: t["index"])])
        np.testing.assert_allclose(got, p, atol=1e-6)


def test_a_manifest_without_calibration_says_t_is_1(ort_artifact, images, tmp_path):
    folder, manifest = ort_artifact
    res = run_infer(folder / "deploy" / "infer.py", images["wide.png"], "--json", cwd=tmp_path)
    assert res.returncode == 0 and "no calibration" in res.stderr and "T = 1" in res.stderr
    assert json.loads(res.stdout)[0]["temperature"] == 1.0


@pytest.mark.parametrize("bad", [0, -1.0, "2", None, True])
def test_a_damaged_temperature_is_refused(bad, images, tmp_path):
    folder, manifest = build_artifact(tmp_path / "bad", "onnxruntime",
                                      calibration={"method": "temperature", "temperature": 1.5})
    manifest = {k: v for k, v in manifest.items() if k not in ("_written", "digest", "files")}
    seal(folder, {**manifest, "calibration": {"method": "temperature", "temperature": bad}})
    res = run_infer(folder / "deploy" / "infer.py", images["wide.png"], cwd=tmp_path)
    assert res.returncode == 2 and "temperature is damaged" in res.stderr


def test_text_output_and_artifact_option(ort_artifact, images, tmp_path):
    """A copy of infer.py elsewhere, pointed at the folder; names print one per line."""
    folder, _ = ort_artifact
    script = shutil.copy(folder / "deploy" / "infer.py", tmp_path / "infer.py")
    res = run_infer(script, images["rgba.png"], "--artifact", folder, "--topk", "6",
                    cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == str(images["rgba.png"]) and len(lines) == 1 + len(CLASSES)
    assert any(line.endswith("two\\nlines") for line in lines)


def test_fixed_batch_pads_the_last_chunk(tmp_path, images):
    folder, manifest = build_artifact(tmp_path / "b3", "onnxruntime", batch=3)
    paths = list(images.values())[:5]  # 3 + 2 (padded)
    res = run_infer(folder / "deploy" / "infer.py", *paths, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    got = [r["top"][0]["index"] for r in json.loads(res.stdout)]
    assert got == list(reference(folder, manifest, paths).argmax(1))
    refused = run_infer(folder / "deploy" / "infer.py", *paths, "--batch", "2", cwd=tmp_path)
    assert refused.returncode == 2 and "exactly 3" in refused.stderr


def test_unreadable_images_are_reported_and_all_bad_exits_nonzero(ort_artifact, images,
                                                                   tmp_path):
    folder, _ = ort_artifact
    bad = write_bad_images(tmp_path / "bad", images["rgb_nonsquare.png"])
    script = folder / "deploy" / "infer.py"
    res = run_infer(script, *bad, cwd=tmp_path)
    assert res.returncode == 1
    for path in bad:
        assert f"{path}: cannot read:" in res.stderr
    assert "none of the 3 image(s) could be read" in res.stderr
    mixed = run_infer(script, bad[0], images["gray.png"], "--json", cwd=tmp_path)
    assert mixed.returncode == 0, mixed.stderr
    out = json.loads(mixed.stdout)
    assert "not an image file" in out[0]["error"] and out[1]["top"]


def test_paths_the_os_refuses_are_reported_not_waited_on(ort_artifact, images, tmp_path):
    """A FIFO (a decode would wait forever), a name longer than the file system allows and a
    link loop are each one unreadable input with its reason, next to a good image."""
    import os

    folder, _ = ort_artifact
    os.mkfifo(tmp_path / "camera.jpg")
    os.symlink("loop-b.png", tmp_path / "loop-a.png")
    os.symlink("loop-a.png", tmp_path / "loop-b.png")
    long = tmp_path / ("x" * 300 + ".png")
    res = run_infer(folder / "deploy" / "infer.py", tmp_path / "camera.jpg", long,
                    tmp_path / "loop-a.png", images["gray.png"], "--json", cwd=tmp_path)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    out = json.loads(res.stdout)
    assert "not a regular file" in out[0]["error"]
    assert "too long" in out[1]["error"] and "symbolic links" in out[2]["error"]
    assert out[3]["top"]


def test_an_artifact_that_is_not_a_folder_or_holds_a_fifo_is_named(ort_artifact, images,
                                                                   tmp_path):
    """--artifact a file, and a FIFO where the manifest or the model is (reading one would
    wait forever): each refused with what it is, exit 2."""
    import os

    folder = copy_artifact(ort_artifact[0], tmp_path / "copy")
    script = folder / "deploy" / "infer.py"
    res = run_infer(script, images["gray.png"], "--artifact", folder / "manifest.json",
                    cwd=tmp_path)
    assert res.returncode == 2 and "manifest.json is not a folder" in res.stderr, res.stderr
    for name in (json.loads((folder / "manifest.json").read_text())["artifact"],
                 "manifest.json"):
        fifo = copy_artifact(folder, tmp_path / f"fifo-{name}")
        (fifo / name).unlink()
        os.mkfifo(fifo / name)
        res = run_infer(fifo / "deploy" / "infer.py", images["gray.png"], cwd=tmp_path)
        assert res.returncode == 2 and f"{name} is not a regular file" in res.stderr, res.stderr


@pytest.mark.parametrize("stdout", ["closed pipe", "/dev/full"])
def test_results_that_cannot_be_written_end_without_a_traceback(stdout, ort_artifact, images,
                                                                  tmp_path):
    """`infer.py ... | head` ends quietly; a full disk says so; both exit 3 (the epilog)."""
    import os
    import subprocess
    import sys

    from tests.deploy.conftest import BLOCKER

    (tmp_path / "_block.py").write_text(BLOCKER)
    if stdout == "closed pipe":
        read_end, out = os.pipe()
        os.close(read_end)
    else:
        out = os.open("/dev/full", os.O_WRONLY)
    try:
        res = subprocess.run([sys.executable, "-I", str(tmp_path / "_block.py"),
                              str(ort_artifact[0] / "deploy" / "infer.py"),
                              str(images["gray.png"]), "--json"], cwd=tmp_path, stdout=out,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(out)
    assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr
    if stdout == "/dev/full":
        assert "cannot write the results: No space left on device" in res.stderr
    else:
        assert "error" not in res.stderr  # notes about the artifact only


@pytest.mark.parametrize("tamper", ["model", "manifest", "no_digest"])
def test_tampering_is_refused(tamper, ort_artifact, images, tmp_path):
    folder = copy_artifact(ort_artifact[0], tmp_path / "copy")
    manifest = json.loads((folder / "manifest.json").read_text())
    if tamper == "model":
        model = folder / manifest["artifact"]
        model.write_bytes(model.read_bytes() + b"\0")
        expect = "changed since export (sha256 mismatch)"
    elif tamper == "manifest":
        manifest["classes"][0] = "lion"
        (folder / "manifest.json").write_text(json.dumps(manifest))
        expect = "was changed after export (its digest does not match)"
    else:
        del manifest["digest"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
        expect = "has no digest"
    res = run_infer(folder / "deploy" / "infer.py", images["gray.png"], cwd=tmp_path)
    assert res.returncode == 2
    assert expect in res.stderr and "how to fix:" in res.stderr


def test_openvino_checks_the_bin_too(ov_artifact, images, tmp_path):
    folder = copy_artifact(ov_artifact[0], tmp_path / "copy")
    (folder / "model.bin").write_bytes((folder / "model.bin").read_bytes()[:-4] + b"\0\0\0\1")
    res = run_infer(folder / "deploy" / "infer.py", images["gray.png"], cwd=tmp_path)
    assert res.returncode == 2 and "model.bin changed since export" in res.stderr


def test_all_three_scripts_share_one_preprocessing(ort_artifact, ov_artifact, trt_artifact):
    shared = [split_piece(name)[1] for name in ("preprocess", "labels", "artifact", "cli")]
    for folder, _ in (ort_artifact, ov_artifact, trt_artifact):
        text = (folder / "deploy" / "infer.py").read_text()
        assert all(body in text for body in shared), folder.name
        assert "import torch" not in text and "ftedge." not in text.split('"""', 2)[2]


def test_tensorrt_script_compiles_and_says_what_is_missing(trt_artifact, images, tmp_path):
    folder, _ = trt_artifact
    script = folder / "deploy" / "infer.py"
    py_compile.compile(str(script), cfile=str(tmp_path / "infer.pyc"), doraise=True)
    res = run_infer(script, images["gray.png"], cwd=tmp_path)
    assert res.returncode == 2
    if importlib.util.find_spec("tensorrt") is None:
        assert "TensorRT is not installed here" in res.stderr and "how to fix:" in res.stderr
    else:  # TensorRT here, but no engine was built for this artifact
        assert ("does not exist: TensorRT engines are built on the device" in res.stderr
                or "cuda-python is not installed" in res.stderr)


def test_a_resealed_manifest_with_other_preprocessing_is_refused(ort_artifact, images,
                                                                 tmp_path):
    """A contract this script cannot apply exactly stops it instead of guessing."""
    folder = copy_artifact(ort_artifact[0], tmp_path / "copy")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["preprocessing"]["channel_order"] = "BGR"
    seal(folder, {k: v for k, v in manifest.items() if k not in ("files", "digest")})
    res = run_infer(folder / "deploy" / "infer.py", images["gray.png"], cwd=tmp_path)
    assert res.returncode == 2 and "channel_order='BGR' is not supported" in res.stderr
