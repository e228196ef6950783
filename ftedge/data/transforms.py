"""Train and eval transforms built from the preprocessing contract (torchvision v2).

The eval transform is the contract (deploy/templates/preprocess.py applies it with numpy and
Pillow alone; tests/deploy asserts the two equal bit for bit, for every geometry, filter and
decode mode). The train transform augments around the same geometry. Pillow's filters run as
torchvision's Resize on PIL images; bilinear without antialiasing (a contract for DeepStream's
nvinfer) runs the kit's own resize_bilinear, so training, ftedge's stages, infer.py and the
DeepStream emulation scale alike.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms import v2 as T
from PIL import Image
from torchvision.transforms.v2 import functional as F

from ftedge.config import AugmentConfig
from ftedge.errors import DatasetError
# The geometry rules are the standalone kit's own (deploy/templates/preprocess.py imports
# nothing of ftedge): one copy, so ftedge and deploy/infer.py size every image alike.
# letterbox_box rounds the fitted side half up and puts the odd pixel of padding
# right/bottom, as nvinfer's symmetric-padding=1 does.
# Plain (not antialiased) bilinear, nvinfer's scaler, is that module's resize_bilinear too.
# A reducing gap (Pillow's resize(reducing_gap=G), recorded in the contract) is that module's
# pillow_resize: torchvision's Resize cannot pass it.
# The JPEG draft request (decode 'draft', the contract's margin) is its draft_request.
from ftedge.deploy.templates.preprocess import (draft_request, letterbox_box, pillow_resize,
                                                plain_bilinear, preprocess, reducing_gap,
                                                resize_bilinear, short_side_size)

_INTERP = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
           "nearest": T.InterpolationMode.NEAREST}


def _to_tensor(contract: dict) -> list:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True),
            T.Normalize(contract["mean"], contract["std"])]


class PlainBilinearResize(torch.nn.Module):
    """Resize an RGB PIL image with plain bilinear (resize_bilinear): to [h, w], or, for an
    int, its short side to that size as torchvision's Resize sizes it."""

    def __init__(self, size: int | list[int]):
        super().__init__()
        self.size = size

    def forward(self, img):
        w, h = _resized_size(img, self.size)
        return _plain(img, h, w)


def _resized_size(img, size: int | list[int]) -> tuple[int, int]:
    """(width, height) for `size`: [h, w] as given, or an int for the short side, sized as
    torchvision's Resize sizes it."""
    if isinstance(size, int):
        height, width = F.get_size(img)
        return short_side_size(width, height, size)
    h, w = size
    return w, h


def _plain(img, h: int, w: int):
    if not isinstance(img, Image.Image):
        raise TypeError(f"plain bilinear resizes RGB PIL images, got {type(img).__name__}")
    return Image.fromarray(resize_bilinear(np.asarray(img, dtype=np.uint8), h, w))


class PlainRandomResizedCrop(torch.nn.Module):
    """RandomResizedCrop's crop (same parameters, same random draws), then plain bilinear."""

    def __init__(self, size: list[int], *, scale: tuple[float, float],
                 ratio: tuple[float, float]):
        super().__init__()
        self.size, self.scale, self.ratio = list(size), list(scale), list(ratio)

    def forward(self, img):
        top, left, h, w = T.RandomResizedCrop.get_params(img, self.scale, self.ratio)
        return _plain(F.crop(img, top, left, h, w), *self.size)


class ReducingResize(torch.nn.Module):
    """Resize an RGB PIL image with the contract's Pillow filter and reducing gap (box-reduce
    first): to [h, w], or, for an int, its short side to that size as torchvision's Resize."""

    def __init__(self, size: int | list[int], contract: dict):
        super().__init__()
        self.size, self.contract = size, contract

    def forward(self, img):
        w, h = _resized_size(img, self.size)
        return img if (w, h) == img.size else pillow_resize(img, w, h, contract=self.contract)


class ReducingRandomResizedCrop(torch.nn.Module):
    """RandomResizedCrop's crop (same parameters, same random draws), then the contract's
    Pillow filter with its reducing gap, as the device resizes."""

    def __init__(self, size: list[int], contract: dict, *, scale: tuple[float, float],
                 ratio: tuple[float, float]):
        super().__init__()
        self.size, self.contract = list(size), contract
        self.scale, self.ratio = list(scale), list(ratio)

    def forward(self, img):
        top, left, h, w = T.RandomResizedCrop.get_params(img, self.scale, self.ratio)
        out_h, out_w = self.size
        return pillow_resize(F.crop(img, top, left, h, w), out_w, out_h, contract=self.contract)


def _resize(size, contract: dict):
    """The contract's resize as one step: Pillow's filter through torchvision, or plain, or
    Pillow's with the contract's reducing gap."""
    if plain_bilinear(contract):
        return PlainBilinearResize(size)
    if reducing_gap(contract) is not None:
        return ReducingResize(size, contract)
    return T.Resize(size, interpolation=_INTERP[contract["interpolation"]], antialias=True)


class Letterbox(torch.nn.Module):
    """Fit the image into the input size with its aspect kept, centred on pad_value."""

    def __init__(self, contract: dict):
        super().__init__()
        self.out_h, self.out_w = contract["input_size"][1:]
        self.interp = _INTERP[contract["interpolation"]]
        self.plain = plain_bilinear(contract)
        self.contract = contract
        self.fill = tuple(int(v) for v in contract.get("pad_value", (0, 0, 0)))

    def forward(self, img):
        width, height = F.get_size(img)[::-1]
        w, h, left, top = letterbox_box(width, height, self.out_w, out_h=self.out_h)
        if self.plain:
            img = _plain(img, h, w)
        elif reducing_gap(self.contract) is not None:
            img = ReducingResize([h, w], self.contract)(img)
        else:
            img = F.resize(img, [h, w], interpolation=self.interp, antialias=True)
        return F.pad(img, [left, top, self.out_w - w - left, self.out_h - h - top],
                     fill=self.fill)


class RandomFrameCrop(torch.nn.Module):
    """A random crop with the frame's own aspect ratio, covering `scale` of its area."""

    def __init__(self, scale: tuple[float, float]):
        super().__init__()
        self.scale = scale

    def forward(self, img):
        height, width = F.get_size(img)
        area = torch.empty(1).uniform_(*self.scale).item()
        w = max(1, min(width, round(width * math.sqrt(area))))
        h = max(1, min(height, round(height * math.sqrt(area))))
        top = int(torch.randint(0, height - h + 1, (1,)).item())
        left = int(torch.randint(0, width - w + 1, (1,)).item())
        return F.crop(img, top, left, h, w)


def geometry_steps(contract: dict) -> list:
    """The contract's resize (and crop or padding) as torchvision steps."""
    size = contract["input_size"][1:]
    geometry = contract.get("geometry", "crop")
    if geometry == "crop":
        return [_resize(contract["resize"], contract), T.CenterCrop(size)]
    if geometry == "stretch":
        return [_resize(list(size), contract)]
    return [Letterbox(contract)]


def eval_transform(contract: dict) -> T.Compose:
    """The contract's geometry, scale to [0,1], normalise, in torchvision: the statement of the
    contract the kit's numpy preprocess (which every stage runs: preprocess_samples,
    split_arrays) is tested against bit for bit, and training's geometry steps."""
    return T.Compose([*geometry_steps(contract), *_to_tensor(contract)])


def train_transform(contract: dict, aug: AugmentConfig) -> T.Compose:
    """Augment around the contract's geometry, flip and colour jitter, then the eval tail.

    crop: random resized crop (as ImageNet training). stretch/letterbox: a random crop with
    the frame's aspect, then the device's stretch or letterbox, so the distortion or the bars
    the model will see at inference are the ones it learns on."""
    size = contract["input_size"][1:]
    interp = _INTERP[contract["interpolation"]]
    if contract.get("geometry", "crop") == "crop" and plain_bilinear(contract):
        steps = [PlainRandomResizedCrop(size, scale=tuple(aug.scale), ratio=tuple(aug.ratio))]
    elif contract.get("geometry", "crop") == "crop" and reducing_gap(contract) is not None:
        steps = [ReducingRandomResizedCrop(size, contract, scale=tuple(aug.scale),
                                           ratio=tuple(aug.ratio))]
    elif contract.get("geometry", "crop") == "crop":
        steps = [T.RandomResizedCrop(size, scale=tuple(aug.scale), ratio=tuple(aug.ratio),
                                     interpolation=interp, antialias=True)]
    else:
        steps = [RandomFrameCrop(tuple(aug.frame_scale)), *geometry_steps(contract)]
    if aug.hflip > 0:
        steps.append(T.RandomHorizontalFlip(aug.hflip))
    if aug.color_jitter > 0:
        j = aug.color_jitter
        steps.append(T.ColorJitter(brightness=j, contrast=j, saturation=j))
    return T.Compose(steps + _to_tensor(contract))


def decode_image(path, contract: dict):
    """An image file decoded as the contract says (background, decode mode): RGB PIL."""
    from ftedge.data.images import load_image

    return load_image(path, tuple(contract.get("background", (255, 255, 255))),
                      draft_request(contract))


def preprocess_samples(samples: list, contract: dict) -> np.ndarray:
    """Decode and preprocess image files exactly as every runtime must: NCHW float32.

    Raises:
        DatasetError: a file that cannot be read as an image, named (every stage judges a
            model on a list of files: a run's split whose files changed since, --unknown DIR,
            calibration images; one bad file is a clear error, not a traceback).
    """
    if not samples:
        return np.zeros((0, *contract["input_size"]), np.float32)
    return np.stack([preprocess(_decoded(s.path, contract), contract) for s in samples])


def split_arrays(samples: list, contract: dict) -> tuple[np.ndarray, np.ndarray]:
    """A split's images preprocessed as every runtime must (x, NCHW float32) and their labels
    (int64, one per image, in the order of `samples`): what a gate, a parity check or a
    validation pass judges a model on, decoded once.

    Raises:
        DatasetError: a file that cannot be read as an image (see preprocess_samples).
    """
    return (preprocess_samples(samples, contract),
            np.array([s.label for s in samples], dtype=np.int64))


def _decoded(path, contract: dict):
    from ftedge.data.images import ImageDecodeError

    try:
        return decode_image(path, contract)
    except ImageDecodeError as e:
        raise DatasetError(f"cannot read {path} as an image: {e}",
                           "replace it with a readable copy of the image (a run's split must "
                           "keep every file it lists; from a folder you passed, such as "
                           "--unknown DIR, you may remove it), then run the command again"
                           ) from None


def preprocess_image(path, contract: dict) -> np.ndarray:
    """One image file as a (1, C, H, W) float32 batch."""
    return preprocess(decode_image(path, contract), contract)[None]
