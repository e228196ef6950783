"""Train and eval transforms built from the preprocessing contract (torchvision v2)."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2 as T

from ftedge.config import AugmentConfig

_INTERP = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
           "nearest": T.InterpolationMode.NEAREST}


def _to_tensor(contract: dict) -> list:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True),
            T.Normalize(contract["mean"], contract["std"])]


def eval_transform(contract: dict) -> T.Compose:
    """Resize the short side, centre-crop, scale to [0,1], normalise: what every runtime does."""
    size = contract["input_size"][-1]
    interp = _INTERP[contract["interpolation"]]
    return T.Compose([T.Resize(contract["resize"], interpolation=interp, antialias=True),
                      T.CenterCrop(size), *_to_tensor(contract)])


def train_transform(contract: dict, aug: AugmentConfig) -> T.Compose:
    """Random resized crop, flip and colour jitter as configured, then the eval tail."""
    size = contract["input_size"][-1]
    interp = _INTERP[contract["interpolation"]]
    steps = [T.RandomResizedCrop(size, scale=tuple(aug.scale), ratio=tuple(aug.ratio),
                                 interpolation=interp, antialias=True)]
    if aug.hflip > 0:
        steps.append(T.RandomHorizontalFlip(aug.hflip))
    if aug.color_jitter > 0:
        j = aug.color_jitter
        steps.append(T.ColorJitter(brightness=j, contrast=j, saturation=j))
    return T.Compose(steps + _to_tensor(contract))


def preprocess_samples(samples: list, contract: dict) -> np.ndarray:
    """Decode and preprocess image files exactly as every runtime must: NCHW float32."""
    from ftedge.data.images import load_image

    background = tuple(contract.get("background", (255, 255, 255)))
    transform = eval_transform(contract)
    if not samples:
        return np.zeros((0, *contract["input_size"]), np.float32)
    return torch.stack([transform(load_image(s.path, background)) for s in samples]).numpy()


def preprocess_image(path, contract: dict) -> np.ndarray:
    """One image file as a (1, C, H, W) float32 batch."""
    from ftedge.data.images import load_image

    img = load_image(path, tuple(contract.get("background", (255, 255, 255))))
    return eval_transform(contract)(img)[None].numpy()
