"""stages/common/audit_view.py: the audit as the views `data check` and tune print."""

import io

from rich.console import Console

from ftedge.console import print_view
from ftedge.data.labels import LabelIssue
from ftedge.stages.common.audit_view import audit_view, label_issues_view
from tests.data.test_audit_report import ROOT, _audit, _pair


def _text(view) -> str:
    out = io.StringIO()
    print_view(Console(file=out, width=300), view)
    return out.getvalue()


def test_the_audit_view_holds_the_class_table_the_counts_and_the_findings():
    leak = _pair("train/cat/0.png", "val/cat/9.png", split_b="val")
    audit = _audit([leak], val=["val/cat/9.png", "val/cat/8.png"])
    text = _text(audit_view(audit))
    assert f"Dataset {ROOT}" in text
    assert "2 classes, 3 train + 2 val images" in text
    assert "warning: val split has no image of: dog" in text
    assert "1 duplicate pair(s): 1 near-duplicate; 1 across splits" in text
    assert "LEAK near-duplicate (3 bits): train/cat/0.png ~ val/cat/9.png" in text


def test_names_print_literally_and_label_issues_stop_at_show():
    issues = [LabelIssue(ROOT / f"train/cat/[red]{i}.png", "cat", "dog", 0.1) for i in range(4)]
    audit = _audit(label_issues=issues)
    text = _text(label_issues_view(audit, show=2, more="see the JSON"))
    assert "4 suspected label error(s)" in text and "[red]0.png" in text
    assert "train/cat/[red]2.png" not in text and "... and 2 more (see the JSON)" in text
    assert _text(label_issues_view(_audit(label_issues=[]))).strip() == "no suspected label errors"
