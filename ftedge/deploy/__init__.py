"""The deploy kit written into every artifact folder: use it without ftedge or torch.

`write_deploy_kit(folder, manifest)` writes folder/deploy/: a standalone infer.py per runtime
(its preprocessing bit for bit ftedge's), labels.txt, a Triton model repository, for TensorRT
a DeepStream nvinfer config, and a README with the exact commands and contract.
`deepstream_style_preprocess` emulates the DeepStream config so its accuracy can be measured.
"""

from ftedge.deploy.common import DeployError
from ftedge.deploy.deepstream import (DeepStreamNormalization, deepstream_normalization,
                                      deepstream_style_preprocess, normalization_error)
from ftedge.deploy.kit import write_deploy_kit
from ftedge.deploy.templates.artifact import manifest_digest

__all__ = ["write_deploy_kit", "DeployError", "manifest_digest", "deepstream_normalization",
           "DeepStreamNormalization", "normalization_error", "deepstream_style_preprocess"]
