"""The QAT model with frozen fake quantization: the numbers an INT8 artifact must reproduce."""

from __future__ import annotations

import copy

import torch

from ftedge.formats.run import QAT_BEST, RunFolder
from ftedge.quant.qat import freeze_all_observers, prepare_qat
from ftedge.runtime import LoadedModel
from ftedge.runtime.pytorch import TorchRunner


def qat_reference(loaded: LoadedModel) -> TorchRunner:
    """qat_best.pt in the prepared form of `loaded`'s FP32 model."""
    ckpt = RunFolder(loaded.path).checkpoint(QAT_BEST)
    model = copy.deepcopy(loaded.runner.model)
    example = torch.zeros(2, *loaded.contract["input_size"])
    prepare_qat(model, example, ckpt["config"]["qat"].get("weight_bits", 8))
    model.load_state_dict(ckpt["model_state"])
    freeze_all_observers(model)
    return TorchRunner(model.eval())
