"""``harmonize run``: normalize datasets into an output folder (flags or a YAML run file).

    harmonize run --dataset my-dataset --root /data/my-dataset --out harmonized --spacing 1.5 1.5 3
    harmonize run --config run.yaml --workers 8

``--spacing`` takes three numbers, one number (isotropic) or ``native``; ``--ct-window`` two numbers,
``dataset``, ``foreground`` or ``none``; ``--mr-percentiles`` two numbers or ``none``. See
:mod:`harmonize.engine.config` for the run file and :mod:`harmonize.engine.pipeline` for what is written.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from harmonize.cli.console import console, err_console, plain, print_json
from harmonize.engine.lifetime import Terminated, exit_code, sigterm_raises
from harmonize.errors import ErrorRecord, HarmonizeError
from harmonize.yamlio import load_registry

if TYPE_CHECKING:
    from harmonize.engine.pipeline import RunResult

# preset names straight from the registry file (the engine, which checks them, imports nibabel)
_PRESET_HELP = ("A named convention of registry/presets.yaml: "
                + ", ".join(load_registry("presets.yaml").get("normalization") or {}) + ".")

#: Options that take several numbers on the command line, and how many.
MULTI_VALUE_OPTIONS = {"--spacing": 3, "--ct-window": 2, "--mr-percentiles": 2}


def _is_number(token: str) -> bool:
    from harmonize.engine.config import is_number

    return is_number(token)


def join_multi_values(args: list[str]) -> list[str]:
    """``--spacing 1.5 1.5 3`` -> ``--spacing 1.5,1.5,3`` (click options have a fixed arity, and
    these also accept a keyword such as ``native``)."""
    joined: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        joined.append(token)
        i += 1
        if token == "--":
            joined.extend(args[i:])
            break
        if token in MULTI_VALUE_OPTIONS:
            values: list[str] = []
            while (i < len(args) and len(values) < MULTI_VALUE_OPTIONS[token]
                   and _is_number(args[i])):
                values.append(args[i])
                i += 1
            if values:
                joined.append(",".join(values))
    return joined


class RunCommand(typer.core.TyperCommand):
    """The ``run`` command, accepting several numbers after ``--spacing`` and ``--ct-window``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, join_multi_values(args))


def summary(result: RunResult) -> dict[str, Any]:
    """The run's outcome per dataset and overall, JSON-ready."""
    datasets = sorted({r.dataset for r in result.records} | set(result.manifests)
                      | {e.dataset for e in result.errors if e.dataset})
    failed = Counter(e.dataset for e in result.errors if e.case)
    skipped = Counter(e.dataset for e in result.skipped)
    from harmonize.manifest.splits import split_counts

    rows = []
    for dataset in datasets:
        records = [r for r in result.records if r.dataset == dataset]
        prefix = f"{dataset}/"
        rows.append({
            "dataset": dataset,
            "manifest": str(result.manifests[dataset]) if dataset in result.manifests else None,
            "cases": len(records),
            "done": sum(1 for c in result.done if c.startswith(prefix)),
            "up_to_date": sum(1 for c in result.up_to_date if c.startswith(prefix)),
            "failed": failed[dataset],
            "skipped": skipped[dataset],
            "splits": dict(split_counts(records)),
        })
    return {
        "out": str(result.out), "ok": result.ok, "datasets": rows,
        "done": result.done, "up_to_date": result.up_to_date,
        "errors": [e.to_dict() for e in result.errors],
        "skipped": [s.to_dict() for s in result.skipped],
        "warnings": result.warnings, "statistics": result.statistics,
        "kept": [k.to_dict() for k in result.kept],
    }


#: Items with the same dataset and reason printed in the summary before the rest are counted.
SAME_REASON_SHOWN = 5


def problem_lines(items: list[ErrorRecord]) -> list[str]:
    """One line per item, but at most :data:`SAME_REASON_SHOWN` per (dataset, kind, message); the
    rest of such a group becomes one "... and N more" line (errors.jsonl keeps every item)."""
    seen: Counter[tuple[str | None, str, str]] = Counter()
    for item in items:
        seen[(item.dataset, item.kind, item.message)] += 1
    shown: Counter[tuple[str | None, str, str]] = Counter()
    lines = []
    for item in items:
        group = (item.dataset, item.kind, item.message)
        shown[group] += 1
        if shown[group] <= SAME_REASON_SHOWN:
            lines.append(str(item))
        if shown[group] == SAME_REASON_SHOWN and seen[group] > SAME_REASON_SHOWN:
            lines.append(f"... and {seen[group] - SAME_REASON_SHOWN} more [{item.dataset}] "
                         f"{item.message!r} (all listed in errors.jsonl)")
    return lines


def print_summary(result: RunResult) -> None:
    """Readable summary: one row per dataset, then the skipped items and failures with their
    reason, file and next step (one line each, never wrapped, so it can be copied; at most
    :data:`SAME_REASON_SHOWN` with the same reason)."""
    data = summary(result)
    table = Table(title=f"harmonize run -> {result.out}", title_justify="left")
    for col in ("dataset", "cases", "done", "up to date", "failed", "skipped", "train/val/test"):
        table.add_column(col)
    for row in data["datasets"]:
        splits = row["splits"]
        table.add_row(row["dataset"], str(row["cases"]), str(row["done"]), str(row["up_to_date"]),
                      str(row["failed"]), str(row["skipped"]),
                      f"{splits['train']}/{splits['val']}/{splits['test']}")
    console.print(table)
    for label, items in (("[yellow]skipped[/]", result.skipped),
                         ("[bold red]failed[/]", result.errors)):
        if items:
            err_console.print(f"{label} ({len(items)}):", highlight=False)
        for line in problem_lines(items):
            err_console.print(f"  {line}", highlight=False, soft_wrap=True, markup=False)
    for shrink in result.kept:
        for line in shrink.lines():
            err_console.print(line, highlight=False, markup=False)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning[/] {plain(warning)}", highlight=False)
    status = "[bold green]done[/]" if result.ok else "[bold red]finished with failures[/]"
    console.print(
        f"{status}: {len(result.done)} processed, {len(result.up_to_date)} up to date, "
        f"{len(result.errors)} failed, {len(result.skipped)} skipped; manifests, splits.json and "
        f"errors.jsonl in {plain(result.out)}", highlight=False,
    )


def register(app: typer.Typer) -> None:
    @app.command("run", cls=RunCommand)
    def run_command(
        dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset id (see `harmonize plugins`).")] = None,
        root: Annotated[Path | None, typer.Option("--root", "-r", help="Folder the dataset was released into.")] = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
        config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML run file (several datasets, per-dataset overrides).", exists=True, dir_okay=False)] = None,
        spacing: Annotated[str | None, typer.Option("--spacing", metavar="X Y Z|MM|native", help="Target spacing in mm, or native (default: native).")] = None,
        ct_window: Annotated[str | None, typer.Option("--ct-window", metavar="LOW HIGH|dataset|foreground|none", help="CT window in HU; dataset = the series' or descriptor's window (default); none = raw HU.")] = None,
        preset: Annotated[str | None, typer.Option("--preset", help=_PRESET_HELP)] = None,
        interpolation: Annotated[str | None, typer.Option("--interpolation", help="linear or bspline (images; masks always nearest).")] = None,
        ct_scaling: Annotated[str | None, typer.Option("--ct-scaling", help="After the CT window: unit ([0, 1], default), zscore (the image's mean/std) or dataset-zscore.")] = None,
        mr_percentiles: Annotated[str | None, typer.Option("--mr-percentiles", metavar="LOW HIGH|none", help="MR/PET clip percentiles before the z-score (default 0.5 99.5); none = raw MR/PET.")] = None,
        intensity: Annotated[str | None, typer.Option("--intensity", help="auto (default) or raw: no intensity change for any modality.")] = None,
        resample_irregular_dicom: Annotated[bool, typer.Option("--resample-irregular-dicom", help="Interpolate DICOM series with irregular slice gaps (or duplicated slices) onto a regular grid instead of refusing them; recorded in the manifest's operations.")] = False,
        workers: Annotated[int | None, typer.Option("--workers", "-w", help="Parallel workers (default: the usable cores); 1 = in this process.")] = None,
        executor: Annotated[str | None, typer.Option("--executor", help="local (process pool) or dask.")] = None,
        scheduler: Annotated[str | None, typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (default: a local Dask cluster).")] = None,
        seed: Annotated[int | None, typer.Option(help="Seed of the split hash (default 0).")] = None,
        ratios: Annotated[tuple[float, float, float] | None, typer.Option(help="train val test ratios (default 0.7 0.1 0.2).")] = None,
        descriptor: Annotated[list[Path] | None, typer.Option("--descriptor", help="Extra YAML-only dataset descriptor(s).", exists=True)] = None,
        allow_shrink: Annotated[bool, typer.Option("--allow-shrink", help="Replace a dataset's manifest even if cases it lists are missing from this run (default: keep it, exit 1 and list them).")] = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
        format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    ) -> None:
        """Normalize every case into OUT/<dataset>/<case>/, write OUT/<dataset>.jsonl, splits.json
        and errors.jsonl. Cases already done with the same inputs and settings are skipped."""
        try:
            # imported here so that `harmonize --help` does not load the normalization engine
            from harmonize.engine.config import (
                EXECUTORS,
                ConfigError,
                Target,
                build_settings,
                load_config,
                parse_settings,
            )
            from harmonize.engine.pipeline import run

            flags = {k: v for k, v in (("spacing", spacing), ("ct_window", ct_window),
                                        ("preset", preset), ("interpolation", interpolation),
                                        ("ct_scaling", ct_scaling),
                                        ("mr_percentiles", mr_percentiles),
                                        ("intensity", intensity),
                                        ("irregular_dicom",
                                         "resample" if resample_irregular_dicom else None))
                     if v is not None}
            keys = parse_settings(flags, where="command line")
            extra_descriptors = list(descriptor or [])
            if config is not None:
                if dataset or root:
                    raise ConfigError("give either --config or --dataset/--root, not both",
                                      file=config, hint="list the datasets in the run file")
                cfg = load_config(config)
                targets = cfg.targets
                keys = {**cfg.settings, **keys}
                out = out or cfg.out
                workers = workers or cfg.workers
                executor = executor or cfg.executor
                scheduler = scheduler or cfg.scheduler
                seed = cfg.seed if seed is None else seed
                ratios = ratios or cfg.ratios
                allow_shrink = allow_shrink or bool(cfg.allow_shrink)
                extra_descriptors = [*cfg.descriptors, *extra_descriptors]
            else:
                if not dataset or root is None:
                    raise ConfigError("--dataset and --root are required (or --config)",
                                      hint="e.g. harmonize run -d my-dataset -r /data/my-dataset -o out")
                targets = [Target(dataset, root)]
            if out is None:
                raise ConfigError("--out is required (or 'out:' in the run file)",
                                  hint="name the folder to write to")
            if (executor or "local") not in EXECUTORS:
                raise ConfigError(f"unknown executor {executor!r}", hint="use local or dask")
            if format not in ("table", "json"):
                raise ConfigError(f"unknown format {format!r}", hint="use table or json")
            with sigterm_raises():
                result = run(
                    targets, out, build_settings(keys), workers=workers,
                    executor=executor or "local", scheduler=scheduler, seed=seed or 0,
                    ratios=ratios or (0.7, 0.1, 0.2), progress=progress,
                    descriptors=extra_descriptors, allow_shrink=allow_shrink,
                )
        except HarmonizeError as exc:
            err_console.print(f"[bold red]error[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as exc:
            name = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
            err_console.print(f"[yellow]interrupted[/] ({name}): workers stopped, finished cases "
                              "are kept, no half-written file is left; rerun the same command to "
                              "do the rest", highlight=False)
            raise typer.Exit(exit_code(exc)) from None
        if format == "json":
            print_json(summary(result))
        else:
            print_summary(result)
        if not result.ok:
            raise typer.Exit(1)
