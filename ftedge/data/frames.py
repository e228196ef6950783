"""Raw frames: the decoded HxWx3 uint8 RGB arrays a camera or a video decoder hands over.

A frame goes through the same preprocessing as a decoded file (it IS what a decoded file
becomes), so the model sees the same pixels either way; only the decode is skipped.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ftedge.errors import DatasetError

FRAME_HINT = ("pass an HxWx3 uint8 RGB array (OpenCV's BGR frames: frame[..., ::-1]; "
              "grey HxW: np.stack([f] * 3, axis=-1); CHW: frame.transpose(1, 2, 0))")


def is_frame(x) -> bool:
    """Whether `x` is an array input (a frame, checked by check_frame) rather than a file path."""
    return isinstance(x, np.ndarray)


def check_frame(frame, where: str = "frame") -> np.ndarray:
    """`frame` as a C-contiguous HxWx3 uint8 array, or a DatasetError saying what is wrong.

    Refused rather than converted: a float array may be 0..1 or 0..255, a 3xHxW array may be
    CHW or a 3-pixel-high image, and guessing wrong would silently change what the model sees.
    """
    if not isinstance(frame, np.ndarray):
        raise DatasetError(f"{where} is a {type(frame).__name__}, not a numpy array", FRAME_HINT)
    if frame.dtype != np.uint8:
        raise DatasetError(f"{where} has dtype {frame.dtype}, not uint8", FRAME_HINT)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise DatasetError(f"{where} has shape {frame.shape}, not (height, width, 3)", FRAME_HINT)
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise DatasetError(f"{where} is empty (shape {frame.shape})", FRAME_HINT)
    return np.ascontiguousarray(frame)


def frame_image(frame: np.ndarray) -> Image.Image:
    """A checked frame as the RGB PIL image a decoded file would be. Pillow copies the pixels
    (it stores RGB as 4 bytes a pixel): about 1 ms for a 1080p frame here, a fifth of its
    preparation."""
    return Image.fromarray(check_frame(frame))  # HxWx3 uint8: RGB


def preprocess_frame(frame: np.ndarray, contract: dict) -> np.ndarray:
    """One checked frame as a CHW float32 array, by the contract's eval path (the kit's)."""
    from ftedge.deploy.templates.preprocess import preprocess

    return preprocess(frame_image(frame), contract)
