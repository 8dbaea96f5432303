"""Shared console helpers for the CLI: rich output on stderr/stdout, JSON output, error tables."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from harmonize import jsonio
from harmonize.errors import ErrorRecord

if TYPE_CHECKING:
    from rich.progress import Progress

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def plain(text: object) -> str:
    """``text`` safe to embed in a rich markup string: messages start with ``[dataset/case]``,
    which rich would otherwise take for a style tag and silently drop; non-UTF-8 bytes of file
    names are shown as ``\\xHH`` (:func:`harmonize.jsonio.printable`)."""
    return escape(jsonio.printable(text))


def print_error(error: object, *, label: str = "error", style: str = "bold red") -> None:
    """One error (or warning) line on stderr: ``error [dataset/case] message (file: ...). Next step: ..."``."""
    err_console.print(f"[{style}]{label}[/] {plain(error)}", highlight=False)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout (no colours, no wrapping; file names escaped as in
    every JSON file, :mod:`harmonize.jsonio`)."""
    sys.stdout.write(jsonio.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n")


def print_problems(errors: Iterable[ErrorRecord], skipped: Iterable[Any] = ()) -> None:
    """A readable list of skipped items and errors on stderr."""
    skipped = list(skipped)
    errors = list(errors)
    if skipped:
        err_console.print(f"[bold yellow]skipped {len(skipped)}[/]")
    for item in skipped:
        hint = f" [dim](next step: {plain(item.hint)})[/]" if item.hint else ""
        err_console.print(f"  [yellow]skipped[/] {plain(item.path)}: {plain(item.reason)}{hint}",
                          highlight=False, soft_wrap=True)
    for error in errors:
        err_console.print(f"[bold red]error[/] {plain(error)}", highlight=False, soft_wrap=True)


def progress_bar(**kwargs: Any) -> Progress:
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


def hold_folder_lock(ctx: typer.Context, folder: Path) -> None:
    """Hold ``folder``'s write lock (:mod:`harmonize.folder_lock`) until the command ``ctx`` ends;
    raises ``FolderLockedError`` (a :class:`~harmonize.errors.HarmonizeError`: exit 2) if another
    process holds it."""
    from harmonize.folder_lock import folder_lock

    ctx.with_resource(folder_lock(folder))
