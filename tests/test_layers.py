"""The layering of docs/ARCHITECTURE.md, checked on the source: a module imports only from its
own layer or the layers below it (every import form, lazy ones included), packages never import
each other, stages never import each other, and layers below the stages never print."""

from pathlib import Path

import pytest

import ftedge
from tests.layering import check_layers, prints_below, read_table

ROOT = Path(ftedge.__file__).parent
DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"

# deploy/templates is the device-side infer.py: printing is its job, and it cannot import
# ftedge's console. No other library prints (the audit returns views, the sensitivity scan
# reports each layer to a callback: stages and the CLI print).
PRINTING_LIBRARIES = ("deploy.templates",)


def table():
    return read_table(DOC.read_text())


def test_the_table_lists_every_package_and_stages_are_one_layer():
    t = table()
    assert t["stages"] > max(t[n] for n in ("quant", "training", "runtime", "deploy", "data"))
    assert t["cli"] == max(t.values())


def test_no_import_breaks_the_layer_table():
    wrong = check_layers(ROOT, table())
    assert not wrong, "\n".join(map(str, wrong))


def test_libraries_below_the_stages_do_not_print():
    t = table()
    found = prints_below(ROOT, t, t["stages"], PRINTING_LIBRARIES)
    assert not found, found


def test_the_printing_allow_list_holds_only_modules_that_still_print():
    # an entry that stopped printing is taken off the list, so the list only shrinks
    t = table()
    for name in PRINTING_LIBRARIES:
        if name == "deploy.templates":
            continue
        others = tuple(n for n in PRINTING_LIBRARIES if n != name)
        assert prints_below(ROOT, t, t["stages"], others), f"{name} no longer prints"


# ---- the checker itself, on a planted package ----

PLANT_TABLE = """<!-- layers:begin -->
1: low
2: mid other
3: stages
4: cli __init__
<!-- layers:end -->"""


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    base = {"__init__.py": "", "low/__init__.py": "", "low/util.py": "X = 1\n",
            "mid/__init__.py": "", "mid/core.py": "from pkg.low.util import X\n",
            "other/__init__.py": "", "other/thing.py": "from pkg.low import util\n",
            "stages/__init__.py": "", "stages/common.py": "from pkg.mid.core import X\n",
            "stages/a.py": "from pkg.stages.common import X\n",
            "stages/b/__init__.py": "", "stages/b/run.py": "from . import helper\n",
            "stages/b/helper.py": "from pkg.stages import common\n",
            "cli.py": "from pkg.stages import a\nfrom pkg.stages.b import run\n"}
    for rel, text in {**base, **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_clean_package_passes(tmp_path):
    assert check_layers(_package(tmp_path, {}), read_table(PLANT_TABLE)) == []


@pytest.mark.parametrize("rel, text, kind, target", [
    ("low/util.py", "import pkg.mid.core\n", "upward", "mid.core"),
    ("low/util.py", "import pkg.mid.core as c\n", "upward", "mid.core"),
    ("low/util.py", "from pkg.mid.core import X\n", "upward", "mid.core"),
    ("low/util.py", "from pkg import mid\n", "upward", "mid"),
    ("low/util.py", "from ..mid import core\n", "upward", "mid.core"),
    ("low/__init__.py", "from ..mid.core import X\n", "upward", "mid.core"),
    ("low/util.py", "def f():\n    from pkg.stages.a import X\n    return X\n", "upward",
     "stages.a"),
    ("low/util.py", "import importlib\nM = importlib.import_module('pkg.mid.core')\n",
     "upward", "mid.core"),
    ("low/util.py", "REGISTRY = {'x': 'pkg.mid.core:Thing'}\n", "upward", "mid.core"),
    ("low/util.py", "M = __import__('pkg.cli')\n", "upward", "cli"),
    ("mid/core.py", "from pkg.other.thing import util\n", "circle", "other.thing"),
    ("stages/a.py", "from pkg.stages.b.run import helper\n", "stage", "stages.b.run"),
    ("stages/b/helper.py", "from ..a import common\n", "stage", "stages.a"),
    ("newpkg/__init__.py", "", "unknown", "newpkg"),
    ("extra.py", "X = 2\n", "unknown", "extra"),
    ("mid/core.py", "from pkg.gone import X\n", "unknown", "gone"),
])
def test_each_kind_of_violation_is_caught(tmp_path, rel, text, kind, target):
    files = {rel: text}
    if kind == "circle":  # other -> mid closes the circle that mid -> other opens
        files["other/thing.py"] = "from pkg.mid import core\nfrom pkg.low import util\n"
    wrong = check_layers(_package(tmp_path, files), read_table(PLANT_TABLE))
    assert any(v.kind == kind and v.target == target for v in wrong), wrong
    if kind == "circle":
        assert {v.module for v in wrong} == {"mid.core", "other.thing"}


def test_a_longer_circle_is_caught(tmp_path):
    table = read_table(PLANT_TABLE.replace("2: mid other", "2: mid other third"))
    root = _package(tmp_path, {"mid/core.py": "from pkg.other import thing\n",
                               "other/thing.py": "from pkg.third import t\n",
                               "third/__init__.py": "", "third/t.py": "from pkg.mid import core\n"})
    assert {v.kind for v in check_layers(root, table)} == {"circle"}
    assert len(check_layers(root, table)) == 3


def test_printing_below_the_stages_is_caught(tmp_path):
    root = _package(tmp_path, {"mid/core.py": "def f():\n    print('hi')\n",
                               "other/thing.py": "from rich.console import Console\n",
                               "stages/a.py": "print('stages may print')\n"})
    t = read_table(PLANT_TABLE)
    assert sorted(prints_below(root, t, t["stages"])) == [
        "mid.core:2 print()", "other.thing:1 rich.console"]
    assert prints_below(root, t, t["stages"], allowed=("mid", "other.thing")) == []


def test_the_table_is_read_from_its_markers():
    assert read_table(PLANT_TABLE) == {"low": 1, "mid": 2, "other": 2, "stages": 3, "cli": 4,
                                       "__init__": 4}
    with pytest.raises(ValueError):
        read_table("no table here")
