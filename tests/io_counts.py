"""Counting the reads of one command (tests/stages/export/test_reads_per_export.py and
benchmarks/code_stats.py): how many times ONNX graphs are parsed (`onnx.load`) and files are
hashed (sha256 over their bytes, `ftedge.io._sha256`, what `sha256_file` runs when it has no
result for the file yet), by file name, while the block runs."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass
class Reads:
    parses: Counter = field(default_factory=Counter)  # file path -> onnx.load calls
    hashes: Counter = field(default_factory=Counter)  # file path -> times hashed

    def of(self, path) -> tuple[int, int]:
        """(parses, hashes) of one file."""
        key = _key(path)
        return self.parses[key], self.hashes[key]

    def summary(self) -> dict:
        """Totals, by file name (files of the same name in several folders added up), and the
        most times one file was parsed or hashed."""
        def by_name(counts):
            out: Counter = Counter()
            for path, n in counts.items():
                out[Path(path).name] += n
            return dict(out.most_common())

        return {"onnx_parses": sum(self.parses.values()), "parses": by_name(self.parses),
                "most_parses_of_one_file": max(self.parses.values(), default=0),
                "sha256": sum(self.hashes.values()), "hashes": by_name(self.hashes),
                "most_hashes_of_one_file": max(self.hashes.values(), default=0)}


def _key(path) -> str:
    import os

    return os.path.realpath(str(path))


@contextlib.contextmanager
def count_reads() -> Iterator[Reads]:
    """Patch onnx.load / onnx.load_model and ftedge.io's hashing (and, for checkouts where
    sha256_file hashes by itself, every binding of it)."""
    import onnx

    import ftedge.io

    reads = Reads()
    load = onnx.load
    inner = hasattr(ftedge.io, "_sha256")
    sha = ftedge.io._sha256 if inner else ftedge.io.sha256_file

    def counted_load(f, *a, **k):
        reads.parses[_key(f)] += 1
        return load(f, *a, **k)

    def counted_sha(path, *a, **k):
        reads.hashes[_key(path)] += 1
        return sha(path, *a, **k)

    def rebind(old, new):
        for name, mod in list(sys.modules.items()):
            if name == "ftedge" or name.startswith("ftedge."):
                for attr, value in list(vars(mod).items()):
                    if value is old:
                        setattr(mod, attr, new)

    onnx.load = onnx.load_model = counted_load
    if inner:
        ftedge.io._sha256 = counted_sha
    else:
        rebind(sha, counted_sha)
    try:
        yield reads
    finally:
        onnx.load = onnx.load_model = load
        if inner:
            ftedge.io._sha256 = sha
        else:
            rebind(counted_sha, sha)
