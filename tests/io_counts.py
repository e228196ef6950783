"""Counting the reads of one command (tests/formats/test_reads_per_export.py and
benchmarks/code_stats.py): how many times ONNX graphs are parsed (`onnx.load`) and files are
hashed (`ftedge.io.sha256_file`), by file name, while the block runs."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass
class Reads:
    parses: Counter = field(default_factory=Counter)  # file name -> onnx.load calls
    hashes: Counter = field(default_factory=Counter)  # file name -> sha256_file calls

    def summary(self) -> dict:
        return {"onnx_parses": sum(self.parses.values()), "parses": dict(self.parses),
                "sha256": sum(self.hashes.values()), "hashes": dict(self.hashes)}


def _name(path) -> str:
    return Path(str(path)).name


@contextlib.contextmanager
def count_reads() -> Iterator[Reads]:
    """Patch onnx.load / onnx.load_model and every binding of ftedge.io.sha256_file (modules
    that imported it by name included, and those imported while the block runs)."""
    import onnx

    import ftedge.io

    reads = Reads()
    load, sha = onnx.load, ftedge.io.sha256_file

    def counted_load(f, *a, **k):
        reads.parses[_name(f)] += 1
        return load(f, *a, **k)

    def counted_sha(path, *a, **k):
        reads.hashes[_name(path)] += 1
        return sha(path, *a, **k)

    def rebind(old, new):
        for name, mod in list(sys.modules.items()):
            if name == "ftedge" or name.startswith("ftedge."):
                for attr, value in list(vars(mod).items()):
                    if value is old:
                        setattr(mod, attr, new)

    onnx.load = onnx.load_model = counted_load
    rebind(sha, counted_sha)
    try:
        yield reads
    finally:
        onnx.load = onnx.load_model = load
        rebind(counted_sha, sha)
