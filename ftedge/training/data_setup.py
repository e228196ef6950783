"""Audited samples -> split -> loaders, with the split recorded in (and restored from) the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from ftedge.config import TuneConfig, resolve_workers
from ftedge.data.audit import DatasetAudit, audit_dataset
from ftedge.data.dataset import ImageSamples, cache_fits
from ftedge.data.duplicates import leaked_into
from ftedge.data.folder import Sample, stratified_split
from ftedge.data.transforms import train_transform
from ftedge.deploy.templates.preprocess import draft_request
from ftedge.errors import ConfigError, DatasetError
from ftedge.formats.contract import check_contract
from ftedge.models import get_spec, preprocessing_contract
from ftedge.formats.run import data_root, samples_from_record, split_record
from ftedge.training.dist import DistContext


@dataclass
class PreparedData:
    classes: list[str]
    train: list[Sample]
    val: list[Sample]
    split_record: dict
    audit: DatasetAudit
    test: list[Sample] | None = None

    def leaked(self, split: str = "val") -> set[Path]:
        """Files of this run's val (or test) that show a picture also in its train."""
        held = self.val if split == "val" else self.test or []
        return leaked_into(self.audit.duplicates or [], [s.path for s in self.train],
                           [s.path for s in held])


def run_contract(cfg: TuneConfig) -> dict:
    """The preprocessing contract a new run trains for: the model's normalisation, the
    geometry and filter asked for, else those of preprocess.target's pipeline, else crop and
    the model's own filter. A filter taken from the pipeline keeps its antialiasing (the
    DeepStream targets: bilinear without, as nvinfer scales); a filter asked for is Pillow's."""
    p = cfg.preprocess
    geometry, filt, antialias = p.geometry, p.filter, None
    if p.target is not None and (geometry is None or filt is None):
        from ftedge.runtime.profiles import load_profile

        pipeline = load_profile(p.target).pipeline
        if pipeline is not None:
            if filt is None:
                filt, antialias = pipeline.filter, pipeline.antialias
            geometry = geometry or pipeline.geometry
    contract = preprocessing_contract(get_spec(cfg.model.name), cfg.model.img_size,
                                      cfg.data.background, geometry=geometry or "crop",
                                      interpolation=filt, pad_value=p.pad_value,
                                      decode=p.decode, antialias=antialias,
                                      draft_margin=p.draft_margin)
    if p.reducing_gap is None:
        return contract
    if contract["interpolation"] == "nearest" or not contract["antialias"]:
        plain = "" if contract["antialias"] else " (not antialiased, as nvinfer scales)"
        raise ConfigError(f"preprocess.reducing_gap {p.reducing_gap:g} with the "
                          f"{contract['interpolation']} filter{plain}: only Pillow's "
                          "antialiased bicubic and bilinear box-reduce first",
                          "leave out --reducing-gap, or choose --filter bicubic or bilinear")
    return check_contract({**contract, "reducing_gap": float(p.reducing_gap)},
                          "the new preprocessing contract")


def prepare_data(cfg: TuneConfig, cache_short_side: int, saved_split: dict | None,
                 *, run: Path, contract: dict | None = None) -> PreparedData:
    """Audit the dataset (decoding each image once, as `contract` decodes: the training
    cache holds what the device decodes) and fix the train/val split."""
    if cfg.data.path is None:
        raise DatasetError("no dataset given", "pass --data DIR (one sub-folder per class)")
    want_cache = cfg.data.cache
    # duplicates: the hash comes from the same decode (a few % of it), and a val that leaks
    # from train is worth a warning before hours of training
    audit = audit_dataset(Path(cfg.data.path), background=tuple(cfg.data.background),
                          cache_short_side=cache_short_side,
                          cache=want_cache is not False, duplicates=True,
                          draft=draft_request(contract) if contract else None)
    if want_cache is None and not cache_fits(len(audit.train) + len(audit.val or []),
                                             cache_short_side):
        audit.images.clear()  # too large for RAM: decode per batch instead
    classes = audit.classes
    if saved_split is not None:
        if saved_split["classes"] != classes:
            raise DatasetError("the dataset's classes changed since this run started",
                               "resume with the original data, or start a new run")
        root = data_root(saved_split, run, cfg.data.path)
        train = samples_from_record(saved_split, classes, "train", root=root)
        val = samples_from_record(saved_split, classes, "val", root=root)
        return PreparedData(classes, train, val, saved_split, audit, audit.test)
    if audit.val is not None:
        train, val, source = audit.train, audit.val, "folders"
    else:
        train, val = stratified_split(audit.train, cfg.data.val_fraction, cfg.data.split_seed)
        source = "stratified"
    if not val:
        raise DatasetError("the validation split is empty",
                           "add images to DIR/val/<class>/ or use more images per class")
    record = split_record(audit.root, classes, {"train": train, "val": val, "test": audit.test},
                          run=run, source=source, val_fraction=cfg.data.val_fraction,
                          seed=cfg.data.split_seed)
    return PreparedData(classes, train, val, record, audit, audit.test)


def train_loader(data: PreparedData, contract: dict, cfg: TuneConfig, *, ctx: DistContext,
                 device: str) -> DataLoader:
    """Shuffled, augmented loader; shuffling is re-seeded per epoch by `seed_epoch`."""
    ds = ImageSamples(data.train, train_transform(contract, cfg.augment), cache=data.audit.images,
                      background=cfg.data.background, draft=draft_request(contract))
    workers = resolve_workers(cfg.data.workers)
    sampler = (DistributedSampler(ds, ctx.world_size, ctx.rank, shuffle=True,
                                  seed=cfg.train.seed, drop_last=True) if ctx.enabled else None)
    per_rank = len(ds) // ctx.world_size
    return DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=sampler is None,
                      sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
                      pin_memory=device.startswith("cuda"),
                      drop_last=per_rank > cfg.train.batch_size,  # no BatchNorm batch of 1
                      generator=torch.Generator())


def val_loader(x: np.ndarray, labels: np.ndarray, batch_size: int) -> DataLoader:
    """The val split in memory, in order: `x` and `labels` as data.transforms.split_arrays
    makes them from the files (the kit's preprocess, decoded again, not from the shrunken
    training cache, so the numbers match what `ftedge eval` and every exported artifact see)."""
    return DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(labels)),
                      batch_size=batch_size, shuffle=False)
