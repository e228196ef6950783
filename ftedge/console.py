"""One rich console and progress bar factory for every command."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True)


def make_progress(**kw) -> Progress:
    """Progress bar with a free-text `stats` field (loss, accuracy, images/s)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, **kw)
