"""``harmonize qa`` (report with numbers and pictures) and ``harmonize validate-dicom``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harmonize.console import console, err_console, print_json
from harmonize.errors import HarmonizeError

FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]


def _check_format(format: str) -> None:
    if format not in ("table", "json"):
        err_console.print(f"[bold red]error[/] --format must be table or json, not {format!r}")
        raise typer.Exit(2)


def validate_dicom_command(
    path: Annotated[Path, typer.Argument(help="A DICOM folder (searched recursively) or file.")],
    format: FormatOpt = "table",
) -> None:
    """CT readiness checklist per DICOM series: PASS/FAIL with reasons; exit 1 if any fails."""
    from rich.table import Table

    from harmonize.dicom import validate_dicom

    _check_format(format)
    try:
        report = validate_dicom(path)
    except HarmonizeError as exc:
        err_console.print(f"[bold red]error[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if not report.series:
        err_console.print(f"[bold red]error[/] no DICOM series found under {path} "
                          f"({len(report.skipped)} non-DICOM file(s) seen)", highlight=False)
        raise typer.Exit(2)
    if format == "json":
        print_json(report.to_dict())
    else:
        table = Table(title=f"DICOM readiness: {path}", title_justify="left")
        for col in ("series folder", "series uid", "modality", "slices", "result", "failed checks"):
            table.add_column(col, overflow="fold")
        for series in report.series:
            failed = [c.name for c in series.checks if not c.passed]
            table.add_row(str(series.folder), series.uid or "-", series.modality or "-",
                          str(series.slices),
                          "[bold green]PASS[/]" if series.passed else "[bold red]FAIL[/]",
                          ", ".join(failed) or "-")
        console.print(table)
        for series in report.series:
            for check in series.checks:
                if not check.passed:
                    console.print(f"[bold red]FAIL[/] {series.folder} [{series.uid or '-'}] "
                                  f"{check.name}: {check.detail}", highlight=False)
        for item in report.skipped:
            err_console.print(f"[yellow]skipped[/] {item.path}: {item.reason}", highlight=False)
        passed = sum(s.passed for s in report.series)
        console.print(f"{passed} of {len(report.series)} series PASS", highlight=False)
    if not report.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("validate-dicom")(validate_dicom_command)
