"""Frozen pretrained features: the input of a network's final Linear layer, per image.

Shared by the linear probe (stages/tune/probe.py) and the label check (data/labels.py); the
images are preprocessed exactly as every runtime does (the contract, its background too).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ftedge.config import DEFAULT_WEIGHTS
from ftedge.data.transforms import preprocess_samples


def final_linear(built) -> nn.Linear:
    """The classifier's last Linear layer (its input is the pre-logit feature)."""
    heads = [m for n, m in built.model.named_modules()
             if isinstance(m, nn.Linear) and (n + ".").startswith(built.head_prefixes)]
    return heads[-1]


@contextlib.contextmanager
def pre_logit_capture(built) -> Iterator[list[torch.Tensor]]:
    """While the block runs, every forward pass appends the final Linear's input (the
    pre-logit features, float, on the CPU) to the yielded list."""
    captured: list[torch.Tensor] = []
    hook = final_linear(built).register_forward_pre_hook(
        lambda mod, args: captured.append(args[0].detach().float().cpu()))
    try:
        yield captured
    finally:
        hook.remove()


@torch.no_grad()
def pre_logit_features(built, samples, contract: dict, *, batch: int = 64) -> np.ndarray:
    """The input of the final Linear for every sample (eval mode: no dropout, BN frozen)."""
    model = built.model.eval()
    with pre_logit_capture(built) as captured:
        for i in range(0, len(samples), batch):
            model(torch.from_numpy(preprocess_samples(samples[i:i + batch], contract)))
    if not captured:
        return np.zeros((0, final_linear(built).in_features), np.float32)
    return torch.cat(captured).numpy()


def frozen_features(samples, *, model: str, weights: str = DEFAULT_WEIGHTS,
                    img_size: int | None = None,
                    background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Pre-logit features of a pretrained `model` (by registry name) for `samples`."""
    from ftedge.models import build_model, get_spec, preprocessing_contract

    contract = preprocessing_contract(get_spec(model), img_size, background)
    built = build_model(model, 2, weights=weights)  # the head is never used: features are its input
    return pre_logit_features(built, samples, contract)
