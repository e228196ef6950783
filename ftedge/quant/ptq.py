"""Post-training quantization into the same Q/DQ form QAT produces, from a calibration set."""

from __future__ import annotations

import torch
from torch import nn

from ftedge.quant.calibrate import AbsHistogram
from ftedge.quant.qat import (QatCoverage, freeze_all_observers, input_quantizers, prepare_qat,
                              set_fake_quant)

QMAX_SYMMETRIC = 127.5  # the scale PyTorch's symmetric qint8 observers use: amax / 127.5


@torch.no_grad()
def calibrate_ptq(model: nn.Module, batches, method: str, percentile: float = 99.99,
                  weight_bits: int = 7) -> tuple[QatCoverage, dict[str, float]]:
    """Fold BatchNorm, attach quantizers and set every activation scale from `batches`.

    Activations are observed in FP32 (fake quantization off), one |x| histogram per
    quantizer; weights get per-channel max scales. Returns coverage and the amax per layer.
    """
    batches = list(batches)
    model.eval()
    cov = prepare_qat(model, batches[0][:2], weight_bits)
    set_fake_quant(model, False)
    names = {m: n for n, m in model.named_modules()}
    hists = {q: AbsHistogram() for q in input_quantizers(model)}
    hooks = [q.register_forward_pre_hook(lambda mod, a: hists[mod].add(a[0])) for q in hists]
    try:
        for x in batches:
            model(x)  # weight observers see the weights here too
    finally:
        for h in hooks:
            h.remove()
    amaxes = {}
    for q, hist in hists.items():
        amax = max(hist.amax(method, percentile), 1e-8)
        q.scale.copy_(torch.tensor([amax / QMAX_SYMMETRIC]))
        q.zero_point.zero_()
        amaxes[names[q]] = amax
    freeze_all_observers(model)
    set_fake_quant(model, True)
    return cov, amaxes
