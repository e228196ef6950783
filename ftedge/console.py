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
