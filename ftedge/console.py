"""One rich console and progress bar factory for every command."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True)  # progress and logs
results = Console(soft_wrap=True)  # what a command reports (tables, audits) goes to stdout


def make_progress(**kw) -> Progress:
    """Progress bar with a free-text `stats` field (loss, accuracy, images/s)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, **kw)


def literal(name: object) -> str:
    """A user-given name (a class folder, a path) as it may be shown: control characters
    escaped (a newline in a folder name must not forge an output line). Print the result with
    markup=False, or wrap it in rich.text.Text, so "[red]" in a name stays text."""
    text = str(name)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def plain(name: object):
    """`literal(name)` as a rich Text: a table cell that shows markup characters as they are."""
    from rich.text import Text

    return Text(literal(name))


LINE = {"markup": False, "highlight": False, "soft_wrap": True}  # a literal text line


def line(text: str, style: str | None = None) -> tuple[str, dict]:
    """One literal line of a view (no rich markup read from it), in `style`."""
    return text, {**LINE, "style": style}


def print_view(out: Console, view: list[tuple[object, dict]]) -> None:
    """Print what a library returned to show: (renderable, print options) pairs. Libraries
    build views; stages and the CLI print them."""
    for renderable, options in view:
        out.print(renderable, **options)
