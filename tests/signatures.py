"""Signature rules of the house (docs/ARCHITECTURE.md, Style 2 and 4), read from the source.

- `positional_heavy`: public functions and methods taking more than 3 positional parameters
  (`self`/`cls` not counted): past 3, the rest must be keyword-only (`*,`), as NNCF's
  `quantize(model, calibration_dataset, *, ...)`, so a call says what each value is.
- `repeated_defaults`: one (parameter name, literal default) pair written in more than one
  signature or dataclass field, e.g. `max_drop=1.0` twice: each default lives once (config.py
  or the owning module's constant) and signatures take None for it.

Shared by tests/test_signatures.py and benchmarks/code_stats.py.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

MAX_POSITIONAL = 3
# (name, literal) pairs that are no default of ftedge's but a fact of the function: the
# identity temperature of a softmax, the split a helper reads when none is named, an empty
# title, the word an error message uses for the thing it checks
NOT_DEFAULTS = {("temperature", "1.0"), ("split", "'val'"), ("split", "'train'"),
                ("title", "''"), ("where", "'frame'"), ("seed", "0")}


def _public(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _definitions(tree: ast.Module):
    """(function, is_method) for module-level functions and the methods of public classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, False
        elif isinstance(node, ast.ClassDef) and _public(node.name):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                                 for d in sub.decorator_list)
                    yield sub, not static


def positional_heavy(pkg: Path) -> list[str]:
    """'path:line name (n positional)' for each public function over MAX_POSITIONAL."""
    found = []
    for path in sorted(Path(pkg).rglob("*.py")):
        for fn, method in _definitions(ast.parse(path.read_text())):
            if not _public(fn.name):
                continue
            pos = fn.args.posonlyargs + fn.args.args
            if method and pos and pos[0].arg in ("self", "cls"):
                pos = pos[1:]
            if len(pos) > MAX_POSITIONAL:
                found.append(f"{path.relative_to(pkg.parent)}:{fn.lineno} {fn.name} "
                             f"({len(pos)} positional)")
    return found


def _literal(node) -> str | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, str):
        return repr(node.value)
    return None


def repeated_defaults(pkg: Path) -> dict[str, list[str]]:
    """{"name=literal": [where, ...]} for each pair written in more than one place."""
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(Path(pkg).rglob("*.py")):
        rel = path.relative_to(pkg.parent)
        for node in ast.walk(ast.parse(path.read_text())):
            pairs = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                pos = a.posonlyargs + a.args
                pairs = list(zip(pos[len(pos) - len(a.defaults):], a.defaults))
                pairs += [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
                pairs = [(p.arg, d) for p, d in pairs]
            elif isinstance(node, ast.ClassDef):
                pairs = [(s.target.id, s.value) for s in node.body
                         if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                         and s.value is not None]
            for name, value in pairs:
                lit = _literal(value)
                if lit is not None and (name, lit) not in NOT_DEFAULTS:
                    seen[(name, lit)].append(f"{rel}:{node.lineno}")
    return {f"{n}={v}": w for (n, v), w in sorted(seen.items()) if len(w) > 1}
