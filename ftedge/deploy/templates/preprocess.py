"""Decode an image file and apply the preprocessing contract bit for bit as ftedge does.

Template piece of deploy/infer.py (numpy and Pillow only). It mirrors ftedge/data/images.py
`load_image` and ftedge/data/transforms.py `eval_transform` (torchvision.transforms.v2 on a
PIL image) for every geometry (crop, stretch, letterbox), filter, decode mode and reducing
gap (Pillow's resize(reducing_gap=G): box-reduce, then the filter); plain
(not antialiased) bilinear, nvinfer's scaling-filter=1, is `resize_bilinear` here, the one
copy ftedge's transforms and its DeepStream emulation import;
tests/deploy asserts np.array_equal against them. Keep the two in step: an INT8 model fed
inputs that differ by one float32 rounding flips top-1 on a few percent of images.
"""

import math
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps

# ---- ftedge template body ----

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
              "bicubic": Image.Resampling.BICUBIC}
GEOMETRIES = ("crop", "stretch", "letterbox")
DECODES = ("full", "draft")
DRAFT_MARGIN = 2.0  # a draft decode keeps at least 2x the size the resize produces, unless
# the contract records another draft_margin, within DRAFT_MARGINS
DRAFT_MARGINS = (1.0, 8.0)
ROTATIONS = range(2, 9)  # EXIF orientations that move pixels (1: as stored)


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


def _check_regular(path):
    """An ImageDecodeError unless `path` is a non-empty regular file: a FIFO would block the
    decode forever, /dev/zero never end; a name too long or a link loop says so."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageDecodeError("no such file") from None
    except OSError as e:
        raise ImageDecodeError(f"cannot read the file: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageDecodeError("is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageDecodeError("not a regular file (a FIFO, device or socket)")
    if st.st_size == 0:
        raise ImageDecodeError("empty file (0 bytes)")


def load_image(path, background=(255, 255, 255), draft=None):
    """Open, fully decode, EXIF-rotate and convert an image file to RGB (ImageDecodeError).

    `draft(w, h)` -> the smallest (w, h) a JPEG may be decoded to (DCT-domain 1/2..1/8)."""
    try:
        _check_regular(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decompression-bomb and EXIF warnings
            with Image.open(path) as img:
                if draft is not None and img.format == "JPEG":
                    img.draft(None, draft(*img.size))
                img.load()  # a full decode, so a truncated file fails here
                if img.getexif().get(0x0112, 1) in ROTATIONS:  # else it returns a full copy
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


def short_side_size(width, height, short):
    """(w, h) once the short side is `short`: torchvision's rule, the long side truncated."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def letterbox_box(width, height, out_w, *, out_h):
    """(w, h, left, top) of the image fitted into out_w x out_h, aspect kept, centred.

    The fitted side rounds half up in integers, at least 1 pixel; the odd pixel of padding
    goes right/bottom."""
    if width * out_h >= height * out_w:
        w, h = out_w, max(1, (2 * height * out_w + width) // (2 * width))
    else:
        w, h = max(1, (2 * width * out_h + height) // (2 * height)), out_h
    return w, h, (out_w - w) // 2, (out_h - h) // 2


def contract_resize(width, height, contract):
    """The (w, h) the contract resizes an image to, before its crop or padding."""
    out_h, out_w = (int(v) for v in contract["input_size"][1:])
    geometry = contract.get("geometry", "crop")
    if geometry == "crop":
        return short_side_size(width, height, int(contract["resize"]))
    if geometry == "stretch":
        return out_w, out_h
    return letterbox_box(width, height, out_w, out_h=out_h)[:2]


def draft_margin(contract):
    """How many times the resize's size a draft decode keeps (None: decode 'full')."""
    if contract.get("decode", "full") != "draft":
        return None
    margin = contract.get("draft_margin")
    return DRAFT_MARGIN if margin is None else float(margin)


def draft_request(contract):
    """The decode mode's draft(w, h) for load_image, or None (decode 'full'): the smallest
    size a JPEG may be decoded to, the contract's margin times what the resize produces."""
    margin = draft_margin(contract)
    if margin is None:
        return None

    def request(width, height):
        w, h = contract_resize(width, height, contract)
        return math.ceil(w * margin), math.ceil(h * margin)

    return request


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


def resize_bilinear(arr, out_h, out_w):
    """HWC uint8 -> out_h x out_w, plain bilinear: half-pixel centres, edges clamped, no
    antialiasing (the support stays 2x2 however much it shrinks), rounded half up to uint8
    as nvinfer's scaler writes its RGBA surface.

    Written in numpy: torchvision's resize(uint8 tensor, antialias=False), though 10x faster,
    is not this arithmetic (its own fixed-point/float32 path): about a fifth of the pixels of
    random images land one level apart."""
    in_h, in_w = arr.shape[:2]

    def axis(n_out, n_in):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        return lo, np.minimum(lo + 1, n_in - 1), (pos - lo)

    y0, y1, wy = axis(out_h, in_h)
    x0, x1, wx = axis(out_w, in_w)
    a = arr.astype(np.float64)
    top = a[y0][:, x0] * (1 - wx)[None, :, None] + a[y0][:, x1] * wx[None, :, None]
    bottom = a[y1][:, x0] * (1 - wx)[None, :, None] + a[y1][:, x1] * wx[None, :, None]
    out = top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def antialiased(contract):
    """Whether the contract's filter antialiases; absent (older contracts): Pillow's rule,
    bilinear and bicubic do, nearest does not."""
    return bool(contract.get("antialias", contract["interpolation"] != "nearest"))


def plain_bilinear(contract):
    """The contract resizes with resize_bilinear (bilinear, antialias false), not Pillow."""
    return contract["interpolation"] == "bilinear" and not antialiased(contract)


def reducing_gap(contract):
    """The contract's reducing gap (None: off, what contracts without the key meant)."""
    gap = contract.get("reducing_gap")
    return None if gap is None else float(gap)


def pillow_resize(img, w, h, *, contract, box=None):
    """An RGB PIL image (or its `box`) resized to (w, h) by the contract's Pillow filter, with
    its reducing gap: Pillow box-reduces by the largest integer factor per axis that leaves
    at least `gap` x the output, then filters from there, mapping the original coordinates
    exactly (Image.resize's reducing_gap); without a gap, the filter reads the whole image."""
    return img.resize((w, h), resample=RESAMPLING[contract["interpolation"]], box=box,
                      reducing_gap=reducing_gap(contract))


def resize_image(img, w, h, *, contract):
    """An RGB PIL image resized to (w, h) by the contract's filter: HxWx3 uint8."""
    if plain_bilinear(contract):
        return resize_bilinear(np.asarray(img, dtype=np.uint8), h, w)
    if (w, h) != (img.width, img.height):
        img = pillow_resize(img, w, h, contract=contract)
    return np.asarray(img, dtype=np.uint8)


def check_contract(contract):
    """Refuse a contract this code cannot apply exactly (a newer ftedge wrote it)."""
    for key, want in (("scale", "1/255"), ("crop", "center"), ("channel_order", "RGB"),
                      ("layout", "NCHW")):
        if contract.get(key, want) != want:
            raise ValueError(f"preprocessing {key}={contract[key]!r} is not supported by this "
                             f"script (it applies {key}={want!r})")
    if contract["interpolation"] not in RESAMPLING:
        raise ValueError(f"unknown interpolation {contract['interpolation']!r}")
    for key, known in (("geometry", GEOMETRIES), ("decode", DECODES)):
        if contract.get(key, known[0]) not in known:
            raise ValueError(f"preprocessing {key}={contract[key]!r} is not supported by this "
                             f"script (it knows {', '.join(known)})")
    if antialiased(contract) != (contract["interpolation"] != "nearest") and not plain_bilinear(
            contract):
        raise ValueError(f"preprocessing antialias={antialiased(contract)} with "
                         f"{contract['interpolation']} is not a resize this script applies")
    margin = contract.get("draft_margin")
    low, high = DRAFT_MARGINS
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))
                               or not low <= margin <= high
                               or contract.get("decode", "full") != "draft"):
        raise ValueError(f"preprocessing draft_margin={margin!r} is not a number from {low:g} "
                         f"to {high:g} with decode 'draft'")
    gap = contract.get("reducing_gap")
    if gap is not None and (isinstance(gap, bool) or not isinstance(gap, (int, float))
                            or not 1.0 <= gap < float("inf")):
        raise ValueError(f"preprocessing reducing_gap={gap!r} is not null or a number >= 1")
    if gap is not None and not antialiased(contract):
        raise ValueError(f"preprocessing reducing_gap with {contract['interpolation']} "
                         "(not antialiased) is not a resize this script applies")


def resize_to_contract(img, contract):
    """An RGB PIL image -> HxWx3 uint8 as the contract's geometry makes it."""
    out_h, out_w = (int(v) for v in contract["input_size"][1:])
    w, h = contract_resize(img.width, img.height, contract)
    arr = resize_image(img, w, h, contract=contract)
    geometry = contract.get("geometry", "crop")
    if geometry == "crop":  # ftedge crops input_size (eval_transform's CenterCrop)
        return center_crop(arr, out_h, out_w)
    if geometry == "stretch":
        return arr
    _, _, left, top = letterbox_box(img.width, img.height, out_w, out_h=out_h)
    canvas = np.empty((out_h, out_w, 3), np.uint8)
    canvas[:] = np.asarray(contract.get("pad_value", (0, 0, 0)), np.uint8)
    canvas[top:top + h, left:left + w] = arr
    return canvas


def normalize(arr, contract):
    """HxWx3 uint8 -> float32 CHW, (x/255 - mean)/std in torchvision's float32 order.

    x * float32(1/255), then (x - mean) / std, each step rounded to float32 (dividing by 255
    instead differs in the last bit for 378 of 768 values)."""
    x = arr.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255)
    mean = np.asarray(contract["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(contract["std"], dtype=np.float32).reshape(-1, 1, 1)
    return (x - mean) / std


def preprocess(img, contract):
    """An RGB PIL image -> float32 CHW: the contract's geometry, then scale and normalise."""
    return normalize(resize_to_contract(img, contract), contract)


def decode_file(path, contract):
    """An image file decoded as the contract says (background, decode mode): RGB PIL."""
    return load_image(path, tuple(contract.get("background", (255, 255, 255))),
                      draft_request(contract))


def preprocess_file(path, contract):
    """An image file -> float32 CHW, or ImageDecodeError."""
    return preprocess(decode_file(path, contract), contract)


def model_input(img, contract, *, input_format="normalized", layout="NCHW"):
    """An RGB PIL image -> one input of the artifact (manifest input_format, input_layout):
    normalised float32 CHW, or, for a graph that normalises itself, the 0..255 pixels
    (uint8 or float32, CHW or HWC), which skips the float work here."""
    if input_format == "normalized":
        return preprocess(img, contract)
    arr = resize_to_contract(img, contract)
    if layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr, dtype=np.uint8 if input_format == "uint8" else np.float32)
