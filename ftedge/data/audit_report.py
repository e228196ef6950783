"""The audit's findings as console text: duplicates and leaks, outliers, label issues."""

from __future__ import annotations

from collections import Counter

SHOW = 20  # rows of each list printed; --json has them all


def _rel(audit, path) -> str:
    try:
        return str(path.relative_to(audit.root))
    except ValueError:
        return str(path)


def leak_warning(audit) -> str | None:
    """One line for every split that shows pictures of train, or None."""
    parts = [f"{len(audit.leaked(s))} {s} image(s)" for s in ("val", "test") if audit.leaked(s)]
    if not parts:
        return None
    return (f"{' and '.join(parts)} also appear in train (identical or near-duplicate): "
            "their scores measure memory, not generalisation")


def small_image_note(audit) -> str | None:
    """One line when images were too small for the near-duplicate search, or None."""
    if not audit.too_small_to_hash or audit.duplicates is None:
        return None
    from ftedge.data.duplicates import MIN_HASH_SIDE

    n, total = audit.too_small_to_hash, len(audit.sizes)
    return (f"near-duplicates not searched among {'all ' if n == total else ''}{n} image(s) "
            f"under {MIN_HASH_SIDE} px on the short side (too small for a perceptual hash to "
            "tell a copy from a look-alike); identical files are still found")


def print_findings(audit, console) -> None:
    """Duplicates (leaks and label conflicts first), outliers and suspected label errors."""
    from ftedge.console import literal

    def line(text: str, style: str | None = None) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True, style=style)

    if audit.duplicates is not None:
        note = small_image_note(audit)
        if note:
            line(note)
        dups = sorted(audit.duplicates, key=lambda p: (not p.conflict, not p.leak, str(p.a)))
        kinds = Counter(p.kind for p in dups)
        if not dups:
            line("no duplicate images found")
        else:
            line(f"{len(dups)} duplicate pair(s): "
                 + ", ".join(f"{n} {k}" for k, n in kinds.most_common())
                 + f"; {sum(p.leak for p in dups)} across splits, "
                 f"{sum(p.conflict for p in dups)} with two different labels", "yellow")
            for p in dups[:SHOW]:
                tags = ("LABEL CONFLICT " if p.conflict else "") + ("LEAK " if p.leak else "")
                line(f"  {tags}{p.kind} ({p.bits} bits): {literal(_rel(audit, p.a))} ~ "
                     f"{literal(_rel(audit, p.b))}")
            if len(dups) > SHOW:
                line(f"  ... and {len(dups) - SHOW} more (--json lists every pair)")
        warn = leak_warning(audit)
        if warn:
            line("warning: " + warn, "yellow")
    if audit.outliers:
        line(f"{len(audit.outliers)} outlier image(s):", "yellow")
        for p, why in audit.outliers[:SHOW]:
            line(f"  {literal(_rel(audit, p))}: {why}")
    if audit.label_issues is not None:
        print_label_issues(audit, console)


def print_label_issues(audit, console, *, show: int = SHOW,
                       more: str = "--json lists them all") -> None:
    """The suspected label errors, most suspicious first (`show` of them; `more` says where
    the rest are)."""
    from ftedge.console import literal

    def line(text: str, style: str | None = None) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True, style=style)

    if not audit.label_issues:
        line("no suspected label errors")
        return
    line(f"{len(audit.label_issues)} suspected label error(s), most suspicious first:", "yellow")
    for i in audit.label_issues[:show]:
        line(f"  {literal(_rel(audit, i.path))}: in {literal(i.given)}, looks like "
             f"{literal(i.suggested)} (p(given) {i.quality:.2f})")
    if len(audit.label_issues) > show:
        line(f"  ... and {len(audit.label_issues) - show} more ({more})")
