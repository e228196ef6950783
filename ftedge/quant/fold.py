"""Fold BatchNorm into the convolution before it, for any model, found by watching a forward pass."""

from __future__ import annotations

import torch
from torch import nn

from ftedge.errors import FtedgeError


class FoldError(FtedgeError):
    """A BatchNorm layer that cannot be folded."""


def find_conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, bn name) for every BatchNorm whose input is a Conv2d's output.

    Traced with forward hooks instead of torch.fx, so models that FX cannot trace (timm's
    TF-"same"-padding convolutions compute padding from input shapes) work too.
    """
    names = {m: n for n, m in model.named_modules()}
    produced: dict[int, str] = {}
    pairs: list[tuple[str, str]] = []

    def conv_hook(mod, args, out):
        produced[id(out)] = names[mod]

    def bn_hook(mod, args):
        conv = produced.get(id(args[0]))
        if conv is not None:
            pairs.append((conv, names[mod]))

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_pre_hook(bn_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return pairs


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def _bn_replacement(bn: nn.BatchNorm2d) -> nn.Module:
    """What stays of a BatchNorm after folding: nothing, or timm's fused drop + activation."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    if hasattr(bn, "act") and hasattr(bn, "drop"):  # timm BatchNormAct2d
        return nn.Sequential(bn.drop, bn.act)
    raise FoldError(f"cannot fold {type(bn).__name__}: unknown BatchNorm variant",
                    "fine-tune without --qat, or report the model so its norm layer is supported")


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> int:
    """Fold every Conv2d -> BatchNorm2d pair in place; returns how many were folded.

    Raises:
        FoldError: a BatchNorm2d remains that follows no convolution.
    """
    pairs = find_conv_bn_pairs(model, example)
    for conv_name, bn_name in pairs:
        conv: nn.Conv2d = model.get_submodule(conv_name)
        bn: nn.BatchNorm2d = model.get_submodule(bn_name)
        std = torch.sqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.affine else torch.ones_like(std)
        beta = bn.bias if bn.affine else torch.zeros_like(std)
        factor = gamma / std
        conv.weight.mul_(factor.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(std)
        new_bias = beta + (bias - bn.running_mean) * factor
        conv.bias = nn.Parameter(new_bias)
        _set_module(model, bn_name, _bn_replacement(bn))
    left = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if left:
        raise FoldError(f"{len(left)} BatchNorm layer(s) follow no convolution: {left[:3]}",
                        "this architecture is not supported by --qat yet")
    return len(pairs)
