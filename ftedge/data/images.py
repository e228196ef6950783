"""Decode real-world image files into 8-bit RGB PIL images, the one form the model sees.

The decoder is the deploy kit's own (deploy/templates/preprocess.py, copied verbatim into every
artifact's standalone infer.py): one copy, so ftedge and the device decode alike.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ftedge.deploy.templates.preprocess import IMAGE_EXTENSIONS, ImageDecodeError, to_rgb
from ftedge.deploy.templates.preprocess import load_image as _decode

WHITE = (255, 255, 255)

__all__ = ["IMAGE_EXTENSIONS", "ImageDecodeError", "WHITE", "load_image", "to_rgb"]


def load_image(path: str | Path, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Open, fully decode, EXIF-rotate and convert an image file to RGB.

    Raises:
        ImageDecodeError: the file is empty, not an image, truncated or corrupt.
    """
    path = Path(path)
    if path.is_dir():  # open() of a folder fails only on some systems; ftedge's own wording
        raise ImageDecodeError("not a file (a folder)")
    return _decode(path, background)
