"""Images embedded in a page: small JPEG thumbnails and PNG figures as base64 data URIs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from ftedge.data.images import WHITE, ImageDecodeError, load_image

THUMB_PX = 96  # long side: small enough that 24 per section keep a page to a few hundred KB
THUMB_QUALITY = 80


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail_uri(path: str | Path, *, size: int = THUMB_PX, quality: int = THUMB_QUALITY,
                  background: tuple[int, int, int] = WHITE) -> str | None:
    """A JPEG thumbnail (long side `size`, never upscaled, EXIF-rotated as the model sees it)
    as a data URI; None when the file cannot be decoded (moved, damaged)."""
    try:
        img = load_image(path, background)
    except (ImageDecodeError, OSError):
        return None
    img.thumbnail((size, size), reducing_gap=3.0)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=True)
    return data_uri(buf.getvalue(), "image/jpeg")


def figure_uri(fig, dpi: int = 90) -> str:
    """A matplotlib figure as a PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return data_uri(buf.getvalue(), "image/png")
