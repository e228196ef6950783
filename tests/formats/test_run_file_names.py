"""The run folder, the artifact manifest and the bench report own their file names: no module
outside ftedge/formats/ spells one (tests/run_files.py)."""

from pathlib import Path

import ftedge
from ftedge.formats import artifact, report, run
from tests.run_files import NAMES, literals_in, run_file_literals

ROOT = Path(ftedge.__file__).parent


def test_no_run_or_artifact_file_name_is_spelled_outside_formats():
    found = run_file_literals(ROOT)
    assert found == [], "use the constants and accessors of ftedge/formats/:\n" + "\n".join(found)


def test_every_checked_name_is_defined_by_its_owner():
    defined = set()
    for module in (run, artifact, report):
        for value in vars(module).values():
            if isinstance(value, str):
                defined.add(value)
            elif isinstance(value, dict):
                defined |= {v for v in value.values() if isinstance(v, str)}
    gates = {f"{stem}.{ext}" for stem in run.GATE.values() for ext in ("json", "md")}
    assert set(NAMES) - defined - gates == set()


def test_the_checker_sees_literals_and_f_strings_but_not_docstrings():
    source = '''"""Writes best.pt."""
def f(run, e):
    """Reads split.json."""
    a = run / "last.pt"  # best.pt in a comment
    b = f"see {run}/gate.md or model.int8.onnx"
    c = "my_best.pt.bak", "summary.jsonl"
'''
    assert literals_in(source) == [(4, "last.pt"), (5, "gate.md"), (5, "model.int8.onnx")]
