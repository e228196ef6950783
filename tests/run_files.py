"""Run, artifact and report file names spelled outside ftedge/formats/ (tests/formats/
test_run_file_names.py and benchmarks/code_stats.py).

The run folder, the artifact manifest and the bench report own their file names
(formats/run.py, formats/artifact.py, formats/report.py): every other module reaches a file
through its owner's constants or accessors, so a name changes in one place. A name counts when
it appears inside a string literal (f-string parts included) of code; docstrings and comments
explain, and are not counted. deploy/templates/ is the standalone infer.py copied into every
artifact: it imports nothing of ftedge, so it spells manifest.json itself.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

NAMES = ("config.yaml", "classes.json", "split.json", "dataset_audit.json", "preprocessing.json",
         "best.pt", "last.pt", "qat_best.pt", "model.fp32.onnx",
         "model.int8.onnx", "model.ptq.int8.onnx", "gate.json", "gate.md", "gate_ptq.json",
         "gate_ptq.md", "calibration_manifest.json", "summary.json", "metrics.json",
         "metrics.csv", "val_report.json", "training_curves.png", "confusion_matrix.png",
         "confidence.json", "reliability.png", "manifest.json", "parity.json", "report.json",
         "report.md")
OWNERS = ("formats", "deploy/templates")
_PATTERN = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, NAMES)) + r")(?![\w])")


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def literals_in(source: str) -> list[tuple[int, str]]:
    """(line, name) for every run/artifact file name in the code's string literals."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found += [(node.lineno, m.group(1)) for m in _PATTERN.finditer(node.value)]
    return sorted(found)


def run_file_literals(pkg: Path) -> list[str]:
    """`path:line: name` for every such name outside the owners, under the package `pkg`."""
    out = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg).as_posix()
        if any(rel.startswith(o + "/") for o in OWNERS):
            continue
        out += [f"{pkg.name}/{rel}:{line}: {name}" for line, name in literals_in(path.read_text())]
    return out
