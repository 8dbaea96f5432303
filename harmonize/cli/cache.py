"""``harmonize cache``: build the loader's fast on-disk cache for one or more manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harmonize.cli.console import (
    console,
    hold_folder_lock,
    print_error,
    print_json,
    print_problems,
    progress_bar,
)
from harmonize.errors import HarmonizeError

#: the loader's default cache folder name (``harmonize.loader.cache.DEFAULT_CACHE_DIRNAME``;
#: not imported here: the loader imports torch, and ``harmonize --help`` must start fast)
CACHE_DIRNAME = "cache"


def register(app: typer.Typer) -> None:
    @app.command("cache")
    def cache_command(
        ctx: typer.Context,
        manifest: Annotated[list[Path], typer.Option("--manifest", "-m", exists=True, dir_okay=False,
                                                     help="Manifest(s) (.jsonl) to cache.")],
        cache_dir: Annotated[Path | None, typer.Option(
            "--cache-dir", help=f"Cache folder (default: {CACHE_DIRNAME}/ next to each manifest); "
                                "pass the same folder to HarmonizedDataset(cache=...).")] = None,
        split: Annotated[str | None, typer.Option(help="Only records of this split.")] = None,
        workers: Annotated[int, typer.Option(help="Parallel processes.")] = 1,
        verify: Annotated[bool, typer.Option(help="Re-hash existing entries; rebuild any that differ.")] = False,
        format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    ) -> None:
        """Store every record's RAS volumes as memory-mappable .npy for fast random patch reads.

        Entries that are up to date are kept; missing, stale (record changed) or corrupt ones are
        (re)built. Exits 1 if any record fails.
        """
        from harmonize.loader.cache import DEFAULT_CACHE_DIRNAME, VolumeCache, build_cache
        from harmonize.manifest.build import read_manifest
        from harmonize.manifest.records import SPLITS

        if split is not None and split not in SPLITS:
            print_error(HarmonizeError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}"))
            raise typer.Exit(2)
        try:
            for folder in sorted({VolumeCache(cache_dir).base(m.resolve().parent) for m in manifest}):
                hold_folder_lock(ctx, folder)
            total = sum(1 for m in manifest for r in read_manifest(m) if split is None or r.split == split)
        except HarmonizeError as exc:
            print_error(exc)
            raise typer.Exit(2) from None
        with progress_bar(transient=True) as bar:
            task = bar.add_task("cache", total=total)
            report = build_cache(manifest, cache_dir, split=split, workers=workers, verify=verify,
                                 progress=lambda: bar.advance(task))
        where = str(cache_dir) if cache_dir else f"{DEFAULT_CACHE_DIRNAME}/ next to each manifest"
        if format == "json":
            print_json({"cache": where, "records": total, **report.counts,
                        "errors": [e.to_dict() for e in report.errors]})
        else:
            print_problems(report.errors)
            counts = report.counts
            console.print(f"[bold green]cache[/] {where}: {counts['built']} built, {counts['ok']} up to date, "
                          f"{counts['rebuilt']} rebuilt (corrupt), {len(report.errors)} failed",
                          highlight=False)
        if report.errors:
            raise typer.Exit(1)
