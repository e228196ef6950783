"""Post-training quantization into the same Q/DQ form QAT produces, from a calibration set."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from ftedge.quant.calibrate import AbsHistogram
from ftedge.quant.qat import (QUANTIZED_TYPES, QatCoverage, freeze_all_observers,
                              input_quantizers, prepare_qat, set_activation_observers,
                              set_fake_quant)

QMAX_SYMMETRIC = 127.5  # the scale PyTorch's symmetric qint8 observers use: amax / 127.5


@torch.no_grad()
def calibrate_ptq(model: nn.Module, batches, method: str, *, percentile: float | None = None,
                  weight_bits: int | None = None) -> tuple[QatCoverage, dict[str, float]]:
    """Fold BatchNorm, attach quantizers and set every activation scale from `batches`.

    Activations are observed in FP32 (fake quantization off), one |x| histogram per
    quantizer; weights get per-channel max scales. Returns coverage and the amax per layer.
    """
    batches = list(batches)
    model.eval()
    cov = prepare_qat(model, batches[0][:2], weight_bits=weight_bits)
    amaxes = set_activation_ranges(model, batches, method, percentile=percentile)
    freeze_all_observers(model)  # weight scales too: the model is final
    return cov, amaxes


@torch.no_grad()
def set_activation_ranges(model: nn.Module, batches, method: str,
                          *, percentile: float | None = None) -> dict[str, float]:
    """Every activation scale of a prepared model from |x| histograms over `batches` (minmax,
    percentile or entropy), activation observers then off (weight observers keep following the
    weights); returns the amax per quantizer."""
    was_training = model.training
    model.eval()
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
        q.scale.copy_(torch.tensor([amax / QMAX_SYMMETRIC], device=q.scale.device))
        q.zero_point.zero_()
        amaxes[names[q]] = amax
    set_activation_observers(model, False)
    set_fake_quant(model, True)
    model.train(was_training)
    return amaxes


@torch.no_grad()
def bias_correction(model: nn.Module, batches) -> int:
    """Remove the mean output shift weight quantization causes, per output channel.

    For every quantized Conv/Linear, on the calibration batches and the layer's own
    (quantized) input: the mean of (output with INT8 weights - output with float weights) over
    everything but the channel is subtracted from the bias, as NNCF's fast bias correction
    does. Returns the number of layers corrected.
    """
    layers = [m for m in model.modules() if isinstance(m, QUANTIZED_TYPES)
              and parametrize.is_parametrized(m, "weight")]
    shift: dict[nn.Module, torch.Tensor] = {}
    seen: dict[nn.Module, int] = {}

    def hook(mod, args, _output):
        fq = mod.parametrizations.weight[0]
        y_q = type(mod).forward(mod, *args)
        fq.disable_fake_quant()
        try:
            y_f = type(mod).forward(mod, *args)
        finally:
            fq.enable_fake_quant()
        dims = [d for d in range(y_q.ndim) if d != (1 if y_q.ndim > 2 else y_q.ndim - 1)]
        shift[mod] = shift.get(mod, 0) + (y_q - y_f).sum(dims)
        seen[mod] = seen.get(mod, 0) + y_q.numel() // y_q.shape[1 if y_q.ndim > 2 else -1]

    hooks = [m.register_forward_hook(hook) for m in layers]
    try:
        for x in batches:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    for m in layers:
        if m not in shift:
            continue
        delta = shift[m] / seen[m]
        if m.bias is None:
            m.bias = nn.Parameter(torch.zeros_like(delta))
        m.bias.sub_(delta)
    return len(shift)
