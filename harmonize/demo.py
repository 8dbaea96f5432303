"""``harmonize demo``: fabricate tiny datasets in their real layouts and run the whole job on them.

Every registered plugin that can fabricate its layout (and has ``demo = True``) takes part, so the
demo grows with the catalogue and knows no dataset by name.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harmonize.catalog import load_catalog
from harmonize.console import console, err_console, print_json, print_problems, progress_bar
from harmonize.discovery import discover
from harmonize.errors import ErrorRecord
from harmonize.manifest import ManifestResult, build_manifest, write_splits
from harmonize.splits import find_leaks, split_counts

DATA_DIR = "data"
MANIFEST_DIR = "manifests"


@dataclass
class DemoResult:
    """Manifests written by the demo, per dataset, and every problem met."""

    out: Path
    results: list[ManifestResult] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    splits: dict[str, list[str]] = field(default_factory=dict)


def run_demo(out: Path, *, n_cases: int = 4, seed: int = 0, datasets: list[str] | None = None) -> DemoResult:
    """Fabricate each demo dataset under ``out/data/<id>``; write manifests to ``out/manifests``."""
    out = Path(out)
    catalog = load_catalog(entry_points=False)
    plugins = [
        p for p in catalog.datasets.values()
        if p.can_fabricate and (p.demo if datasets is None else p.dataset_id in datasets)
    ]
    manifest_dir = out / MANIFEST_DIR
    if manifest_dir.exists():
        shutil.rmtree(manifest_dir)
    result = DemoResult(out=out)
    with progress_bar(transient=True) as bar:
        task = bar.add_task("demo datasets", total=len(plugins))
        for plugin in plugins:
            data_root = out / DATA_DIR / plugin.dataset_id
            if data_root.exists():
                shutil.rmtree(data_root)
            root = plugin.fabricate(data_root, n_cases=n_cases, seed=seed)
            found = discover(plugin, root)
            result.results.append(build_manifest(plugin, found, manifest_dir, seed=seed))
            bar.advance(task)
    for r in result.results:
        result.errors.extend(r.errors)
    result.splits = write_splits(manifest_dir)
    return result


def summary_rows(result: DemoResult) -> list[dict]:
    rows = []
    for r in result.results:
        counts = split_counts(r.records)
        labels = sorted({name for rec in r.records for name in rec.annotated})
        rows.append({
            "dataset": r.dataset,
            "cases": len(r.records),
            "patients": len({rec.patient_id for rec in r.records}),
            "labels": labels,
            "train": counts["train"], "val": counts["val"], "test": counts["test"],
            "skipped": len(r.discovery.skipped) if r.discovery else 0,
            "errors": len(r.errors),
        })
    return rows


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("harmonize-demo"),
        cases: Annotated[int, typer.Option(help="Cases per fabricated dataset.")] = 4,
        seed: Annotated[int, typer.Option(help="Seed for fabrication and splits.")] = 0,
        dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Only these datasets.")] = None,
        format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    ) -> None:
        """Fabricate tiny datasets in their real layouts and run discovery, manifests and splits."""
        result = run_demo(out, n_cases=cases, seed=seed, datasets=dataset)
        rows = summary_rows(result)
        leaks = [str(leak) for leak in find_leaks(r for res in result.results for r in res.records)]
        if format == "json":
            print_json({"out": str(out), "datasets": rows, "leaks": leaks,
                        "errors": [e.to_dict() for e in result.errors]})
        else:
            table = Table(title=f"harmonize demo -> {out}", title_justify="left")
            for col in ("dataset", "cases", "patients", "labels", "train", "val", "test", "skipped", "errors"):
                table.add_column(col, overflow="fold")
            for row in rows:
                table.add_row(*(", ".join(v) if isinstance(v, list) else str(v) for v in row.values()))
            console.print(table)
            print_problems(result.errors)
            console.print(f"manifests and splits.json in {out / MANIFEST_DIR}; "
                          f"split leakage check: {'PASS' if not leaks else 'FAIL'}")
            for leak in leaks:
                err_console.print(f"[bold red]leak[/] {leak}")
        if result.errors or leaks:
            raise typer.Exit(1)
