"""``harmonize qa`` (report with numbers and pictures) and ``harmonize validate-dicom``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harmonize.cli.console import console, err_console, print_error, print_json, progress_bar
from harmonize.errors import HarmonizeError

#: summary keys ``--format json`` prints (qa.json holds every number)
_PRINTED = ("cases", "patients", "labelled_cases", "readable_cases", "flagged_cases", "flags",
            "labels", "datasets", "duplicate_case_ids", "normalized", "modality")
FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]


def _check_format(format: str) -> None:
    if format not in ("table", "json"):
        err_console.print(f"[bold red]error[/] --format must be table or json, not {format!r}")
        raise typer.Exit(2)


def qa_command(
    manifest: Annotated[list[Path], typer.Option("--manifest", "-m", help="Manifest (.jsonl); repeat "
                                                 "for several.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (index.html, qa.json, "
                                      "PNGs).")],
    montage_cases: Annotated[int, typer.Option(help="Cases per dataset in the montage.", min=1)] = 4,
    montage_classes: Annotated[int, typer.Option(
        help="Classes drawn per montage case (each through its largest component).", min=1)] = 32,
    format: FormatOpt = "table",
) -> None:
    """QA report: counts, geometry/intensity histograms, class tables overall and per split,
    foreground and per-class intensity (HU for CT), components per class, flagged cases, and
    montages through each class's largest component.

    Exit status 1 when a case cannot be read (flags alone do not fail the command).
    """
    from rich.table import Table

    from harmonize.qa.report import write_report
    from harmonize.qa.summary import collect_qa

    _check_format(format)
    try:
        with progress_bar(transient=True) as bar:
            task = bar.add_task("qa", total=None)
            report = collect_qa(manifest, montage_cases=montage_cases,
                                montage_classes=montage_classes,
                                on_total=lambda n: bar.update(task, total=n),
                                progress=lambda: bar.advance(task))
            bar.update(task, description="qa: charts")
            files = write_report(report, out)
    except HarmonizeError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    unreadable = [f for f in report.flags if f["code"] == "unreadable"]
    if format == "json":
        print_json({"out": str(out), "index": str(out / files["index"]),
                    "overall": {k: v for k, v in report.overall.items()
                                if k in _PRINTED},
                    "datasets": {d: {k: v for k, v in s.items()
                                     if k in _PRINTED}
                                 for d, s in report.datasets.items()},
                    "flags": report.flags})
    else:
        table = Table(title=f"QA -> {out / files['index']}", title_justify="left")
        for col in ("dataset", "cases", "labelled", "readable", "flagged", "flags"):
            table.add_column(col, overflow="fold")
        summaries = [*report.datasets.items(), ("overall", report.overall)]
        for name, s in summaries:
            table.add_row(name, str(s["cases"]), str(s["labelled_cases"]), str(s["readable_cases"]),
                          str(s["flagged_cases"]),
                          ", ".join(f"{k} {v}" for k, v in s["flags"].items()) or "-")
        console.print(table)
        for flag in report.flags:
            style = "bold red" if flag["code"] == "unreadable" else "yellow"
            console.print(f"[{style}]{flag['code']}[/] {flag['dataset']}/{flag['case_id']}: "
                          f"{flag['message']}", highlight=False)
    if unreadable:
        raise typer.Exit(1)


def validate_dicom_command(
    path: Annotated[Path, typer.Argument(help="A DICOM folder (searched recursively) or file.")],
    format: FormatOpt = "table",
) -> None:
    """CT readiness checklist per DICOM series: PASS/FAIL with reasons; exit 1 if any fails."""
    from rich.table import Table

    from harmonize.qa.dicom_checklist import SeriesReport, validate_dicom

    _check_format(format)
    try:
        report = validate_dicom(path)
    except HarmonizeError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    if not report.series:
        err_console.print(f"[bold red]error[/] no DICOM series found under {path} "
                          f"({len(report.skipped)} non-DICOM file(s) seen)", highlight=False)
        raise typer.Exit(2)
    if format == "json":
        print_json(report.to_dict())
    else:
        def where(series: SeriesReport) -> str:
            try:
                folder = series.folder.relative_to(path).as_posix() if path.is_dir() else ""
            except ValueError:
                folder = str(series.folder)
            tail = f"...{series.uid[-8:]}" if series.uid else "no uid"
            return f"{folder or '.'} #{series.number or '-'} ({tail})"

        table = Table(title=f"DICOM readiness under {path} (--format json for every check)",
                      title_justify="left")
        for col in ("series (folder #number (uid))", "modality", "slices", "result",
                    "failed checks"):
            table.add_column(col, overflow="fold")
        for series in report.series:
            failed = [c.name for c in series.checks if not c.passed]
            table.add_row(where(series), series.modality or "-", str(series.slices),
                          "[bold green]PASS[/]" if series.passed else "[bold red]FAIL[/]",
                          ", ".join(failed) or "-")
        console.print(table)
        for series in report.series:
            for check in series.checks:
                if not check.passed:
                    console.print(f"[bold red]FAIL[/] {where(series)} {check.name}: "
                                  f"{check.detail}", highlight=False)
        for item in report.skipped:
            err_console.print(f"[yellow]skipped[/] {item.path}: {item.reason}", highlight=False)
        passed = sum(s.passed for s in report.series)
        console.print(f"{passed} of {len(report.series)} series PASS", highlight=False)
    if not report.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("qa")(qa_command)
    app.command("validate-dicom")(validate_dicom_command)
