"""``harmonize run`` as a function: discover -> read -> normalize -> write -> manifest, in parallel,
resumable, one error record per failing case.

    from pathlib import Path
    from harmonize.engine.normalize import Settings
    from harmonize.engine.pipeline import Target, run

    result = run([Target("my-dataset", Path("/data/my-dataset"))], Path("out"),
                 Settings(spacing=(1.5, 1.5, 3.0)), workers=4)
    result.records      # ManifestRecord per case written (or up to date), with its split
    result.errors       # ErrorRecord per case that failed (also in out/errors.jsonl)

Outputs under ``out``: ``<dataset>/<case_id>/image.nii.gz`` (+ ``mask.nii.gz``) and
``<dataset>/<case_id>/done.json`` (written last: the resume key and the record), ``<dataset>.jsonl``,
``splits.json``, ``errors.jsonl``, and ``<dataset>.stats.json`` for presets that need a statistics
pass (nnunet-ct). Every file is written to a temporary name and renamed, so a killed run never leaves
a half-written output under its final name; rerunning finishes the rest.

A case is skipped as *up to date* when its ``done.json`` holds the same resume key (sha256 of every
input file, the settings, the windows and statistics, the descriptor's label map and the case's
discovery fields) and its outputs exist with the recorded sizes. Anything else redoes the case.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from harmonize import jsonio
from harmonize.engine.case_task import (
    CaseOutcome,
    CaseTask,
    case_error,
    process_case,
    sample_case,
)
from harmonize.engine.config import ConfigError, Target
from harmonize.engine.executors import Executor, make_executor
from harmonize.engine.normalize import (
    Settings,
    dataset_statistics,
)
from harmonize.errors import ErrorRecord, OutputError
from harmonize.files import remove_stale_temps, writable_folder, write_text_atomic
from harmonize.folder_lock import describe, folder_lock
from harmonize.labels.vocabulary import load_vocabulary
from harmonize.manifest.build import (
    dumps,
    has_label,
    other_records,
    write_manifest,
    write_splits,
)
from harmonize.manifest.guard import Shrink, check_shrink, nothing_to_write, skipped_record
from harmonize.manifest.records import ManifestRecord
from harmonize.manifest.splits import DEFAULT_RATIOS, assign_splits, check_ratios
from harmonize.plugin.catalog import Catalog, load_catalog
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.plugin.discovery import discover

__all__ = ["CaseOutcome", "CaseTask", "RunResult", "Target", "run"]


ERRORS_FILE = "errors.jsonl"
STATS_SUFFIX = ".stats.json"


# -- results --------------------------------------------------------------------------------------

@dataclass
class RunResult:
    """What a run produced: records (sorted by dataset, case), failures, skipped discovery items
    (as ``kind="skipped"`` records), and which cases were redone or already up to date."""

    out: Path
    records: list[ManifestRecord] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    skipped: list[ErrorRecord] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    manifests: dict[str, Path] = field(default_factory=dict)
    statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    kept: list[Shrink] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no case and no dataset failed (skipped discovery items do not count)."""
        return not self.errors




# -- the per-case work (runs in workers) ------------------------------------------------------------


# -- the run -------------------------------------------------------------------------------------

def needs_statistics(settings: Settings, modality: str) -> bool:
    """True if the settings take CT intensity parameters from a dataset statistics pass."""
    return modality == "CT" and settings.needs_dataset_stats


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool) -> None:
        from harmonize.cli.console import progress_bar

        self.bar = progress_bar(transient=True) if enabled else None

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.__exit__(exc_type, exc, tb)

    def task(self, description: str, total: int) -> Callable[[], None]:
        if self.bar is None:
            return lambda: None
        task_id = self.bar.add_task(description, total=total)
        return lambda: self.bar.advance(task_id)  # type: ignore[union-attr]


def _statistics_pass(
    tasks: list[CaseTask], executor: Executor, bar: _Progress, out: Path, result: RunResult,
) -> tuple[dict[str, Any] | None, dict[str, ErrorRecord]]:
    """Sample every labelled case, pool the samples, write ``<dataset>.stats.json``."""
    dataset = tasks[0].plugin.dataset_id
    labelled = [t for t in tasks if has_label(t.plugin, t.case)]
    advance = bar.task(f"{dataset}: statistics", len(labelled))
    samples: dict[str, np.ndarray] = {}
    failed: dict[str, ErrorRecord] = {}
    for index, outcome in executor.imap_unordered(sample_case, labelled):
        case = labelled[index].case
        if isinstance(outcome, BaseException):
            failed[case.case_id] = case_error(outcome, dataset, case)
        elif outcome.error is not None:
            failed[case.case_id] = outcome.error
        else:
            samples[case.case_id] = outcome.samples
        advance()
    if not samples:
        result.errors.append(ErrorRecord(
            "config", dataset, None, None,
            "the statistics pass found no usable labelled case, so dataset-level intensity "
            "parameters cannot be computed", "label some cases, or choose another preset",
        ))
        return None, failed
    stats = dataset_statistics([samples[c] for c in sorted(samples)])
    stats = json.loads(json.dumps(stats, allow_nan=False, default=float))
    document = {"dataset": dataset, "cases": sorted(samples), "statistics": stats}
    write_text_atomic(out / f"{dataset}{STATS_SUFFIX}", jsonio.dumps(document, indent=1) + "\n")
    result.statistics[dataset] = stats
    return stats, failed


def run(
    targets: Sequence[Target],
    out: Path,
    settings: Settings | None = None,
    *,
    workers: int | None = None,
    executor: str | Executor = "local",
    scheduler: str | None = None,
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    progress: bool = True,
    descriptors: Sequence[Path] = (),
    catalog: Catalog | None = None,
    allow_shrink: bool = False,
) -> RunResult:
    """Normalize every case of every target into ``out``; write manifests, splits and errors.

    ``settings`` apply to every target, with each :class:`Target`'s overrides on top. ``executor``
    is ``"local"`` (a process pool of ``workers``, default the usable cores; ``workers=1`` runs in
    this process), ``"dask"`` (``scheduler`` address, or a local Dask cluster) or an executor object
    (:mod:`harmonize.engine.executors`). ``seed`` and ``ratios`` place patients in splits.

    A failing case becomes an :class:`ErrorRecord` in ``RunResult.errors`` and ``out/errors.jsonl``
    and the run goes on (a disk-full or permission failure too: ``kind="output"``). A dataset
    manifest that would lose cases of the one in ``out`` is not written (nor ``splits.json``)
    unless ``allow_shrink``: ``RunResult.kept`` says which cases are gone and why
    (:mod:`harmonize.manifest.guard`); a dataset with no record writes no manifest. Raises only
    for problems that stop the run before any case is touched: an unknown dataset id, a dataset
    given twice, bad ratios, an executor that cannot start, an ``out`` that cannot be written
    (:class:`~harmonize.errors.OutputError`), and
    :class:`~harmonize.folder_lock.FolderLockedError` when another process writes into ``out``
    (``out/.harmonize.lock``, held until the run ends). On Ctrl-C or SIGTERM (``KeyboardInterrupt``)
    the workers are killed and their temporary files removed before the exception goes on.
    """
    settings = settings if settings is not None else Settings()
    ratios = check_ratios(ratios)
    out = Path(out).resolve()
    ids = [t.dataset for t in targets]
    repeated = sorted({d for d in ids if ids.count(d) > 1})
    if repeated:
        raise ConfigError(f"dataset(s) {repeated} given more than once in one run",
                          hint="give each dataset once, with one root")
    catalog = catalog if catalog is not None else load_catalog(descriptors=descriptors)
    plugins = [catalog.get(t.dataset) for t in targets]
    writable_folder(out)
    with folder_lock(out) as lock:
        (out / ERRORS_FILE).unlink(missing_ok=True)  # a run that does not finish leaves none stale
        remove_stale_temps(out)  # a killed run's manifest temp files
        result = _run_locked(targets, plugins, out, settings, workers=workers, executor=executor,
                             scheduler=scheduler, seed=seed, ratios=ratios, progress=progress,
                             allow_shrink=allow_shrink)
    if lock.stale is not None:
        result.warnings.insert(0, f"took over the lock of {describe(lock.stale)}, which ended "
                                  "without releasing it (killed?); its finished cases were kept")
    return result


def _run_locked(
    targets: Sequence[Target], plugins: list[DatasetPlugin], out: Path, settings: Settings, *,
    workers: int | None, executor: str | Executor, scheduler: str | None, seed: int,
    ratios: Sequence[float], progress: bool, allow_shrink: bool,
) -> RunResult:
    """:func:`run` once ``out`` is locked: discover, process, write manifests, splits, errors."""
    result = RunResult(out=out)
    vocabulary = load_vocabulary()
    jobs: list[tuple[DatasetPlugin, list[CaseTask], bool]] = []
    for target, plugin in zip(targets, plugins):
        # absolute, so error records point somewhere from any folder and remote (Dask) workers
        # with another working directory find the files
        found = discover(plugin, target.root.resolve())
        result.errors.extend(found.errors)
        result.skipped.extend(skipped_record(plugin.dataset_id, s) for s in found.skipped)
        case_settings = target.settings(settings)
        tasks = [CaseTask(plugin, case, out, case_settings, vocabulary=vocabulary)
                 for case in found.cases]
        jobs.append((plugin, tasks, bool(found.errors) and not found.cases))
    pool = make_executor(executor, workers=workers, scheduler=scheduler)
    outcomes: list[tuple[CaseOutcome, ManifestRecord | None]] = []
    try:
        start = getattr(pool, "start", None)
        if start is not None:
            start()  # fork workers before the progress bar's thread exists
        with _Progress(progress) as bar:
            for plugin, tasks, _ in jobs:
                if tasks and needs_statistics(tasks[0].settings, plugin.descriptor.modality):
                    stats, failed = _statistics_pass(tasks, pool, bar, out, result)
                    outcomes.extend((CaseOutcome(plugin.dataset_id, c, "failed", error=e), None)
                                    for c, e in failed.items())
                    tasks[:] = [] if stats is None else [
                        CaseTask(t.plugin, t.case, t.out, t.settings, stats, t.vocabulary)
                        for t in tasks if t.case.case_id not in failed
                    ]
            work = [t for _, tasks, _ in jobs for t in tasks]
            advance = bar.task("normalize", len(work))
            for index, outcome in pool.imap_unordered(process_case, work):
                if isinstance(outcome, BaseException):  # the worker itself died
                    task = work[index]
                    outcome = CaseOutcome(task.plugin.dataset_id, task.case.case_id, "failed",
                                          error=case_error(outcome, task.plugin.dataset_id, task.case))
                outcomes.append(_settle(outcome))
                advance()
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: stop the workers now and remove their temp files
        pool.abort()
        for _, tasks, _ in jobs:
            for task in tasks:
                remove_stale_temps(out / task.plugin.dataset_id / task.case.case_id)
        raise
    finally:
        pool.close()
    _collect(result, outcomes)
    result.warnings = assign_splits(
        result.records, seed=seed, ratios=ratios,
        fixed=other_records(out, exclude={t.dataset for t in targets}),
    )
    _write_outputs(result, [(p.dataset_id, failed) for p, _, failed in jobs], allow_shrink)
    return result


def _write_outputs(result: RunResult, datasets: list[tuple[str, bool]], allow_shrink: bool) -> None:
    """Write each dataset's manifest (unless discovery failed, it has no record, or it would lose
    cases), ``splits.json`` if a manifest changed, and ``errors.jsonl``; a write that fails
    (disk full) becomes an error record."""
    out, written = result.out, False
    for dataset, discovery_failed in datasets:
        if discovery_failed:
            continue  # keep a previous manifest rather than replace it by an empty one
        path = out / f"{dataset}.jsonl"
        records = [r for r in result.records if r.dataset == dataset]
        problems = [e for e in [*result.errors, *result.skipped] if e.dataset == dataset]
        shrink = check_shrink(path, [r.case_id for r in records], problems, dataset=dataset,
                              allow_shrink=allow_shrink)
        if shrink is not None:
            result.kept.append(shrink)
            result.errors.append(shrink.error())
        elif not records and not any(e.dataset == dataset for e in result.errors):
            skipped = sum(1 for e in problems if e.kind == "skipped")
            result.errors.append(nothing_to_write(dataset, path, skipped))
        if shrink is not None or not records:
            continue
        try:
            write_manifest(path, records)
            result.manifests[dataset] = path
            written = True
        except OutputError as exc:
            result.errors.append(ErrorRecord.from_exception(exc, dataset=dataset))
    try:
        if written:
            write_splits(out)
    except OutputError as exc:
        result.errors.append(ErrorRecord.from_exception(exc))
    lines = [dumps(e.to_dict()) + "\n" for e in [*result.errors, *result.skipped]]
    try:
        write_text_atomic(out / ERRORS_FILE, "".join(lines))
    except OutputError as exc:
        result.errors.append(ErrorRecord.from_exception(exc))


def _settle(outcome: CaseOutcome) -> tuple[CaseOutcome, ManifestRecord | None]:
    """A worker's outcome as the run keeps it until the manifest is written: its record parsed
    once, the JSON form dropped (the parsed record takes about half the memory)."""
    if outcome.record is None:
        return outcome, None
    record = ManifestRecord.from_json(outcome.record)
    outcome.record = None
    return outcome, record


def _collect(result: RunResult, outcomes: list[tuple[CaseOutcome, ManifestRecord | None]]
             ) -> None:
    for outcome, record in sorted(outcomes, key=lambda o: (o[0].dataset, o[0].case_id)):
        name = f"{outcome.dataset}/{outcome.case_id}"
        if outcome.status == "failed":
            assert outcome.error is not None
            result.errors.append(outcome.error)
            continue
        assert record is not None
        result.records.append(record)
        (result.up_to_date if outcome.status == "up_to_date" else result.done).append(name)
    result.errors.sort(key=lambda e: (e.dataset or "", e.case or "", e.file or "", e.message))
