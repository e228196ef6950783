"""The layer checker behind tests/test_layers.py (and benchmarks/code_stats.py).

`check_layers(root, table)` reads every module under the package folder `root` and returns
each import that breaks the layer table of docs/ARCHITECTURE.md. An import is any of:
`import pkg.x`, `import pkg.x as y`, `from pkg.x import y`, `from pkg import x`, relative
`from . import x` / `from ..x import y`, imports inside functions, `importlib.import_module(
"pkg.x")`, and a string that names a module of the package ("pkg.x" or a "pkg.x:Attr"
registry entry). The kinds of violation:

- unknown: a module under `root` (or an import target) that no table entry covers;
- upward: a module imports a higher layer;
- circle: packages that import each other, directly or round a longer loop (same layer);
- stage: one stage imports another (children of an `isolated` package, e.g. stages/, talk
  only through what is on disk or a `shared` API module such as stages/common.py).

Table names are top-level packages or modules (`data`, `cli`, `__main__`; `__init__` is the
root package's own file) or dotted sub-packages (`deploy.templates`): a module belongs to the
longest name that covers it. Reading a name from the root package itself (`from pkg import
__version__`) is allowed everywhere: the root's __init__ must import nothing eagerly.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

BEGIN, END = "<!-- layers:begin -->", "<!-- layers:end -->"


@dataclass(frozen=True)
class Violation:
    kind: str  # "unknown" | "upward" | "circle" | "stage"
    module: str  # importing module, dotted from the root ("stages.export.exporter")
    target: str  # imported module ("" for the root package itself)
    line: int

    def __str__(self) -> str:
        return f"{self.kind}: {self.module or '__init__'}:{self.line} imports {self.target or '<root>'}"


def read_table(text: str) -> dict[str, int]:
    """{name: layer} from the lines `N: name name ...` between the layers markers."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"no {BEGIN} ... {END} block")
    table: dict[str, int] = {}
    for line in text.split(BEGIN, 1)[1].split(END, 1)[0].strip().splitlines():
        number, _, names = line.partition(":")
        for name in names.split():
            table[name] = int(number)
    return table


def module_names(root: Path) -> dict[str, Path]:
    """{dotted name relative to root: file}; the root's own __init__ is ""."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(root: Path, module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import form in one file, lazy ones included."""
    pkg = root.name
    is_package = path.name == "__init__.py"
    here = module.split(".") if module else []
    found: list[tuple[str, int]] = []

    def own(dotted: str) -> str | None:  # "pkg.a.b" -> "a.b"; "pkg" -> ""; other -> None
        if dotted == pkg:
            return ""
        return dotted[len(pkg) + 1:] if dotted.startswith(pkg + ".") else None

    def add(base: str, names: list[str], line: int) -> None:
        for name in names:  # `from base import name`: name may be a submodule
            sub = f"{base}.{name}" if base else name
            found.append((sub if sub in known else base, line))

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = own(alias.name)
                if target is not None:
                    found.append((target, line))
        elif isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            if node.level:
                package = here if is_package else here[:-1]
                up = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join(up + (node.module.split(".") if node.module else []))
                add(base, names, line)
            elif node.module and own(node.module) is not None:
                add(own(node.module), names, line)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # import_module("pkg.x"), __import__("pkg.x") and "pkg.x:Attr" registry strings
            match = re.fullmatch(rf"{re.escape(pkg)}((?:\.\w+)+)(:\w+)?", node.value)
            if match:
                target = match.group(1)[1:]
                if target in known or match.group(2):
                    found.append((target, line))
    return list(dict.fromkeys(found))


def _unit(name: str, table: dict[str, int]) -> str | None:
    if name == "":
        return "__init__" if "__init__" in table else None
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in table:
            return ".".join(parts[:i])
    return None


def _circles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected groups of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.add(frozenset(group))

    for v in list(edges):
        if v not in index:
            visit(v)
    return groups


def check_layers(root: Path, table: dict[str, int], isolated: tuple[str, ...] = ("stages",),
                 shared: tuple[str, ...] = ("common",)) -> list[Violation]:
    """Every import under the package folder `root` that breaks `table` (see the module doc)."""
    modules = module_names(root)
    known = set(modules)
    wrong: list[Violation] = []
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], Violation] = {}
    for module, path in modules.items():
        unit = _unit(module, table)
        if unit is None:
            wrong.append(Violation("unknown", module, module, 0))
            continue
        for target, line in imports_of(root, module, path, known):
            if target == "" and module != "":
                continue  # a name read from the root package (its __version__)
            other = _unit(target, table)
            if other is None:
                wrong.append(Violation("unknown", module, target, line))
            elif table[other] > table[unit]:
                wrong.append(Violation("upward", module, target, line))
            if other is not None and other != unit:
                edges.setdefault(unit, set()).add(other)
                where.setdefault((unit, other), Violation("circle", module, target, line))
            for iso in isolated:
                a, b = module.split("."), target.split(".")
                if (len(a) > 1 and len(b) > 1 and a[0] == b[0] == iso and a[1] != b[1]
                        and b[1] not in shared):
                    wrong.append(Violation("stage", module, target, line))
    for group in _circles(edges):
        wrong += [v for (a, b), v in where.items() if a in group and b in group]
    return wrong


def prints_below(root: Path, table: dict[str, int], layer: int,
                 allowed: tuple[str, ...] = ()) -> list[str]:
    """Modules of layers below `layer` that print: a print() call, or an import of rich or of
    the package's console module. `allowed`: dotted names (modules or packages) exempted."""
    pkg = root.name
    found = []
    for module, path in module_names(root).items():
        unit = _unit(module, table)
        if unit is None or table[unit] >= layer or unit == "console":
            continue
        if any(module == a or module.startswith(a + ".") for a in allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            named = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                named = ["print()"]
            elif isinstance(node, ast.Import):
                named = [a.name for a in node.names if a.name.split(".")[0] == "rich"
                         or a.name == f"{pkg}.console"]
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module.split(".")[0] == "rich" or node.module == f"{pkg}.console" or (
                        node.module == pkg and any(a.name == "console" for a in node.names)):
                    named = [node.module]
            found += [f"{module}:{node.lineno} {n}" for n in named]
    return found
