"""The layering of ARCHITECTURE.md, checked on the source: a module imports only from its own
layer or the layers below it (lazy imports included), so no import can go in a circle."""

import ast
from pathlib import Path

import ftedge

# quant/ sits below training/: the QAT stage of `ftedge tune` uses quant's preparation and
# gate, while quant/ never needs the training loop (PTQ works on a finished run's files).
LAYERS = {"config": 1, "io": 1, "errors": 1, "console": 1, "metrics": 1, "confidence": 1,
          "data": 2, "models": 2, "formats": 2,
          "runtime": 3, "graph": 3, "render": 3,
          "quant": 4, "training": 5, "export": 6, "deploy": 6,
          "bench": 7, "inference": 7, "stages": 7, "pipeline": 8, "cli": 8, "__main__": 9}


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ftedge."):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("ftedge."))


def test_no_module_imports_a_higher_layer():
    root = Path(ftedge.__file__).parent
    wrong = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        top = rel.parts[0].removesuffix(".py")
        if top == "__init__" or top not in LAYERS:
            continue
        for module in _imports(path):
            other = module.split(".")[1]
            if other != top and LAYERS.get(other, 0) > LAYERS[top]:
                wrong.append(f"{rel} imports {module}")
    assert not wrong, wrong


def test_quant_export_and_bench_never_import_training():
    root = Path(ftedge.__file__).parent
    for pkg in ("quant", "export", "bench", "formats", "runtime", "graph"):
        for path in (root / pkg).rglob("*.py"):
            assert not any(m.startswith("ftedge.training") for m in _imports(path)), path
