"""Code-shape numbers for issue 23, reproducible on any checkout of ftedge.

    python benchmarks/code_stats.py                      # this checkout, its docs/ARCHITECTURE.md
    python benchmarks/code_stats.py --root OTHER --table ARCH.md   # e.g. an older commit

Prints: lines per top-level package, the 5 largest modules and functions, import edges that
break the layer table (tests/layering.py's checker), `runtime == "..."` branches outside
ftedge/runtime/, public functions with more than 3 positional parameters and default literals
written in more than one signature (tests/signatures.py), modules without a direct test
(ftedge/a/b.py is directly tested when a tests/**/test_*.py file imports ftedge.a.b, or a name
from it, and reads what it imported), and run or artifact file names spelled outside
ftedge/formats/ (tests/run_files.py). The suite's wall time is timed separately:
`time python -m pytest -q -m "not gpu and not tensorrt"`.

    python benchmarks/code_stats.py --export-reads       # + trains a tiny QAT run (~1 min)

also counts the ONNX parses, sha256 hashes, JSON parses and checkpoint loads of one `ftedge
export --precision int8` of that run, one bench of the artifact and one eval of the run
(tests/io_counts.py), by file.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
from tests.layering import check_layers, module_names, read_table  # noqa: E402
from tests.run_files import run_file_literals  # noqa: E402
from tests.signatures import positional_heavy, repeated_defaults  # noqa: E402

RUNTIMES = {"onnxruntime", "openvino", "tensorrt", "pytorch"}


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def per_package(pkg: Path) -> dict[str, int]:
    out: Counter = Counter()
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg)
        out[rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem] += lines(path)
    return dict(out.most_common())


def largest_functions(pkg: Path, n: int = 5) -> list[tuple[int, str]]:
    found = []
    for path in pkg.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((node.end_lineno - node.lineno + 1,
                              f"{path.relative_to(pkg.parent)}:{node.name}"))
    return sorted(found, reverse=True)[:n]


def _is_runtime(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "runtime"
    if isinstance(node, ast.Attribute):
        return node.attr == "runtime"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "runtime"
    return False


def _names_runtime(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in RUNTIMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_runtime(e) for e in node.elts)
    return False


def runtime_branches(pkg: Path) -> list[str]:
    """`runtime == "openvino"`, `x.runtime != "tensorrt"`, `m["runtime"] in ("a", "b")`...
    outside ftedge/runtime/ (the deploy templates, which run alone, included)."""
    found = []
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg)
        if rel.parts[0] == "runtime":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(
                    node.ops[0], (ast.Eq, ast.NotEq, ast.In, ast.NotIn)):
                left, right = node.left, node.comparators[0]
                if (_is_runtime(left) and _names_runtime(right)) or (
                        _is_runtime(right) and _names_runtime(left)):
                    found.append(f"{pkg.name}/{rel}:{node.lineno}")
    return sorted(found)


def _dotted(node: ast.AST) -> str | None:
    """"a.b.c" for the expression a.b.c, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def tested_modules(root: Path, known: set[str]) -> set[str]:
    """Modules (dotted, without the package name) that some test file imports AND uses.

    Only tests/**/test_*.py count (a conftest's fixture or a helper module is not a test of
    what it imports), and an import counts once a name it binds is read in that file: the
    module itself (`from ftedge.a import b`; `import ftedge.a.b` read as ftedge.a.b...) or
    one of its names (`from ftedge.a.b import f`, then f read). Imports inside functions
    count alike.
    """
    seen = set()
    for path in (root / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        binds: dict[str, set[str]] = {}  # name bound in this file -> modules it stands for
        dotted: set[str] = set()  # `import ftedge.a.b` without `as`: read as ftedge.a.b...
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("ftedge."):
                        if a.asname:
                            binds.setdefault(a.asname, set()).add(a.name)
                        else:
                            dotted.add(a.name)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if node.module == "ftedge" or node.module.startswith("ftedge."):
                    for a in node.names:
                        binds.setdefault(a.asname or a.name, set()).update(
                            {node.module, f"{node.module}.{a.name}"})
        used = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                used |= binds.get(node.id, set())
            elif isinstance(node, ast.Attribute):
                name = _dotted(node)
                used |= {m for m in dotted if name and (name == m or name.startswith(m + "."))}
        seen |= {m[len("ftedge."):] for m in used if m.startswith("ftedge.")}
    return seen & known


def stats(root: Path, table_file: Path | None) -> dict:
    pkg = root / "ftedge"
    modules = module_names(pkg)
    sizes = sorted(((lines(p), f"ftedge/{p.relative_to(pkg)}") for p in modules.values()),
                   reverse=True)
    logic = {m for m, p in modules.items() if p.name != "__init__.py"}
    untested = sorted(logic - tested_modules(root, set(modules)))
    out = {"modules": len(modules), "lines": sum(s for s, _ in sizes),
           "lines_per_package": per_package(pkg), "largest_modules": sizes[:5],
           "largest_functions": largest_functions(pkg),
           "runtime_branches_outside_runtime": runtime_branches(pkg),
           "positional_heavy_functions": positional_heavy(pkg),
           "repeated_default_literals": repeated_defaults(pkg),
           "modules_without_direct_test": untested,
           "run_file_names_outside_formats": run_file_literals(pkg)}
    if table_file is not None:
        wrong = check_layers(pkg, read_table(table_file.read_text()))
        out["layer_violations"] = [str(v) for v in wrong]
        out["layer_violations_by_kind"] = dict(Counter(v.kind for v in wrong))
    return out


def command_reads(run_dir: Path | None = None, target: str = "onnxruntime-cpu") -> dict:
    """Parses, hashes and loads of each file during one INT8 export of a QAT run (`run_dir`, or
    a tiny one made in a temporary folder), one bench of that artifact and one eval of the run,
    per command."""
    import tempfile

    import ftedge
    from ftedge.stages.bench.bench import BenchOptions, bench
    from ftedge.stages.export.exporter import export_run
    from ftedge.stages.inference import evaluate
    from tests.conftest import tiny_options, write_class_folders
    from tests.io_counts import count_reads

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if run_dir is None:
            data = write_class_folders(root / "colours", per_class=12)
            run_dir = ftedge.tune(data=str(data), **dict(tiny_options(root), qat=True,
                                                         qat_epochs=2)).run_dir
        with count_reads() as reads:
            export_run(run_dir, target, precision="int8", out=root / "artifact")
        out["export"] = reads.summary()
        with count_reads() as reads:
            bench([root / "artifact"], opts=BenchOptions(batches=(1,), warmup=1, runs=2,
                                                         e2e_images=2, camera_images=0))
        out["bench"] = reads.summary()
        with count_reads() as reads:
            evaluate(run_dir)
        out["eval"] = reads.summary()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=HERE, help="checkout to measure")
    ap.add_argument("--table", type=Path, help="file with the layer table "
                    "(default: ROOT/docs/ARCHITECTURE.md when it exists)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--export-reads", action="store_true",
                    help="also train a tiny QAT run and count the reads of one INT8 export, "
                    "one bench and one eval")
    a = ap.parse_args(argv)
    table = a.table or (a.root / "docs" / "ARCHITECTURE.md")
    s = stats(a.root, table if table.is_file() else None)
    if a.export_reads:
        s["reads"] = command_reads()
    if a.json:
        print(json.dumps(s, indent=1))
        return 0
    print(f"{s['modules']} modules, {s['lines']} lines")
    print("lines per package: " + ", ".join(f"{k} {v}" for k, v in s["lines_per_package"].items()))
    print("largest modules: " + ", ".join(f"{p} {n}" for n, p in s["largest_modules"]))
    print("largest functions: " + ", ".join(f"{p} {n}" for n, p in s["largest_functions"]))
    if "layer_violations" in s:
        print(f"layer violations: {len(s['layer_violations'])} {s['layer_violations_by_kind']}")
        for v in s["layer_violations"]:
            print(f"  {v}")
    br = s["runtime_branches_outside_runtime"]
    print(f"runtime == branches outside ftedge/runtime/: {len(br)}")
    for b in br:
        print(f"  {b}")
    heavy = s["positional_heavy_functions"]
    print(f"public functions with more than 3 positional parameters: {len(heavy)}")
    for h in heavy:
        print(f"  {h}")
    repeated = s["repeated_default_literals"]
    print(f"default literals written in more than one place: {len(repeated)}")
    for name, where in repeated.items():
        print(f"  {name}: {', '.join(where)}")
    print(f"modules without a direct test: {len(s['modules_without_direct_test'])}: "
          + ", ".join(s["modules_without_direct_test"]))
    names = s["run_file_names_outside_formats"]
    print(f"run/artifact file names spelled outside ftedge/formats/: {len(names)}")
    for n in names:
        print(f"  {n}")
    for command, r in s.get("reads", {}).items():
        print(f"one {command} (INT8, onnxruntime-cpu): {r['onnx_parses']} ONNX parses "
              f"(at most {r['most_parses_of_one_file']} of one file) {r['parses']}; "
              f"{r['sha256']} sha256 hashes (at most {r['most_hashes_of_one_file']}) "
              f"{r['hashes']}; {r['json_parses']} JSON parses (at most "
              f"{r['most_json_parses_of_one_file']}) {r['json']}; {r['checkpoint_loads']} "
              f"checkpoint loads (at most {r['most_checkpoint_loads_of_one_file']}) "
              f"{r['checkpoints']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
