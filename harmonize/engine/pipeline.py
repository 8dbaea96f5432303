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

import functools
import hashlib
import json
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from harmonize import __version__
from harmonize.engine.config import ConfigError, Target
from harmonize.engine.executors import Executor, make_executor
from harmonize.engine.normalize import (
    Settings,
    dataset_statistics,
    fingerprint,
    foreground_sample,
    normalize_case,
    write_volume,
)
from harmonize.errors import ErrorRecord, LabelError, ReadError
from harmonize.files import sha256_path, write_text_atomic
from harmonize.labels.vocabulary import Vocabulary, load_vocabulary
from harmonize.manifest.build import (
    case_class_values,
    dumps,
    has_label,
    other_records,
    source_section,
    write_manifest,
    write_splits,
)
from harmonize.manifest.lesions import instance_fields
from harmonize.manifest.records import Case, ManifestRecord
from harmonize.manifest.splits import DEFAULT_RATIOS, assign_splits, check_ratios
from harmonize.plugin.catalog import Catalog, load_catalog
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.plugin.discovery import discover
from harmonize.read.case import case_channels, present_values, read_case, rounded_affine

__all__ = ["CaseOutcome", "CaseTask", "RunResult", "Target", "run"]

#: Bump when the meaning of outputs changes, so older ``done.json`` files are redone.
PIPELINE_FORMAT = 1
IMAGE_FILE = "image.nii.gz"
MASK_FILE = "mask.nii.gz"
MARKER_FILE = "done.json"
ERRORS_FILE = "errors.jsonl"
STATS_SUFFIX = ".stats.json"
PROVENANCE_LIBRARIES = ("numpy", "nibabel", "SimpleITK", "isal")  # isal: the gzip bytes


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

    @property
    def ok(self) -> bool:
        """True when no case and no dataset failed (skipped discovery items do not count)."""
        return not self.errors


@dataclass(frozen=True)
class CaseTask:
    """Everything a worker needs for one case (picklable: sent to worker processes).

    ``vocabulary`` is the run's (bundled plus plugin structures), resolved once by :func:`run`.
    """

    plugin: DatasetPlugin
    case: Case
    out: Path
    settings: Settings
    dataset_stats: dict[str, Any] | None = None
    vocabulary: Vocabulary | None = None


@dataclass
class CaseOutcome:
    """A worker's answer: ``status`` is ``done``, ``up_to_date``, ``sampled`` or ``failed``."""

    dataset: str
    case_id: str
    status: str
    record: dict[str, Any] | None = None
    samples: np.ndarray | None = None
    error: ErrorRecord | None = None


# -- reading and checking one case -----------------------------------------------------------------

# -- resume --------------------------------------------------------------------------------------

def input_hashes(case: Case, dataset: str) -> dict[Path, str]:
    """sha256 of every source file (folders hash their files), missing files raise."""
    hashes = {}
    for path in case.files():
        if not path.exists():
            raise ReadError("source file does not exist", dataset=dataset, case=case.case_id,
                            file=path, hint="check the dataset is complete")
        hashes[path] = sha256_path(path)
    return hashes


def resume_key(task: CaseTask, hashes: dict[Path, str]) -> str:
    """sha256 over everything a case's outputs and record depend on (paths excluded)."""
    case, desc = task.case, task.plugin.descriptor
    payload = {
        "format": PIPELINE_FORMAT,
        "harmonize": __version__,
        "images": [hashes[p] for p in case.images],
        "label": hashes[case.label] if case.label is not None else None,
        "settings": task.settings.to_dict(),
        "dataset_window": desc.ct_window,
        "series_window": case.ct_window,
        "dataset_stats": task.dataset_stats,
        "descriptor": {"id": desc.id, "modality": desc.modality,
                       "values": {str(k): v for k, v in desc.values.items()},
                       "classes": {k: list(v) for k, v in desc.classes.items()},
                       "channels": desc.channels},
        "case": {"patient_id": case.patient_id, "official_split": case.official_split,
                 "annotated": case.annotated, "channel_names": case.channel_names,
                 "channels": case_channels(task.plugin, case),  # canonical: vocabulary edits count
                 "labels": {k: list(v) for k, v in (case.labels or {}).items()},
                 "same_patient_as": case.same_patient_as, "metadata": case.metadata},
    }
    text = json.dumps(payload, sort_keys=True, default=str, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def read_marker(case_dir: Path, key: str) -> dict[str, Any] | None:
    """The record stored in ``done.json`` if its key matches and its outputs are intact."""
    try:
        marker = json.loads((case_dir / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("key") != key:
        return None
    outputs = marker.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return None
    for name, size in outputs.items():
        path = case_dir / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    record = marker.get("record")
    return record if isinstance(record, dict) else None


def clear_case_dir(case_dir: Path, *, outputs: bool) -> None:
    """Remove the marker and leftover temporary files (and the outputs if ``outputs``)."""
    if not case_dir.is_dir():
        return
    (case_dir / MARKER_FILE).unlink(missing_ok=True)
    for path in case_dir.iterdir():
        if path.is_file() and (path.name.startswith(".") or (
            outputs and path.name in (IMAGE_FILE, MASK_FILE)
        )):
            path.unlink(missing_ok=True)
    if outputs and not any(case_dir.iterdir()):
        case_dir.rmdir()


# -- the per-case work (runs in workers) ------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, str]:
    """Versions of harmonize, Python and the libraries that touch voxels."""
    versions = {"harmonize": __version__, "python": platform.python_version()}
    for name in PROVENANCE_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def normalize_and_write(task: CaseTask, hashes: dict[Path, str], case_dir: Path) -> dict[str, Any]:
    """Read, check, normalize and write one case; return its manifest record as JSON."""
    plugin, case, desc = task.plugin, task.case, task.plugin.descriptor
    data = read_case(case, plugin=plugin, irregular_dicom=task.settings.irregular_dicom)
    image, label = data.image, data.label
    labels: dict[str, list[int]] = {}
    if has_label(plugin, case):
        observed = present_values(label.data) if label is not None else None
        vocabulary = task.vocabulary if task.vocabulary is not None else load_vocabulary()
        labels = case_class_values(plugin, case, vocabulary, observed)
    image_fingerprint = fingerprint(image)
    instances = instance_fields(plugin, case, image=image, label=label)
    result = normalize_case(
        image, label, modality=desc.modality, settings=task.settings,
        dataset_window=desc.ct_window, series_window=case.ct_window,
        dataset_stats=task.dataset_stats,
    )
    case_dir.mkdir(parents=True, exist_ok=True)
    write_volume(result.image, case_dir / IMAGE_FILE)
    folder = f"{desc.id}/{case.case_id}"
    mask = None
    if result.label is not None:
        write_volume(result.label, case_dir / MASK_FILE)
        mask = f"{folder}/{MASK_FILE}"
    else:  # a mask left by an earlier run (the label has since gone) is not this case's
        (case_dir / MASK_FILE).unlink(missing_ok=True)
    intensity = dict(result.intensity)
    if task.dataset_stats is not None:
        intensity.setdefault("dataset_stats", task.dataset_stats)
    out = result.image
    record = ManifestRecord(
        dataset=desc.id, case_id=case.case_id, patient_id=case.patient_id,
        modality=desc.modality, image=f"{folder}/{IMAGE_FILE}", mask=mask,
        label=list(labels), labels=labels, annotated=list(labels),
        official_split=case.official_split, split=None,
        shape=[*out.shape, *([out.channels] if out.channels > 1 else [])],
        spacing=[round(s, 6) for s in out.spacing],
        orientation=out.orientation, source=source_section(case, task.out, hashes),
        stage="normalized",
        channels=case_channels(plugin, case), affine=rounded_affine(out.affine),
        ct_window=list(case.ct_window) if case.ct_window else None,
        same_patient_as=list(case.same_patient_as), metadata=dict(case.metadata or {}),
        extra={"original": result.original,
               "operations": [*image.operations, *result.operations],
               "intensity": intensity, "settings": task.settings.to_dict(),
               "fingerprint": image_fingerprint, "provenance": provenance(),
               **instances},
    )
    return json.loads(dumps(record))


def process_case(task: CaseTask) -> CaseOutcome:
    """Do one case, or find it up to date. Never raises: a failure is a ``failed`` outcome with an
    :class:`ErrorRecord`, and the case's stale outputs and marker are removed."""
    dataset, case = task.plugin.dataset_id, task.case
    case_dir = task.out / dataset / case.case_id
    try:
        hashes = input_hashes(case, dataset)
        key = resume_key(task, hashes)
        cached = read_marker(case_dir, key)
        if cached is not None:
            cached["source"] = source_section(case, task.out, hashes)
            return CaseOutcome(dataset, case.case_id, "up_to_date", record=cached)
        clear_case_dir(case_dir, outputs=False)
        record = normalize_and_write(task, hashes, case_dir)
        outputs = {name: (case_dir / name).stat().st_size for name in (IMAGE_FILE, MASK_FILE)
                   if (case_dir / name).is_file() and (name == IMAGE_FILE or record["mask"])}
        marker = {"format": PIPELINE_FORMAT, "key": key, "outputs": outputs, "record": record}
        write_text_atomic(case_dir / MARKER_FILE, json.dumps(marker, allow_nan=False) + "\n")
        return CaseOutcome(dataset, case.case_id, "done", record=record)
    except Exception as exc:  # noqa: BLE001 - one case must not stop the run
        try:
            clear_case_dir(case_dir, outputs=True)
        except OSError:
            pass
        return CaseOutcome(dataset, case.case_id, "failed",
                           error=_error(exc, dataset, case))


def sample_case(task: CaseTask) -> CaseOutcome:
    """Statistics pass: a fixed-seed sample of the case's foreground intensities (as read)."""
    dataset, case = task.plugin.dataset_id, task.case
    try:
        data = read_case(case, plugin=task.plugin,
                         irregular_dicom=task.settings.irregular_dicom)
        image, label = data.image, data.label
        if label is None:
            raise LabelError("no label map to take foreground voxels from", dataset=dataset,
                             case=case.case_id)
        samples = np.asarray(foreground_sample(image, label))
        return CaseOutcome(dataset, case.case_id, "sampled", samples=samples)
    except Exception as exc:  # noqa: BLE001 - reported as this case's error
        return CaseOutcome(dataset, case.case_id, "failed", error=_error(exc, dataset, case))


#: Exceptions meaning "the worker process died", from the process pool and from Dask.
WORKER_DIED = ("BrokenProcessPool", "KilledWorker")


def _error(exc: BaseException, dataset: str, case: Case) -> ErrorRecord:
    if type(exc).__name__ in WORKER_DIED:
        return ErrorRecord(
            "worker", dataset, case.case_id, str(case.images[0]),
            f"the worker process died while processing this case ({type(exc).__name__})",
            "it was probably killed for memory: rerun with fewer --workers or on a larger "
            "machine; the other cases are kept",
        )
    error = ErrorRecord.from_exception(exc, dataset=dataset, case=case.case_id)
    if error.file is None:  # name the case's first file so every error points somewhere
        error = ErrorRecord(error.kind, error.dataset, error.case, str(case.images[0]),
                            error.message, error.hint)
    return error


# -- the run -------------------------------------------------------------------------------------

def needs_statistics(settings: Settings, modality: str) -> bool:
    """True if the settings take CT intensity parameters from a dataset statistics pass."""
    return modality == "CT" and settings.needs_dataset_stats


def _skipped_record(dataset: str, item: Any) -> ErrorRecord:
    return ErrorRecord("skipped", dataset, item.case_id, str(item.path), item.reason, item.hint)


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
            failed[case.case_id] = _error(outcome, dataset, case)
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
    write_text_atomic(out / f"{dataset}{STATS_SUFFIX}", json.dumps(document, indent=1) + "\n")
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
) -> RunResult:
    """Normalize every case of every target into ``out``; write manifests, splits and errors.

    ``settings`` apply to every target, with each :class:`Target`'s overrides on top. ``executor``
    is ``"local"`` (a process pool of ``workers``, default ``min(4, CPUs)``; ``workers=1`` runs in
    this process), ``"dask"`` (``scheduler`` address, or a local Dask cluster) or an executor object
    (:mod:`harmonize.engine.executors`). ``seed`` and ``ratios`` place patients in splits.

    A failing case becomes an :class:`ErrorRecord` in ``RunResult.errors`` and ``out/errors.jsonl``
    and the run goes on. Raises only for problems that stop the run before any case is touched:
    an unknown dataset id, a dataset given twice, bad ratios, an executor that cannot start.
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
    result = RunResult(out=out)
    vocabulary = load_vocabulary()
    jobs: list[tuple[DatasetPlugin, list[CaseTask], bool]] = []
    for target, plugin in zip(targets, plugins):
        # absolute, so error records point somewhere from any folder and remote (Dask) workers
        # with another working directory find the files
        found = discover(plugin, target.root.resolve())
        result.errors.extend(found.errors)
        result.skipped.extend(_skipped_record(plugin.dataset_id, s) for s in found.skipped)
        case_settings = target.settings(settings)
        tasks = [CaseTask(plugin, case, out, case_settings, vocabulary=vocabulary)
                 for case in found.cases]
        jobs.append((plugin, tasks, bool(found.errors) and not found.cases))
    out.mkdir(parents=True, exist_ok=True)
    pool = make_executor(executor, workers=workers, scheduler=scheduler)
    outcomes: list[CaseOutcome] = []
    try:
        start = getattr(pool, "start", None)
        if start is not None:
            start()  # fork workers before the progress bar's thread exists
        with _Progress(progress) as bar:
            for plugin, tasks, _ in jobs:
                if tasks and needs_statistics(tasks[0].settings, plugin.descriptor.modality):
                    stats, failed = _statistics_pass(tasks, pool, bar, out, result)
                    outcomes.extend(CaseOutcome(plugin.dataset_id, c, "failed", error=e)
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
                                          error=_error(outcome, task.plugin.dataset_id, task.case))
                outcomes.append(outcome)
                advance()
    finally:
        pool.close()
    _collect(result, outcomes)
    result.warnings = assign_splits(
        result.records, seed=seed, ratios=ratios,
        fixed=other_records(out, exclude={t.dataset for t in targets}),
    )
    for plugin, _, discovery_failed in jobs:
        dataset = plugin.dataset_id
        if discovery_failed:
            continue  # keep a previous manifest rather than replace it by an empty one
        path = out / f"{dataset}.jsonl"
        write_manifest(path, [r for r in result.records if r.dataset == dataset])
        result.manifests[dataset] = path
    write_splits(out)
    lines = [dumps(e.to_dict()) + "\n" for e in [*result.errors, *result.skipped]]
    write_text_atomic(out / ERRORS_FILE, "".join(lines))
    return result


def _collect(result: RunResult, outcomes: list[CaseOutcome]) -> None:
    for outcome in sorted(outcomes, key=lambda o: (o.dataset, o.case_id)):
        name = f"{outcome.dataset}/{outcome.case_id}"
        if outcome.status == "failed":
            assert outcome.error is not None
            result.errors.append(outcome.error)
            continue
        assert outcome.record is not None
        result.records.append(ManifestRecord.from_json(outcome.record))
        (result.up_to_date if outcome.status == "up_to_date" else result.done).append(name)
    result.errors.sort(key=lambda e: (e.dataset or "", e.case or "", e.file or "", e.message))
