"""`ftedge data check`'s and tune's view of a dataset audit: tables and lines that the CLI and
the tune stage print (console.print_view). The audit itself (data/audit.py) only returns
facts; what is said about them lives here, with the stages that print it."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from ftedge.console import line, literal, plain
from ftedge.data.audit import DatasetAudit
from ftedge.data.audit_report import SHOW, leak_warning, rel, small_image_note


def audit_view(audit: DatasetAudit) -> list:
    """The audit as rich tables and lines (a view: the caller prints it, console.print_view)."""
    view: list = []
    has_val = audit.val is not None
    view.append(line(f"Dataset {literal(audit.root)}"))
    table = Table()
    table.add_column("class")
    table.add_column("train", justify="right")
    if has_val:
        table.add_column("val", justify="right")
    for i, name in enumerate(audit.classes):
        row = [plain(name), str(audit.counts("train")[i])]
        if has_val:
            row.append(str(audit.counts("val")[i]))
        table.add_row(*row)
    view.append((table, {}))
    n_train = len(audit.train)
    n_val = len(audit.val) if has_val else 0
    view.append(line(f"{len(audit.classes)} classes, {n_train} train"
                     + (f" + {n_val} val images" if has_val else
                        " images (no val folder: a stratified split will be made)")
                     + (f"; {len(audit.test)} held-out test images" if audit.test is not None
                        else "")))
    view.append(line(f"imbalance (largest/smallest class): {audit.imbalance:.2f}"))
    s = audit.size_summary()
    if s:
        view.append(line(f"image sizes (w x h): min {s['min'][0]}x{s['min'][1]}, median "
                         f"{s['median'][0]}x{s['median'][1]}, max {s['max'][0]}x{s['max'][1]}"))
    if has_val:
        missing = [c for c, n in zip(audit.classes, audit.counts("val")) if n == 0]
        if missing:
            view.append(line(f"warning: val split has no image of: "
                             f"{', '.join(map(literal, missing))}", "yellow"))
    if audit.unusable:
        view.append(line(f"{len(audit.unusable)} file(s) cannot be used and will be skipped:",
                         "yellow"))
        for p, reason in audit.unusable:
            view.append(line(f"  {literal(p)}: {literal(reason)}"))
    else:
        view.append(line("every file is usable"))
    return view + findings_view(audit)


def findings_view(audit) -> list:
    """Duplicates (leaks and label conflicts first), outliers and suspected label errors."""
    view: list = []

    def say(text: str, style: str | None = None) -> None:
        view.append(line(text, style))

    if audit.duplicates is not None:
        note = small_image_note(audit)
        if note:
            say(note)
        dups = sorted(audit.duplicates, key=lambda p: (not p.conflict, not p.leak, str(p.a)))
        kinds = Counter(p.kind for p in dups)
        if not dups:
            say("no duplicate images found")
        else:
            say(f"{len(dups)} duplicate pair(s): "
                + ", ".join(f"{n} {k}" for k, n in kinds.most_common())
                + f"; {sum(p.leak for p in dups)} across splits, "
                f"{sum(p.conflict for p in dups)} with two different labels", "yellow")
            for p in dups[:SHOW]:
                tags = ("LABEL CONFLICT " if p.conflict else "") + ("LEAK " if p.leak else "")
                say(f"  {tags}{p.kind} ({p.bits} bits): {literal(rel(audit, p.a))} ~ "
                    f"{literal(rel(audit, p.b))}")
            if len(dups) > SHOW:
                say(f"  ... and {len(dups) - SHOW} more (--json lists every pair)")
        warn = leak_warning(audit)
        if warn:
            say("warning: " + warn, "yellow")
    if audit.outliers:
        say(f"{len(audit.outliers)} outlier image(s):", "yellow")
        for p, why in audit.outliers[:SHOW]:
            say(f"  {literal(rel(audit, p))}: {why}")
    if audit.label_issues is not None:
        view += label_issues_view(audit)
    return view


def label_issues_view(audit, *, show: int = SHOW, more: str = "--json lists them all") -> list:
    """The suspected label errors, most suspicious first (`show` of them; `more` says where
    the rest are)."""
    view: list = []

    def say(text: str, style: str | None = None) -> None:
        view.append(line(text, style))

    if not audit.label_issues:
        say("no suspected label errors")
        return view
    say(f"{len(audit.label_issues)} suspected label error(s), most suspicious first:", "yellow")
    for i in audit.label_issues[:show]:
        say(f"  {literal(rel(audit, i.path))}: in {literal(i.given)}, looks like "
            f"{literal(i.suggested)} (p(given) {i.quality:.2f})")
    if len(audit.label_issues) > show:
        say(f"  ... and {len(audit.label_issues) - show} more ({more})")
    return view
