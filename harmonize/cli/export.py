"""``harmonize export slices|verify|nnunet|monai|sat|dicom-seg|parquet`` and
``harmonize import sat``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from harmonize.cli.console import (
    console,
    hold_folder_lock,
    print_error,
    print_json,
    print_problems,
    progress_bar,
)
from harmonize.errors import ErrorRecord, HarmonizeError
from harmonize.yamlio import load_registry

if TYPE_CHECKING:
    from rich.progress import Progress

def split_mode_help() -> str:
    """``--split-mode`` help, from the registry file as it is (the export, which validates the
    modes, imports numpy; ``harmonize --help`` must start fast)."""
    modes = load_registry("presets.yaml").get("slice_split_modes") or {}
    seeded = "; ".join(
        f"{name} ({entry.get('summary', '')}"
        + (f"; default for {', '.join(entry['datasets'])}" if entry.get("datasets") else "") + ")"
        for name, entry in modes.items())
    return ("default (a dataset's published split where registry/presets.yaml names one, else "
            "the manifest's), manifest (the records' splits) or a seeded case split: "
            + seeded + ".")


_SPLIT_MODE_HELP = split_mode_help()

ManifestOpt = Annotated[
    list[Path],
    typer.Option("--manifest", "-m", help="Manifest (<dataset>.jsonl) from `harmonize manifest` "
                 "or `harmonize run`; repeat for several.", exists=True, dir_okay=False),
]
FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-w", help="Parallel worker processes.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Show a progress bar on stderr.")]
BaseDirOpt = Annotated[
    Path | None,
    typer.Option("--base-dir", help="Write paths relative to this folder (default: absolute)."),
]


class LazyProgress:
    """A progress bar started on first use, so worker processes fork before its thread exists."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self.bar: Progress | None = None

    def __call__(self, total: int) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        self.bar = progress_bar(transient=True)
        self.bar.__enter__()
        task = self.bar.add_task(self.label, total=total)
        return lambda: self.bar.advance(task)  # type: ignore[union-attr]

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _fail(error: HarmonizeError | str) -> typer.Exit:
    print_error(error)
    return typer.Exit(2)


def _report(summary: dict[str, Any], errors: list[ErrorRecord], warnings: list[str],
            format: str, line: str) -> None:
    if format == "json":
        print_json({**summary, "errors": [e.to_dict() for e in errors], "warnings": warnings})
    else:
        print_problems(errors)
        for warning in warnings:
            print_error(warning, label="warning", style="yellow")
        console.print(line, highlight=False)
    if errors:
        raise typer.Exit(1)


export_app = typer.Typer(help="Export manifests to 2D PNG slices, nnU-Net, MONAI, SAT-DS, "
                         "DICOM-SEG or one Parquet table.",
                         no_args_is_help=True)


@export_app.command("slices")
def slices_command(
    ctx: typer.Context,
    manifest: ManifestOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    window: Annotated[tuple[float, float], typer.Option(
        help="CT window in HU, mapped to 0..65535.", metavar="LO HI")] = (-200.0, 300.0),
    split_mode: Annotated[str, typer.Option(
        help=_SPLIT_MODE_HELP)] = "default",
    channel: Annotated[str, typer.Option(help="Channel of multi-channel images (index or name).")] = "0",
    percentiles: Annotated[tuple[float, float], typer.Option(
        help="Window of non-CT images: these percentiles of each case.", metavar="LO HI")] = (0.5, 99.5),
    skip_existing: Annotated[bool, typer.Option(
        "--skip-existing", help="Resume: keep cases already exported with the same inputs.")] = False,
    workers: WorkersOpt = 1,
    progress: ProgressOpt = True,
    format: FormatOpt = "table",
) -> None:
    """Axial PNG slices in the published 2D slice layout (16-bit images, 8-bit masks, colour masks and
    overlays with contours), splits, per-slice CSVs and README.md; RAS+, no resampling. Check
    with `harmonize export verify`."""
    from harmonize.export.slices import SliceOptions, export_slices

    bar = LazyProgress("slices", progress)
    try:
        hold_folder_lock(ctx, out)
        options = SliceOptions(window=window, percentiles=percentiles,
                               channel=int(channel) if channel.isdigit() else channel)
        result = export_slices(manifest, out, options, split_mode=split_mode,
                               skip_existing=skip_existing, workers=workers, progress=bar)
    except HarmonizeError as exc:
        raise _fail(exc) from None
    finally:
        bar.close()
    slices = sum(info["slices"] for info in result.cases.values())
    counts = {s: len(k) for s, k in result.splits.items()}
    _report({"out": str(out), "cases": len(result.cases), "slices": slices, "splits": counts,
             "split_mode": result.split_mode, "resumed": len(result.skipped),
             "removed_stale": result.removed},
            result.errors, result.warnings, format,
            f"[bold green]wrote[/] {out}: {len(result.cases)} cases, {slices} slices, splits "
            f"{counts} ({result.split_mode}), {len(result.skipped)} resumed; {len(result.errors)} errors. "
            f"Check it: harmonize export verify --out {out}")


@export_app.command("verify")
def verify_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder written by `export slices`.",
                                      exists=True, file_okay=False)],
    manifest: Annotated[list[Path] | None, typer.Option(
        "--manifest", "-m", help="Manifest(s) for the pixel round trip (default: the ones "
        "recorded in the export).", exists=True, dir_okay=False)] = None,
    progress: ProgressOpt = True,
    format: FormatOpt = "table",
) -> None:
    """Check a slice export point by point and print PASS/FAIL per point."""
    from harmonize.export.verify import verify_export

    bar = LazyProgress("verify", progress)
    try:
        report = verify_export(out, manifest, progress=bar)
    except HarmonizeError as exc:
        raise _fail(exc) from None
    finally:
        bar.close()
    if format == "json":
        print_json(report.to_dict())
    else:
        from rich.table import Table

        table = Table(title=f"verify {out}", title_justify="left")
        for col in ("point", "status", "checked", "problems", "first problem"):
            table.add_column(col, overflow="fold")
        for point in report.points.values():
            status = "[green]PASS[/]" if point.passed else "[bold red]FAIL[/]"
            table.add_row(point.name, status, str(point.checked), str(len(point.problems)),
                          point.problems[0] if point.problems else "")
        console.print(table)
        console.print("[bold green]PASS[/]" if report.ok else "[bold red]FAIL[/]")
    if not report.ok:
        raise typer.Exit(1)


@export_app.command("nnunet")
def nnunet_command(
    ctx: typer.Context,
    manifest: ManifestOpt,
    dataset_id: Annotated[int, typer.Option("--dataset-id", help="nnU-Net dataset id (1-999).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="nnUNet_raw folder.")],
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the dataset ids).")] = None,
    regions: Annotated[bool, typer.Option(
        "--regions", help="Add merged classes as nnU-Net region tuples.")] = False,
    channels: Annotated[str | None, typer.Option(
        help="Comma-separated channels to export, in this order (e.g. T1,T2; default: every "
             "channel, canonical order; every dataset must have them).")] = None,
    workers: WorkersOpt = 1,
    progress: ProgressOpt = True,
    format: FormatOpt = "table",
) -> None:
    """nnU-Net v2 raw dataset: imagesTr/labelsTr/imagesTs, dataset.json, splits_final.json."""
    from harmonize.export import load_entries
    from harmonize.export.nnunet import dataset_folder, export_nnunet

    bar = LazyProgress("nnU-Net", progress)
    try:
        if name is None:
            name = "_".join(sorted({e.dataset for e in load_entries(manifest)})).replace(".", "_")
        hold_folder_lock(ctx, out / dataset_folder(dataset_id, name))  # other ids may run at once
        result = export_nnunet(manifest, out, dataset_id=dataset_id, name=name, regions=regions,
                               channels=[c.strip() for c in channels.split(",")] if channels
                               else None, workers=workers, progress=bar)
    except HarmonizeError as exc:
        raise _fail(exc) from None
    finally:
        bar.close()
    _report({"folder": str(result.folder), "training": len(result.training),
             "test": len(result.test), "labels": result.dataset_json.get("labels"),
             "splits_final": result.splits is not None,
             "folds": len(result.splits) if result.splits else 0},
            result.errors, result.warnings, format,
            f"[bold green]wrote[/] {result.folder}: {len(result.training)} training, "
            f"{len(result.test)} test cases; labels {result.dataset_json.get('labels')}."
            + (f" splits_final.json has {len(result.splits)} fold(s); nnU-Net's planner copies "
               f"it to nnUNet_preprocessed/{result.folder.name}/ (train with nnUNetv2_train "
               f"{dataset_id} 3d_fullres 0)." if result.splits else ""))


@export_app.command("monai")
def monai_command(
    manifest: ManifestOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Datalist file (.json).")],
    base_dir: BaseDirOpt = None,
    channels: Annotated[str | None, typer.Option(
        help="Comma-separated channels every item gets, in this order (default: each item's "
             "own channels, canonical order).")] = None,
    format: FormatOpt = "table",
) -> None:
    """MONAI Decathlon-style datalist (training/validation/testing): one global label table,
    masks remapped to it (written beside the datalist when their values differ), images as is."""
    from harmonize.export.monai import export_monai

    try:
        doc = export_monai(manifest, out, base_dir=base_dir,
                           channels=[c.strip() for c in channels.split(",")] if channels else None)
    except HarmonizeError as exc:
        raise _fail(exc) from None
    counts = {k: len(doc[k]) for k in ("training", "validation", "testing")}
    folder = (out.parent / f"{out.stem}_labels").resolve()
    remapped = sum(1 for k in counts for item in doc[k] if "label" in item and (
        Path(base_dir or "/") / item["label"]).resolve().parent == folder)
    from harmonize.export import LabelScheme
    from harmonize.export.nnunet import shared_voxel_warnings

    shared = shared_voxel_warnings(LabelScheme(shared=doc.get("shared_voxels", {})))
    _report({"out": str(out), **counts, "labels": doc["labels"], "remapped_masks": remapped},
            [], shared, format,
            f"[bold green]wrote[/] {out}: {counts}, {len(doc['labels']) - 1} labels, "
            f"{remapped} mask(s) remapped to {folder}; load it with "
            f"monai.data.load_decathlon_datalist({str(out)!r}, data_list_key='training'"
            + (f", base_dir={str(base_dir)!r})" if base_dir else ")"))


@export_app.command("sat")
def sat_command(
    ctx: typer.Context,
    manifest: ManifestOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (jsonl/, split_json/).")],
    sat_name: Annotated[list[str] | None, typer.Option(
        "--sat-name", help="Dataset name in SAT-DS, as ID=NAME (e.g. my-dataset=MyDataset).")] = None,
    base_dir: Annotated[Path | None, typer.Option(
        "--base-dir", help="Write paths relative to this folder (default: --out, as SAT-DS's "
        "are relative to its root).")] = None,
    val_to: Annotated[str, typer.Option(help="SAT-DS has no val split: put our val in train "
                                        "or test.")] = "train",
    progress: ProgressOpt = True,
    format: FormatOpt = "table",
) -> None:
    """SAT-DS JSONL (one line per channel) and split JSON per SAT-DS dataset: SAT-DS's names,
    label lists and mask layouts for the datasets SAT-DS has (descriptor key sat_ds)."""
    from harmonize.export.sat import export_sat

    names = {}
    for item in sat_name or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise _fail(f"--sat-name must be ID=NAME, got {item!r}")
        names[key] = value
    bar = LazyProgress("SAT-DS", progress)
    try:
        hold_folder_lock(ctx, out)
        result = export_sat(manifest, out, names=names, base_dir=base_dir, val_to=val_to,
                            progress=bar)
    except HarmonizeError as exc:
        raise _fail(exc) from None
    finally:
        bar.close()
    more = f" and {len(result.unlabelled) - 5} more" if len(result.unlabelled) > 5 else ""
    warnings = [f"{len(result.unlabelled)} case(s) without a mask not exported "
                f"(SAT-DS samples need one): {', '.join(result.unlabelled[:5])}{more}"
                ] if result.unlabelled else []
    from harmonize.labels.sat_ds import load_sat_ds

    unknown = sorted(set(result.jsonl) - set(load_sat_ds()))
    if unknown:
        warnings.append(f"SAT-DS's loader.py has no Loader_Wrapper method for {unknown}: "
                        "add one (most read label[i] as mask value i + 1), or name the dataset "
                        "with --sat-name ID=NAME")
    warnings += result.notes[:20] + ([f"... and {len(result.notes) - 20} more (--format json)"]
                                     if len(result.notes) > 20 else [])
    _report({"out": str(out), "lines": result.lines,
             "jsonl": {k: str(v) for k, v in result.jsonl.items()},
             "split_json": {k: str(v) for k, v in result.split_json.items()},
             "notes": result.notes},
            result.errors, warnings, format,
            f"[bold green]wrote[/] {result.lines} lines: "
            + ", ".join(str(p) for p in result.jsonl.values()))


@export_app.command("dicom-seg")
def dicom_seg_command(
    ctx: typer.Context,
    manifest: ManifestOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (<case>.seg.dcm).")],
    case: Annotated[list[str] | None, typer.Option(
        "--case", help="Export only this case id; repeat for several.")] = None,
    workers: WorkersOpt = 1,
    progress: ProgressOpt = True,
    format: FormatOpt = "table",
) -> None:
    """DICOM-SEG of each case's mask referencing its SOURCE DICOM series (source manifests from
    `harmonize manifest` only; coded segments from the vocabulary; needs the dicom extra)."""
    from harmonize.export.dicom_seg import export_dicom_seg

    bar = LazyProgress("DICOM-SEG", progress)
    try:
        hold_folder_lock(ctx, out)
        result = export_dicom_seg(manifest, out, cases=case, workers=workers, progress=bar)
    except HarmonizeError as exc:
        raise _fail(exc) from None
    finally:
        bar.close()
    size = sum(info["bytes"] for info in result.cases.values())
    _report({"out": str(out), "cases": result.cases}, result.errors, [], format,
            f"[bold green]wrote[/] {len(result.cases)} DICOM-SEG file(s) to {out} "
            f"({size / 1e6:.2f} MB); {len(result.errors)} errors")


@export_app.command("parquet")
def parquet_command(
    ctx: typer.Context,
    manifests: Annotated[list[Path], typer.Argument(
        help="Manifest files (.jsonl) or folders of manifests.", exists=True)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet file to write (.parquet).")],
    format: FormatOpt = "table",
) -> None:
    """One Parquet table of every record (schema v3 columns + manifest), paths relative to the
    table's folder; needs the `table` extra (pyarrow)."""
    from harmonize.export.parquet import export_parquet

    try:
        hold_folder_lock(ctx, out.resolve().parent)
        result = export_parquet(manifests, out)
    except HarmonizeError as exc:
        raise _fail(exc) from None
    _report({"out": str(result.path), "rows": result.rows, "datasets": result.datasets,
             "bytes": result.bytes}, [], [], format,
            f"[bold green]wrote[/] {result.path}: {result.rows} rows of "
            f"{len(result.datasets)} dataset(s), {result.bytes} bytes")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
