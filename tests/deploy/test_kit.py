"""write_deploy_kit: which files each runtime gets, what the README says, what it refuses."""

from __future__ import annotations

import os

import pytest

from ftedge.deploy.common import DeployError
from ftedge.deploy.kit import write_deploy_kit
from ftedge.deploy.templates.artifact import manifest_digest
from tests.deploy.conftest import CLASSES, digest_of, make_manifest, tiny_onnx

COMMON = ["deploy/labels.txt", "deploy/infer.py", "deploy/triton/tiny_net/config.pbtxt",
          "deploy/triton/tiny_net/labels.txt", "deploy/README.md"]


@pytest.mark.parametrize("which, extra", [
    ("ort_artifact", ["deploy/triton/tiny_net/1/model.onnx"]),
    ("ov_artifact", ["deploy/triton/tiny_net/1/model.xml", "deploy/triton/tiny_net/1/model.bin"]),
    ("trt_artifact", ["deploy/deepstream/config_infer_primary_classifier.txt",
                      "deploy/deepstream/labels.txt"])])
def test_files_written_per_runtime(which, extra, request):
    folder, manifest = request.getfixturevalue(which)
    written = manifest["_written"]
    assert sorted(written) == sorted(COMMON + extra)
    on_disk = sorted(p.relative_to(folder).as_posix() for p in (folder / "deploy").rglob("*")
                     if p.is_file())
    assert on_disk == sorted(written)
    assert all(name in manifest["files"] for name in written)  # hashed with the artifact
    assert os.access(folder / "deploy" / "infer.py", os.X_OK)
    assert (folder / "deploy" / "infer.py").read_text().startswith("#!/usr/bin/env python3\n")


@pytest.mark.parametrize("which", ["ort_artifact", "ov_artifact", "trt_artifact"])
def test_readme_gives_the_commands_and_the_contract(which, request):
    folder, manifest = request.getfixturevalue(which)
    readme = (folder / "deploy" / "README.md").read_text(encoding="utf-8")
    assert "python3 deploy/infer.py photo.jpg" in readme
    assert "tritonserver --model-repository=/models" in readme
    assert "## 2. DeepStream" in readme
    if manifest["runtime"] == "tensorrt":
        assert "nvinfer config-file-path=deploy/deepstream/" in readme and "sh trtexec.sh" in readme
    for rule in ("floor(36 * long / short)", "round-half-to-even", "0.00392156886",
                 "no fused multiply-add", "channel order RGB, layout NCHW",
                 "std = [0.229000002, 0.224000007, 0.224999994]"):
        assert rule in readme, rule


def test_manifest_digest_follows_the_stated_rule(ort_artifact):
    _, manifest = ort_artifact
    manifest = {k: v for k, v in manifest.items() if k != "_written"}
    assert manifest_digest(manifest) == digest_of(manifest)
    # format 2 seals sections too; the whole-manifest digest leaves those out
    assert manifest_digest({**manifest, "section_digests": {"classes": "0" * 64}}) \
        == manifest_digest(manifest)


def test_refuses_an_incomplete_manifest_or_a_missing_model(tmp_path):
    manifest = make_manifest("onnxruntime", "model.fp32.onnx")
    with pytest.raises(DeployError, match="no classes"):
        write_deploy_kit(tmp_path, {k: v for k, v in manifest.items() if k != "classes"})
    with pytest.raises(DeployError, match="no deploy kit for runtime 'tflite'"):
        write_deploy_kit(tmp_path, {**manifest, "runtime": "tflite"})
    with pytest.raises(DeployError, match=r"input_shape .* is not \[batch, \*input_size\]"):
        write_deploy_kit(tmp_path, {**manifest, "input_shape": ["dynamic", 3, 64, 64]})
    with pytest.raises(DeployError, match="model.fp32.onnx is missing") as e:
        write_deploy_kit(tmp_path, manifest)
    assert "How to fix" in str(e.value)


def test_tensorrt_onnx_name_without_extra(tmp_path):
    """An exporter that names the ONNX nowhere: the one .onnx in the folder is used."""
    tiny_onnx(tmp_path / "model.fp16.onnx", len(CLASSES))
    write_deploy_kit(tmp_path, make_manifest("tensorrt", "model.engine", precision="fp16"))
    config = (tmp_path / "deploy/deepstream/config_infer_primary_classifier.txt").read_text()
    assert "onnx-file=../../model.fp16.onnx" in config
