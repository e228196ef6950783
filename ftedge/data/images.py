"""Decode real-world image files into 8-bit RGB PIL images, the one form the model sees."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from ftedge.io import NotRegularFileError, read_file_bytes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
WHITE = (255, 255, 255)


class ImageDecodeError(Exception):
    """A file that cannot be used as an image; the message is the reason."""


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale high-bit-depth and float images to 8 bit by their range, never by clipping."""
    arr = np.asarray(img)
    if img.mode == "F":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
    else:
        # I;16* and I (which PIL uses for 16-bit PNGs) hold 0..65535; 65535/257 == 255.
        scaled = arr.astype(np.float64) / (257.0 if arr.max() <= 65535 else arr.max() / 255.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def to_rgb(img: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Any PIL mode -> RGB: alpha composited onto `background`, CMYK/palette/16-bit converted."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        canvas = Image.new("RGB", img.size, background)
        canvas.paste(img, mask=img.getchannel("A"))
        return canvas
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return img


def load_image(path: str | Path, background: tuple[int, int, int] = WHITE,
               draft: Callable[[int, int], tuple[int, int]] | None = None) -> Image.Image:
    """Open, fully decode, EXIF-rotate and convert an image file to RGB.

    Args:
        draft: given the stored (width, height), the smallest (width, height) the decode may
            return; JPEGs are then decoded in the DCT domain at the largest of 1/2, 1/4, 1/8
            scale that keeps both (Pillow's Image.draft). None, or another format: full decode.
    Raises:
        ImageDecodeError: the file is empty, not an image, truncated or corrupt.
    """
    return decode_image(read_image_bytes(path), background, draft)


def read_image_bytes(path: str | Path) -> bytes:
    """The file's bytes, for `decode_image`.

    Raises:
        ImageDecodeError: missing, a folder, or empty.
    """
    path = Path(path)
    try:
        if path.is_dir():  # open() of a folder fails only on some systems
            raise ImageDecodeError("not a file (a folder)")
        data = read_file_bytes(path)
    except NotRegularFileError:  # a FIFO would block the decode forever, /dev/zero never end
        raise ImageDecodeError("not a regular file (a FIFO, device or socket)") from None
    except FileNotFoundError:
        raise ImageDecodeError("no such file") from None
    except IsADirectoryError:
        raise ImageDecodeError("not a file (a folder)") from None
    except OSError as e:
        raise ImageDecodeError(f"cannot read the file: {e.strerror or e}") from None
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    return data


def decode_image(data: bytes, background: tuple[int, int, int] = WHITE,
                 draft: tuple[int, int] | Callable[[int, int], tuple[int, int]] | None = None
                 ) -> Image.Image:
    """Fully decode, EXIF-rotate and convert image bytes to RGB.

    Args:
        draft: let a JPEG decode at a reduced scale no smaller than this (w, h), or than
            what draft(stored_w, stored_h) returns (the contract's decode mode): several
            times faster, and a truncated file still fails. The full size is then in
            `img.info["full_size"]` (after EXIF rotation).
    Raises:
        ImageDecodeError: not an image, truncated or corrupt.
    """
    try:
        with warnings.catch_warnings():
            # Decompression-bomb and EXIF warnings are not the user's problem here.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                full = img.size
                if draft is not None:
                    img.draft("RGB", draft(*full) if callable(draft) else draft)
                img.load()  # force a full decode so truncation fails here, not mid-epoch
                orientation = img.getexif().get(0x0112, 1)
                rotated = orientation in (5, 6, 7, 8)
                if orientation in range(2, 9):  # else exif_transpose returns a full copy
                    img = ImageOps.exif_transpose(img)
                out = to_rgb(img, background)
                out.info["full_size"] = full[::-1] if rotated else full
                return out
    except Image.UnidentifiedImageError:
        raise ImageDecodeError("not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageDecodeError(f"corrupt or truncated image: {msg}") from None
