"""A torch Dataset over audited samples, optionally served from decoded images in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image
from torch.utils.data import Dataset

from ftedge.data.folder import Sample
from ftedge.data.images import ImageDecodeError, load_image
from ftedge.errors import DatasetError

CACHE_LIMIT_BYTES = 2 << 30


class ImageSamples(Dataset):
    """(image tensor, label) pairs; decoded images come from `cache` when given."""

    def __init__(self, samples: list[Sample], transform: Callable,
                 *, cache: dict[Path, Image.Image] | None = None,
                 background=(255, 255, 255), draft=None):
        self.samples = samples
        self.draft = draft  # the contract's decode mode (deploy/templates/preprocess.draft_request)
        self.transform = transform
        self.cache = cache or {}
        self.background = tuple(background)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        img = self.cache.get(s.path)
        if img is None:
            try:
                img = load_image(s.path, self.background, self.draft)
            except (ImageDecodeError, FileNotFoundError) as e:
                # Files were audited before training; this one changed on disk since.
                raise DatasetError(f"{s.path} became unreadable during training: {e}",
                                   "restore the file, then continue with `ftedge tune --resume RUN` (a "
                                   "resumed run keeps its recorded split); or remove it and "
                                   "start a new run") from e
        return self.transform(img), s.label


def cache_fits(n_images: int, short_side: int) -> bool:
    """Whether ~n RGB images of short side `short_side` (4:3) fit the in-memory cache budget."""
    return n_images * short_side * short_side * 4 // 3 * 3 <= CACHE_LIMIT_BYTES
