"""write_deploy_kit: everything a device-side app needs to use an artifact without ftedge.

Called on the staging artifact folder once the artifact's files are in it and before the
manifest is sealed, so the kit's files are hashed with the rest.
"""

from __future__ import annotations

from pathlib import Path

from ftedge.deploy.common import KitWriter, check_manifest
from ftedge.deploy.deepstream import write_deepstream
from ftedge.deploy.infer_script import render_infer_script
from ftedge.deploy.labels import check_classes, labels_text
from ftedge.deploy.readme import readme_text
from ftedge.deploy.triton import write_triton_repository


def write_deploy_kit(folder: Path, manifest: dict) -> list[str]:
    """Write folder/deploy/... for the artifact described by `manifest`; return the relative POSIX paths written.

    Every runtime gets deploy/labels.txt, deploy/infer.py (standalone: the runtime, numpy,
    Pillow), deploy/README.md and a Triton repository deploy/triton/<model>/ (config.pbtxt,
    labels.txt and 1/ holding copies of the model files: they are small). TensorRT also gets
    deploy/deepstream/ (nvinfer config and labels); its engine is copied into Triton's 1/
    only if it already exists (it is built on the device). Files are written atomically;
    existing kit files are replaced.

    Args:
        folder: the artifact folder, already holding the artifact file(s).
        manifest: the artifact's manifest (digest and files not needed yet).
    Returns:
        paths relative to `folder`, e.g. "deploy/infer.py", in the order written.
    Raises:
        DeployError: the manifest lacks what the kit needs, or a model file is missing.
    """
    folder = Path(folder)
    check_manifest(manifest)
    check_classes(manifest["classes"])
    out = KitWriter(folder)
    out.text("labels.txt", labels_text(manifest["classes"]))
    title = f"{manifest['model_name']}, {manifest.get('target', manifest['runtime'])}, " \
            f"{manifest['precision']}"
    out.text("infer.py", render_infer_script(manifest["runtime"], title), executable=True)
    if manifest["runtime"] == "tensorrt":
        write_deepstream(folder, manifest, out)
    triton_name = write_triton_repository(folder, manifest, out)
    out.text("README.md", readme_text(folder, manifest, triton_name, written=list(out.written)))
    return out.written
