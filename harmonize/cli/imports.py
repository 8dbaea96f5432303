"""``harmonize import sat``: another tool's dataset list as a harmonize manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harmonize.cli.console import hold_folder_lock, print_problems
from harmonize.cli.export import FormatOpt, _fail, _report
from harmonize.errors import HarmonizeError

import_app = typer.Typer(help="Import other tools' dataset lists as harmonize manifests.",
                         no_args_is_help=True)


@import_app.command("sat")
def import_sat_command(
    ctx: typer.Context,
    jsonl: Annotated[Path, typer.Option("--jsonl", help="A SAT-DS JSONL (data/jsonl/<name>.jsonl).",
                                        exists=True, dir_okay=False)],
    dataset_id: Annotated[str, typer.Option("--dataset-id", help="Our dataset id (lowercase).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <id>.jsonl and splits.json.")],
    labels_from: Annotated[Path | None, typer.Option(
        "--labels-from", help="Descriptor YAML (our format) giving the masks' values and merges.",
        exists=True, dir_okay=False)] = None,
    base_dir: Annotated[Path | None, typer.Option(
        "--base-dir", help="Folder the JSONL's relative paths start from (default: the SAT-DS "
        "root for data/jsonl/X.jsonl, the export folder for <out>/jsonl/X.jsonl, else here).")
        ] = None,
    split_json: Annotated[Path | None, typer.Option(
        "--split-json", help="SAT-DS split JSON: its train/test become the official split.",
        exists=True, dir_okay=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split hash.")] = 0,
    ratios: Annotated[tuple[float, float, float], typer.Option(
        help="train val test ratios.")] = (0.7, 0.1, 0.2),
    format: FormatOpt = "table",
) -> None:
    """Read a SAT-DS JSONL as a dataset and write our manifest (the i-th label name is mask
    value i+1, unless the lines carry harmonize labels or --labels-from is given)."""
    from harmonize.export.sat_import import import_sat

    try:
        hold_folder_lock(ctx, out)
        result = import_sat(jsonl, dataset_id, out, labels_from=labels_from, base_dir=base_dir,
                            split_json=split_json, seed=seed, ratios=ratios)
    except HarmonizeError as exc:
        raise _fail(exc) from None
    if format != "json":
        print_problems([], result.skipped)
    _report({"manifest": str(result.manifest), "cases": len(result.records),
             "skipped": [s.to_dict() for s in result.skipped]},
            result.errors, result.warnings, format,
            (f"[bold green]wrote[/] {result.manifest}: " if result.manifest else
             "[bold yellow]wrote nothing[/]: ")
            + f"{len(result.records)} cases, {len(result.skipped)} skipped, "
            f"{len(result.errors)} errors")


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
