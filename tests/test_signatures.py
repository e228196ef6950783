"""Every public function with more than 3 parameters takes the rest keyword-only, and no
default literal is written twice (tests/signatures.py says why); a planted case is caught."""

from __future__ import annotations

from pathlib import Path

import ftedge
from tests.signatures import positional_heavy, repeated_defaults

PKG = Path(ftedge.__file__).parent


def test_public_functions_take_at_most_three_positional_parameters():
    assert positional_heavy(PKG) == []


def test_no_default_literal_is_written_twice():
    assert repeated_defaults(PKG) == {}


def test_a_planted_violation_of_each_rule_is_caught(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text(
        "def gate(a, b, c, max_drop=1.0):\n    pass\n\n\n"
        "def fine(a, b, c, *, max_drop=None):\n    pass\n\n\n"
        "def _private(a, b, c, d):\n    pass\n\n\n"
        "class Runner:\n    def infer(self, a, b, c):\n        pass\n\n"
        "    def run(self, a, b, c, d):\n        pass\n")
    (pkg / "b.py").write_text("class Options:\n    max_drop: float = 1.0\n    runs: int = 3\n")
    assert positional_heavy(pkg) == ["pkg/a.py:1 gate (4 positional)",
                                     "pkg/a.py:17 run (4 positional)"]
    assert repeated_defaults(pkg) == {"max_drop=1.0": ["pkg/a.py:1", "pkg/b.py:1"]}
