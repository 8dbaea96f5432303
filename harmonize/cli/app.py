"""The ``harmonize`` command line. Each command group lives in its own module and registers here."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from harmonize import __version__
from harmonize.cli.console import (
    console,
    err_console,
    hold_folder_lock,
    plain,
    print_error,
    print_json,
    print_problems,
    progress_bar,
)
from harmonize.errors import HarmonizeError, ManifestError, RefusedRecordWarning
from harmonize.gate import TRUSTED_ROOTS_ENV, add_trusted_roots

if TYPE_CHECKING:
    from harmonize.plugin.catalog import Catalog

app = typer.Typer(
    help="Harmonize public medical imaging segmentation datasets: discover cases in their released "
    "layouts, write unified JSONL manifests and patient-level splits, normalize volumes, load "
    "mixed-dataset batches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Modules that add commands: each defines ``register(app: typer.Typer) -> None``.
COMMAND_MODULES: tuple[str, ...] = ("harmonize.cli.demo", "harmonize.cli.run", "harmonize.cli.cache",
                                        "harmonize.cli.qa", "harmonize.cli.export",
                                        "harmonize.cli.imports", "harmonize.cli.structures")

DescriptorOpt = Annotated[
    list[Path] | None,
    typer.Option("--descriptor", help="Extra YAML-only dataset descriptor(s) (file or folder).",
                 exists=True),
]
FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]
CatalogueFormatOpt = Annotated[str, typer.Option("--format", help="table, json or markdown")]


def get_catalog(descriptors: list[Path] | None = None) -> Catalog:
    from harmonize.plugin.catalog import load_catalog

    catalog = load_catalog(descriptors=descriptors or ())
    for error in catalog.errors:
        err_console.print(f"[bold yellow]plugin problem[/] {plain(error)}", highlight=False)
    return catalog


def fail(error: HarmonizeError | str, code: int = 2) -> typer.Exit:
    print_error(error)
    return typer.Exit(code)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
    trust_root: Annotated[list[Path] | None, typer.Option(
        "--trust-root", help="A folder manifests may point into besides their own (repeatable); "
        f"adds to {TRUSTED_ROOTS_ENV}.")] = None,
    extra_root: Annotated[list[str] | None, typer.Option(
        "--extra-root", help="NAME=PATH: a folder a YAML-only dataset names in its 'roots' "
        "(labels and images apart; repeatable); adds to HARMONIZE_ROOTS.")] = None,
) -> None:
    if trust_root:
        add_trusted_roots(trust_root)
    if extra_root:
        from harmonize.plugin.layout_roots import add_extra_roots

        try:
            add_extra_roots(extra_root)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--extra-root") from None
    if version:
        console.print(f"harmonize-med {__version__}")
        raise typer.Exit()


@app.command("plugins")
def plugins_command(
    descriptor: DescriptorOpt = None,
    format: CatalogueFormatOpt = "table",
    labels: Annotated[bool, typer.Option(
        "--labels", help="Show every dataset's label names instead of the compact table.")] = False,
    sat_ds: Annotated[bool, typer.Option(
        "--sat-ds", help="Show SAT-DS's 72 datasets and the ids that serve each.")] = False,
) -> None:
    """List every registered dataset: one line each (id, modality, cases, number of labels,
    source, licence); --labels lists the label names, --sat-ds SAT-DS's datasets and the ids
    serving them, --format json gives every field."""
    from harmonize.cli.catalogue import catalogue_rows, show_catalogue

    catalog = get_catalog(descriptor)
    rows, broken = catalogue_rows(catalog)
    for exc in broken:
        print_error(exc)
    show_catalogue(console, rows, [*catalog.errors, *broken], format=format, labels=labels,
                   sat_ds=sat_ds)
    if catalog.errors or broken:
        raise typer.Exit(1)


@app.command("discover")
def discover_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset id (see `harmonize plugins`).")],
    root: Annotated[Path, typer.Option("--root", "-r", help="Folder of the dataset as released.")],
    descriptor: DescriptorOpt = None,
    format: FormatOpt = "table",
) -> None:
    """List the cases found under --root and everything skipped there, with the reason."""
    from harmonize.cli.roi_table import case_rois, roi_summary, roi_table
    from harmonize.plugin.discovery import discover

    try:
        plugin = get_catalog(descriptor).get(dataset)
    except HarmonizeError as exc:
        raise fail(exc) from None
    found = discover(plugin, root)
    rois = case_rois(found.cases)
    segments = _seg_segments(plugin, found.cases)
    if format == "json":
        print_json({
            "dataset": dataset, "root": str(root),
            **({"dicom_seg_segments": segments} if segments else {}),
            "cases": [{"case_id": c.case_id, "patient_id": c.patient_id,
                       "images": [str(p) for p in c.images],
                       "label": str(c.label) if c.label else None,
                       "official_split": c.official_split,
                       **({"rois": rois[c.case_id]} if c.case_id in rois else {})}
                      for c in found.cases],
            "roi_names": roi_summary(rois),
            "skipped": [s.to_dict() for s in found.skipped],
            "errors": [e.to_dict() for e in found.errors],
        })
    else:
        from rich.table import Table

        table = Table(title=f"{dataset}: {len(found.cases)} cases", title_justify="left")
        for col in ("case", "patient", "images", "label", "official split"):
            table.add_column(col, overflow="fold")
        def short(path: Path) -> str:
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                return str(path)

        for c in found.cases:
            table.add_row(c.case_id, c.patient_id, "\n".join(short(p) for p in c.images),
                          short(c.label) if c.label else "-", c.official_split or "-")
        console.print(table)
        if rois:
            console.print(roi_table(roi_summary(rois)))
        if segments:
            seg_table = Table(title="DICOM-SEG segments (label, codes -> canonical name)",
                              title_justify="left")
            for col in ("label", "codes", "maps to", "files"):
                seg_table.add_column(col, overflow="fold")
            for s in segments:
                seg_table.add_row(s["label"], s["codes"] or "-", f"{s['name']} ({s['matched_by']})"
                                  if s["name"] else f"UNMAPPED: {s['reason']}", str(s["files"]))
            console.print(seg_table)
        print_problems(found.errors, found.skipped)
    if found.errors:
        raise typer.Exit(1)


def _seg_segments(plugin: Any, cases: list[Any]) -> list[dict[str, Any]]:
    """The DICOM-SEG segments of the cases whose label the core reads as a SEG (none: [])."""
    from harmonize.plugin.dataset import DatasetPlugin
    from harmonize.read.dicom_seg import segment_summary

    if type(plugin).read_label is not DatasetPlugin.read_label:
        return []  # the plugin reads its labels itself
    labels = [c.label for c in cases  # only names a DICOM file may have; headers decide
              if c.label is not None and c.label.suffix.lower() in ("", ".dcm")]
    if not labels:
        return []
    from harmonize.labels.roi_names import RoiMatcher

    return segment_summary(labels, list(plugin.descriptor.classes),
                           RoiMatcher.from_descriptor(plugin.descriptor))


@app.command("manifest")
def manifest_command(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset id.")],
    root: Annotated[Path, typer.Option("--root", "-r", help="Folder of the dataset as released.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for <dataset>.jsonl and splits.json.")],
    seed: Annotated[int, typer.Option(help="Seed of the split hash.")] = 0,
    ratios: Annotated[tuple[float, float, float], typer.Option(help="train val test ratios.")] = (0.7, 0.1, 0.2),
    descriptor: DescriptorOpt = None,
    format: FormatOpt = "table",
    allow_shrink: Annotated[bool, typer.Option("--allow-shrink", help="Replace OUT/<dataset>.jsonl even if cases it lists are missing now (default: keep it, exit 1 and list them).")] = False,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Processes describing cases (each reads its case in full).")] = 1,
) -> None:
    """Write OUT/<dataset>.jsonl describing the source files, and OUT/splits.json."""
    from harmonize.manifest.build import build_manifest
    from harmonize.manifest.splits import check_ratios, split_counts
    from harmonize.plugin.discovery import discover

    try:
        check_ratios(ratios)
        plugin = get_catalog(descriptor).get(dataset)
        hold_folder_lock(ctx, out)
    except HarmonizeError as exc:
        raise fail(exc) from None
    found = discover(plugin, root)
    try:
        with progress_bar(transient=True) as bar:
            task = bar.add_task(dataset, total=len(found.cases))
            result = build_manifest(plugin, found, out, seed=seed, ratios=ratios,
                                    progress=lambda: bar.advance(task),
                                    allow_shrink=allow_shrink, workers=workers)
    except HarmonizeError as exc:  # e.g. another manifest in OUT cannot be read
        raise fail(exc) from None
    counts = split_counts(result.records)
    summary = {
        "dataset": dataset, "manifest": str(result.path) if result.path else None,
        "cases": len(result.records),
        "patients": len({r.patient_id for r in result.records}), "splits": dict(counts),
        "skipped": [s.to_dict() for s in found.skipped],
        "errors": [e.to_dict() for e in result.errors], "warnings": result.warnings,
        "kept": result.kept.to_dict() if result.kept else None,
    }
    if format == "json":
        print_json(summary)
    else:
        print_problems(result.errors, found.skipped)
        for warning in result.warnings:
            err_console.print(f"[yellow]warning[/] {plain(warning)}", highlight=False)
        if result.kept is not None:
            for line in result.kept.lines():
                err_console.print(line, highlight=False, markup=False)
        if result.path is None:
            err_console.print(
                f"[bold red]not written[/]: {plain(out)}/{dataset}.jsonl and splits.json were "
                "left as they were", highlight=False)
        else:
            console.print(
                f"[bold green]wrote[/] {plain(result.path)}: {summary['cases']} cases, "
                f"{summary['patients']} patients, splits {json.dumps(summary['splits'])}; "
                f"{len(found.skipped)} skipped, {len(result.errors)} errors", highlight=False,
            )
    if result.errors:
        raise typer.Exit(1)


@app.command("validate")
def validate_command(
    manifests: Annotated[list[Path], typer.Argument(help="Manifest files (.jsonl) or folders.", exists=True)],
    format: FormatOpt = "table",
) -> None:
    """Check manifests against the JSON Schema, their ids and paths against the gate (paths
    inside the manifest's folder or a trusted root), and splits for leakage across all of them."""
    from harmonize.manifest.build import expand_manifests, read_manifest, validate_manifest
    from harmonize.manifest.splits import find_leaks

    problems: list[str] = []
    records = []
    for path in expand_manifests(manifests):
        file_problems = validate_manifest(path)
        problems.extend(file_problems)
        refused: list[ManifestError] = []
        try:
            read = read_manifest(path, refused=refused)
        except HarmonizeError as exc:
            if not file_problems:  # else the schema check has reported the same line already
                problems.append(str(exc))
            continue
        problems.extend(str(exc) for exc in refused)
        records.extend(read)
    leaks = [str(leak) for leak in find_leaks(records)]
    if format == "json":
        print_json({"records": len(records), "schema_problems": problems, "leaks": leaks})
    else:
        for line in problems + leaks:
            err_console.print(f"[bold red]FAIL[/] {plain(line)}", highlight=False)
        status = "[bold green]PASS[/]" if not (problems or leaks) else "[bold red]FAIL[/]"
        console.print(f"{status} {len(records)} records, {len(problems)} schema problems, "
                      f"{len(leaks)} split leaks")
    if problems or leaks:
        raise typer.Exit(1)


@app.command("duplicates")
def duplicates_command(
    manifests: Annotated[list[Path], typer.Argument(help="Manifest files (.jsonl) or folders.", exists=True)],
    format: FormatOpt = "table",
) -> None:
    """Report the same image in several cases or datasets (content fingerprints) and patients
    linked across datasets; exit 1 if any such group sits in more than one split."""
    from harmonize.manifest.build import expand_manifests, read_manifest
    from harmonize.manifest.duplicates import find_duplicates

    files = expand_manifests(manifests)
    try:
        records = [r for path in files for r in read_manifest(path)]
    except HarmonizeError as exc:
        raise fail(exc) from None
    report = find_duplicates(records)
    if format == "json":
        print_json({"groups": [g.to_dict() for g in report.groups],
                    "leaks": len(report.leaks), "without_fingerprint": report.without_fingerprint})
    else:
        for group in report.groups:
            status = "[bold red]LEAK[/]" if group.leaks else "[green]ok[/]"
            cases = ", ".join(f"{m.dataset}/{m.case_id} ({m.split or '-'})" for m in group.members)
            console.print(f"{status} same {group.kind} {plain(group.key[:16])}: {plain(cases)}",
                          highlight=False)
        if report.without_fingerprint:
            err_console.print(
                f"[yellow]{len(report.without_fingerprint)} records have no fingerprint[/] "
                "(manifests made without reading images); regenerate them to compare content"
            )
        console.print(f"{len(records)} records, {len(report.groups)} duplicate groups, "
                      f"{len(report.leaks)} across splits")
    if report.leaks:
        raise typer.Exit(1)


def _register_command_modules() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


def _reflow(text: str) -> str:
    """Docstring paragraphs as single lines, so help text wraps to the terminal, not the source."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


def _reflow_help(typer_app: typer.Typer) -> None:
    for command in typer_app.registered_commands:
        if command.help is None and command.callback is not None and command.callback.__doc__:
            command.help = _reflow(command.callback.__doc__)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _reflow_help(group.typer_instance)


_register_command_modules()
_reflow_help(app)


def main() -> None:
    """Run the CLI. Manifest records refused by the id gate are printed as they are met, and
    a command that would have succeeded exits 1 when any record was refused."""
    refused: set[str] = set()
    show = warnings.showwarning

    def show_refused(message: Warning | str, category: type[Warning], *args: Any, **kw: Any
                     ) -> None:
        if issubclass(category, RefusedRecordWarning):
            if str(message) not in refused:  # a command may read a manifest twice
                refused.add(str(message))
                print_error(message, label="refused")
        else:
            show(message, category, *args, **kw)

    warnings.showwarning = show_refused
    warnings.simplefilter("always", RefusedRecordWarning)
    # a file name that is not UTF-8 never crashes output: its bytes print as \xHH
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        app()
    except SystemExit as exit_:
        if refused and exit_.code in (0, None):
            print_error(f"{len(refused)} manifest record(s) refused (see above); the rest was "
                        "processed", label="FAIL")
            raise SystemExit(1) from None
        raise
    finally:
        warnings.showwarning = show
