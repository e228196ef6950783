"""The QAT model with frozen fake quantization: the numbers an INT8 artifact must reproduce,
and its float twin (the same weights, quantizers off): how far quantization alone moves them."""

from __future__ import annotations

import copy

import torch

from ftedge.formats.run import QAT_BEST, RunFolder
from ftedge.quant.qat import freeze_all_observers, prepare_qat, set_fake_quant
from ftedge.runtime import LoadedModel
from ftedge.runtime.pytorch.runner import TorchRunner


def qat_reference(loaded: LoadedModel, quantized: bool = True) -> TorchRunner:
    """qat_best.pt in the prepared form of `loaded`'s FP32 model; with `quantized=False` its
    float twin (every fake quantizer passes values through)."""
    ckpt = RunFolder(loaded.path).checkpoint(QAT_BEST)
    example = torch.zeros(2, *loaded.contract["input_size"])
    saved = set(ckpt["model_state"])
    # Runs made before activation/squeeze-excite quantizers existed saved none: rebuild theirs.
    for activations in (True, False):
        model = copy.deepcopy(loaded.runner.model)
        prepare_qat(model, example, weight_bits=ckpt["config"]["qat"].get("weight_bits", 8),
                    activations=activations)
        if set(model.state_dict()) == saved:
            break
    model.load_state_dict(ckpt["model_state"])  # names the keys that differ if neither matched
    freeze_all_observers(model)
    set_fake_quant(model, quantized)
    return TorchRunner(model.eval())
