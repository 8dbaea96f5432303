"""Shared console helpers for the CLI: rich output on stderr/stdout, JSON output, error tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console

from harmonize.errors import ErrorRecord

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (no colours, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n")


def print_problems(errors: Iterable[ErrorRecord], skipped: Iterable[Any] = ()) -> None:
    """A readable list of skipped items and errors on stderr."""
    skipped = list(skipped)
    errors = list(errors)
    if skipped:
        err_console.print(f"[bold yellow]skipped {len(skipped)}[/]")
    for item in skipped:
        hint = f" [dim](next step: {item.hint})[/]" if item.hint else ""
        err_console.print(f"  [yellow]skipped[/] {item.path}: {item.reason}{hint}",
                          highlight=False, soft_wrap=True)
    for error in errors:
        err_console.print(f"[bold red]error[/] {error}", highlight=False, soft_wrap=True)


def progress_bar(**kwargs: Any):
    """A rich progress bar on stderr (hidden when stderr is not a terminal and CI is set)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        **kwargs,
    )
