"""data/audit_report.py: the audit's findings as console lines."""

import io
from pathlib import Path

from rich.console import Console

from ftedge.data.audit import DatasetAudit
from ftedge.console import print_view
from ftedge.data.audit_report import SHOW, leak_warning
from ftedge.stages.common.audit_view import findings_view
from ftedge.data.duplicates import DuplicatePair
from ftedge.data.folder import Sample
from ftedge.data.labels import LabelIssue

ROOT = Path("/data")


def _pair(a, b, split_b="train", class_b="cat", kind="near-duplicate"):
    return DuplicatePair(ROOT / a, ROOT / b, "train", split_b, "cat", class_b, kind, 3)


def _audit(duplicates=None, outliers=(), label_issues=None, val=()):
    train = [Sample(ROOT / f"train/cat/{i}.png", 0) for i in range(3)]
    return DatasetAudit(ROOT, ["cat", "dog"], train, [Sample(ROOT / p, 0) for p in val], [], [],
                        duplicates=duplicates, outliers=list(outliers),
                        label_issues=label_issues)


def _printed(audit) -> str:
    out = io.StringIO()
    print_view(Console(file=out, width=300), findings_view(audit))
    return out.getvalue()


def test_leak_warning_counts_held_out_images_that_show_train_pictures():
    leak = _pair("train/cat/0.png", "val/cat/9.png", split_b="val")
    audit = _audit([leak], val=["val/cat/9.png", "val/cat/8.png"])
    assert leak_warning(audit).startswith("1 val image(s) also appear in train")
    assert leak_warning(_audit([], val=["val/cat/9.png"])) is None


def test_conflicts_and_leaks_come_first_with_paths_relative_to_the_root():
    pairs = [_pair("train/cat/0.png", "train/cat/1.png", kind="identical file"),
             _pair("train/cat/2.png", "val/cat/9.png", split_b="val"),
             _pair("train/cat/1.png", "train/dog/5.png", class_b="dog")]
    text = _printed(_audit(pairs, val=["val/cat/9.png"]))
    lines = text.splitlines()
    assert lines[0].startswith("3 duplicate pair(s): 2 near-duplicate, 1 identical file; "
                               "1 across splits, 1 with two different labels")
    assert lines[1].startswith("  LABEL CONFLICT near-duplicate (3 bits): train/cat/1.png ~")
    assert lines[2].startswith("  LEAK near-duplicate") and lines[3].startswith("  identical")
    assert "warning: 1 val image(s) also appear in train" in text


def test_long_lists_are_cut_and_empty_findings_said():
    issues = [LabelIssue(ROOT / f"train/cat/{i}.png", "cat", "dog", 0.01 * i)
              for i in range(SHOW + 3)]
    text = _printed(_audit([], outliers=[(ROOT / "train/cat/0.png", "tiny: 4x4")],
                           label_issues=issues))
    assert "no duplicate images found" in text
    assert "1 outlier image(s):\n  train/cat/0.png: tiny: 4x4" in text
    assert f"{SHOW + 3} suspected label error(s)" in text
    assert text.count("looks like dog") == SHOW and "... and 3 more" in text
    assert "no suspected label errors" in _printed(_audit(label_issues=[]))
    assert _printed(_audit()) == ""  # nothing searched, nothing said
