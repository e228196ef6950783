"""Counting the reads of one command (tests/stages/export/test_reads_per_export.py and
benchmarks/code_stats.py), by file, while the block runs:

- ONNX parses (`onnx.load`),
- sha256 hashes (`ftedge.io._sha256`, what `sha256_file` runs when it has no result yet),
- JSON parses (`ftedge.io._parse_json`, what `read_json` runs when it has no result yet),
- checkpoint loads (`ftedge.io._torch_load`, what `safe_torch_load` runs likewise).

On a checkout without the inner functions the public ones are counted instead, at every
binding of them in ftedge's modules (so "before" numbers can be taken on an older commit)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass
class Reads:
    parses: Counter = field(default_factory=Counter)  # file path -> onnx.load calls
    hashes: Counter = field(default_factory=Counter)  # file path -> times hashed
    json: Counter = field(default_factory=Counter)  # file path -> JSON parses
    checkpoints: Counter = field(default_factory=Counter)  # file path -> torch.load calls

    def of(self, path) -> tuple[int, int]:
        """(ONNX parses, hashes) of one file."""
        key = _key(path)
        return self.parses[key], self.hashes[key]

    def loads(self, path) -> tuple[int, int]:
        """(JSON parses, checkpoint loads) of one file."""
        key = _key(path)
        return self.json[key], self.checkpoints[key]

    def summary(self) -> dict:
        """Totals, by file name (files of the same name in several folders added up), and the
        most times one file was read each way."""
        def by_name(counts):
            out: Counter = Counter()
            for path, n in counts.items():
                out[Path(path).name] += n
            return dict(out.most_common())

        return {"onnx_parses": sum(self.parses.values()), "parses": by_name(self.parses),
                "most_parses_of_one_file": max(self.parses.values(), default=0),
                "sha256": sum(self.hashes.values()), "hashes": by_name(self.hashes),
                "most_hashes_of_one_file": max(self.hashes.values(), default=0),
                "json_parses": sum(self.json.values()), "json": by_name(self.json),
                "most_json_parses_of_one_file": max(self.json.values(), default=0),
                "checkpoint_loads": sum(self.checkpoints.values()),
                "checkpoints": by_name(self.checkpoints),
                "most_checkpoint_loads_of_one_file": max(self.checkpoints.values(), default=0)}


def _key(path) -> str:
    return os.path.realpath(str(path))


def _rebind(old, new) -> None:
    for name, mod in list(sys.modules.items()):
        if name == "ftedge" or name.startswith("ftedge."):
            for attr, value in list(vars(mod).items()):
                if value is old:
                    setattr(mod, attr, new)


@contextlib.contextmanager
def _counting(module, inner: str, outer: str, counts: Counter) -> Iterator[None]:
    """Count calls of `module.inner` (or, where it does not exist, of every binding of
    `module.outer`) by their first argument's real path."""
    name = inner if hasattr(module, inner) else outer
    real = getattr(module, name)

    def counted(path, *a, **k):
        counts[_key(path)] += 1
        return real(path, *a, **k)

    if name == inner:
        setattr(module, name, counted)
    else:
        _rebind(real, counted)
    try:
        yield
    finally:
        if name == inner:
            setattr(module, name, real)
        else:
            _rebind(counted, real)


@contextlib.contextmanager
def count_reads() -> Iterator[Reads]:
    """Patch onnx.load / onnx.load_model and ftedge.io's hashing, JSON parsing and checkpoint
    loading while the block runs."""
    import onnx

    import ftedge.io

    reads = Reads()
    load = onnx.load

    def counted_load(f, *a, **k):
        reads.parses[_key(f)] += 1
        return load(f, *a, **k)

    onnx.load = onnx.load_model = counted_load
    try:
        with _counting(ftedge.io, "_sha256", "sha256_file", reads.hashes), \
                _counting(ftedge.io, "_parse_json", "read_json", reads.json), \
                _counting(ftedge.io, "_torch_load", "safe_torch_load", reads.checkpoints):
            yield reads
    finally:
        onnx.load = onnx.load_model = load
