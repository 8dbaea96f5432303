"""``harmonize demo``: fabricate tiny datasets in their real layouts and run the whole job on them.

Every registered plugin that can fabricate its layout (and has ``demo = True``) takes part, so the
demo grows with the catalogue and knows no dataset by name.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from harmonize.cli.console import (
    console,
    err_console,
    plain,
    print_error,
    print_json,
    print_problems,
)
from harmonize.errors import ErrorRecord, HarmonizeError

if TYPE_CHECKING:
    from harmonize.engine.pipeline import RunResult
    from harmonize.plugin.dataset import DatasetPlugin

DATA_DIR = "data"
MANIFEST_DIR = "harmonized"
#: Patch size of the demo's mixed batch (fabricated volumes are a few dozen voxels across).
DEMO_PATCH = (32, 32, 16)


@dataclass
class DemoResult:
    """What the demo produced: the run over every fabricated dataset, and one mixed batch."""

    out: Path
    run: RunResult
    batch: dict[str, Any] | None = None
    datasets: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[ErrorRecord]:
        return self.run.errors


def demo_plugins(datasets: list[str] | None = None) -> list[DatasetPlugin]:
    """Plugins taking part: those that can fabricate their layout and opt in (or are named)."""
    from harmonize.plugin.catalog import load_catalog

    catalog = load_catalog(entry_points=False)
    if datasets:
        return [catalog.get(d) for d in datasets]
    return [p for p in catalog.datasets.values() if p.can_fabricate and p.demo]


def run_demo(
    out: Path,
    *,
    n_cases: int = 4,
    seed: int = 0,
    datasets: list[str] | None = None,
    workers: int = 2,
    batch: bool = True,
    progress: bool = True,
) -> DemoResult:
    """Fabricate each demo dataset under ``out/data/<id>`` in its released layout, normalize all of
    them with :func:`harmonize.engine.pipeline.run` into ``out/harmonized`` (volumes, manifests, splits,
    errors) and load one mixed batch from the manifests."""
    from harmonize.engine.config import Target
    from harmonize.engine.pipeline import run

    out = Path(out)
    plugins = demo_plugins(datasets)
    targets = []
    for plugin in plugins:
        data_root = out / DATA_DIR / plugin.dataset_id
        if data_root.exists():
            shutil.rmtree(data_root)
        targets.append(Target(plugin.dataset_id, plugin.fabricate(data_root, n_cases=n_cases, seed=seed)))
    manifest_dir = out / MANIFEST_DIR
    if manifest_dir.exists():
        shutil.rmtree(manifest_dir)
    result = DemoResult(out=out, datasets=[p.dataset_id for p in plugins],
                        run=run(targets, manifest_dir, workers=workers, seed=seed, progress=progress))
    if batch and result.run.manifests:
        from harmonize.loader.batching import load_one_batch

        manifests = [result.run.manifests[d] for d in result.datasets if d in result.run.manifests]
        with_train = {r.dataset for r in result.run.records if r.split == "train"}
        split = "train" if with_train >= set(result.run.manifests) else None  # tiny demos: any split
        result.batch = load_one_batch(manifests, batch_size=len(manifests), patch_size=DEMO_PATCH,
                                      seed=seed, split=split)
    return result


def summary_rows(result: DemoResult) -> list[dict]:
    """One row per dataset: cases, patients, labels, split sizes, skipped items, errors."""
    from harmonize.manifest.splits import split_counts

    rows = []
    for dataset in result.datasets:
        records = [r for r in result.run.records if r.dataset == dataset]
        counts = split_counts(records)
        rows.append({
            "dataset": dataset,
            "cases": len(records),
            "patients": len({rec.patient_id for rec in records}),
            "labels": sorted({name for rec in records for name in rec.annotated}),
            "train": counts["train"], "val": counts["val"], "test": counts["test"],
            "skipped": sum(s.dataset == dataset for s in result.run.skipped),
            "errors": sum(e.dataset == dataset for e in result.run.errors),
        })
    return rows


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("harmonize-demo"),
        cases: Annotated[int, typer.Option(help="Cases per fabricated dataset.")] = 4,
        seed: Annotated[int, typer.Option(help="Seed for fabrication, splits and the batch.")] = 0,
        dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Only these datasets.")] = None,
        workers: Annotated[int, typer.Option(help="Worker processes for normalization.")] = 2,
        format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    ) -> None:
        """Fabricate tiny datasets in their real layouts, normalize them, write manifests and
        splits, and load one mixed batch."""
        try:
            result = run_demo(out, n_cases=cases, seed=seed, datasets=dataset, workers=workers,
                              progress=format != "json")
        except HarmonizeError as exc:
            print_error(exc)
            raise typer.Exit(2) from None
        from harmonize.manifest.splits import find_leaks

        rows = summary_rows(result)
        leaks = [str(leak) for leak in find_leaks(result.run.records)]
        if format == "json":
            print_json({
                "out": str(out), "datasets": rows, "leaks": leaks,
                "manifests": {d: str(p) for d, p in result.run.manifests.items()},
                "batch": batch_summary(result.batch) if result.batch else None,
                "errors": [e.to_dict() for e in result.errors],
            })
        else:
            table = Table(title=f"harmonize demo -> {out}", title_justify="left")
            table.add_column("dataset", no_wrap=True)
            for col in ("cases", "patients", "train/val/test", "skipped", "errors"):
                table.add_column(col, no_wrap=True, justify="right")
            table.add_column("labels", overflow="fold", ratio=1, min_width=20)
            for row in rows:
                table.add_row(
                    row["dataset"], str(row["cases"]), str(row["patients"]),
                    f"{row['train']}/{row['val']}/{row['test']}", str(row["skipped"]),
                    str(row["errors"]), f"{len(row['labels'])}: {short_names(row['labels'], 2)}",
                )
            console.print(table)
            print_problems(result.errors)
            console.print(
                f"normalized volumes, manifests, splits.json and errors.jsonl in {out / MANIFEST_DIR}; "
                f"split leakage check: {'PASS' if not leaks else 'FAIL'}"
            )
            for leak in leaks:
                err_console.print(f"[bold red]leak[/] {plain(leak)}", highlight=False)
            if result.batch is not None:
                console.print(describe_demo_batch(result.batch), highlight=False)
        if result.errors or leaks:
            raise typer.Exit(1)


def short_names(names: list[str], limit: int = 3) -> str:
    more = f" (+{len(names) - limit})" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def describe_demo_batch(batch: dict[str, Any]) -> str:
    """A few readable lines: tensor shapes, then per sample its dataset and case, how many of the
    batch's classes are annotated for it (label_present) and which have voxels in the patch."""
    classes = list(batch["classes"][0]) if batch["classes"] and isinstance(batch["classes"][0], (list, tuple)) else list(batch["classes"])
    image, mask, present = batch["image"], batch["mask"], batch["label_present"]
    channels = list(batch.get("channels") or [])
    if channels and isinstance(channels[0], (list, tuple)):  # default_collate transposes lists
        channels = [c[0] for c in channels]
    lines = [
        f"one mixed batch: image {tuple(image.shape)} float32, mask {tuple(mask.shape)} multi-hot "
        f"over {len(classes)} classes, label_present {tuple(present.shape)}",
        "image channels (canonical order; a sample without one has zeros there and "
        f"channel_present False): {', '.join(channels)}",
    ]
    for i, (dataset, case) in enumerate(zip(batch["dataset"], batch["case_id"])):
        annotated = int(present[i].sum())
        visible = [classes[k] for k in range(len(classes)) if bool(mask[i, k].any())]
        has = [channels[c] for c, p in enumerate(batch["channel_present"][i].tolist()) if p]
        lines.append(
            f"  {dataset:<16} {case[:40]:<40} channels {short_names(has, 4) or '-'}; annotated "
            f"{annotated:>2}/{len(classes)}; in patch: {short_names(visible) or '-'}"
        )
    return "\n".join(lines)


def batch_summary(batch: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly description of a collated batch."""
    return {
        "image": list(batch["image"].shape),
        "mask": list(batch["mask"].shape),
        "datasets": list(batch["dataset"]),
        "case_ids": list(batch["case_id"]),
        "label_present": batch["label_present"].tolist(),
        "channels": list(batch.get("channels") or []),
        "channel_present": batch["channel_present"].tolist(),
    }
