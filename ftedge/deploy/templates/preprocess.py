"""Decode an image file and apply the preprocessing contract bit for bit as ftedge does.

Template piece of deploy/infer.py (numpy and Pillow only). It mirrors ftedge/data/images.py
`load_image` and ftedge/data/transforms.py `eval_transform` (torchvision.transforms.v2 on a
PIL image); tests/deploy asserts np.array_equal against them. Keep the two in step: an INT8 model fed inputs that differ by one
float32 rounding flips top-1 on a few percent of images.
"""

import os
import warnings

import numpy as np
from PIL import Image, ImageOps

# ---- ftedge template body ----

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
              "bicubic": Image.Resampling.BICUBIC}


class ImageDecodeError(Exception):
    """A file that cannot be used as an image; the message is the reason."""


def _to_8bit(img):
    """Scale high-bit-depth and float images to 8 bit by their range, never by clipping."""
    arr = np.asarray(img)
    if img.mode == "F":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
    else:
        # I;16* and I (which PIL uses for 16-bit PNGs) hold 0..65535; 65535/257 == 255.
        scaled = arr.astype(np.float64) / (257.0 if arr.max() <= 65535 else arr.max() / 255.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def to_rgb(img, background=(255, 255, 255)):
    """Any PIL mode -> RGB: alpha composited onto `background`, CMYK/palette/16-bit converted."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        canvas = Image.new("RGB", img.size, tuple(background))
        canvas.paste(img, mask=img.getchannel("A"))
        return canvas
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return img


def load_image(path, background=(255, 255, 255)):
    """Open, fully decode, EXIF-rotate and convert an image file to RGB (ImageDecodeError)."""
    try:
        if os.path.getsize(path) == 0:
            raise ImageDecodeError("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decompression-bomb and EXIF warnings
            with Image.open(path) as img:
                img.load()  # a full decode, so a truncated file fails here
                img = ImageOps.exif_transpose(img)
                return to_rgb(img, background)
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError("no such file") from None
    except IsADirectoryError:
        raise ImageDecodeError("is a folder, not an image file") from None
    except Image.UnidentifiedImageError:
        raise ImageDecodeError("not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageDecodeError(f"corrupt or truncated image: {msg}") from None


def resized_size(width, height, short):
    """(w, h) once the short side is `short`: torchvision's rule, the long side truncated."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def center_crop(arr, crop_h, crop_w):
    """HWC uint8 -> crop_h x crop_w, as torchvision's center_crop on a PIL image.

    Smaller images are zero-padded first (the odd pixel goes right/bottom); the crop's
    top-left corner is Python's round() of half the excess, i.e. halves round to even.
    """
    h, w = arr.shape[:2]
    if crop_h > h or crop_w > w:
        pad_h, pad_w = max(crop_h - h, 0), max(crop_w - w, 0)
        arr = np.pad(arr, ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2),
                           (0, 0)))
        h, w = arr.shape[:2]
        if (h, w) == (crop_h, crop_w):
            return arr
    top = int(round((h - crop_h) / 2.0))
    left = int(round((w - crop_w) / 2.0))
    return arr[top:top + crop_h, left:left + crop_w]


def check_contract(contract):
    """Refuse a contract this code cannot apply exactly (a newer ftedge wrote it)."""
    for key, want in (("scale", "1/255"), ("crop", "center"), ("channel_order", "RGB"),
                      ("layout", "NCHW")):
        if contract.get(key, want) != want:
            raise ValueError(f"preprocessing {key}={contract[key]!r} is not supported by this "
                             f"script (it applies {key}={want!r})")
    if contract["interpolation"] not in RESAMPLING:
        raise ValueError(f"unknown interpolation {contract['interpolation']!r}")


def preprocess(img, contract):
    """An RGB PIL image -> float32 CHW: resize the short side, centre-crop, scale, normalise.

    The float32 order is torchvision's: x * float32(1/255), then (x - mean) / std, each step
    rounded to float32 (dividing by 255 instead differs in the last bit for 378 of 768 values).
    """
    # ftedge crops a square of input_size[-1] (eval_transform's CenterCrop(size))
    size = int(contract["input_size"][-1])
    w, h = resized_size(img.width, img.height, int(contract["resize"]))
    if (w, h) != (img.width, img.height):
        img = img.resize((w, h), resample=RESAMPLING[contract["interpolation"]])
    arr = center_crop(np.asarray(img, dtype=np.uint8), size, size)
    x = arr.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255)
    mean = np.asarray(contract["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(contract["std"], dtype=np.float32).reshape(-1, 1, 1)
    return (x - mean) / std


def preprocess_file(path, contract):
    """An image file -> float32 CHW, or ImageDecodeError."""
    return preprocess(load_image(path, tuple(contract.get("background", (255, 255, 255)))),
                      contract)
