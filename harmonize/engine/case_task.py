"""One case of ``harmonize run``: read, check, normalize, write, record; resumable; never raises.

A :class:`CaseTask` is everything a worker process needs for one case; :func:`process_case` does
it (or finds it up to date by its ``done.json`` resume key) and :func:`sample_case` takes the
statistics pass's foreground sample. Both return a :class:`CaseOutcome`: a failure is an
:class:`ErrorRecord`, and the case's stale outputs and marker are removed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from harmonize import __version__, jsonio
from harmonize.engine.normalize import (
    Settings,
    fingerprint,
    foreground_sample,
    normalize_case,
    write_volume,
)
from harmonize.errors import ErrorRecord, LabelError, ReadError, output_error
from harmonize.files import remove_stale_temps, sha256_path, write_text_atomic
from harmonize.labels.vocabulary import Vocabulary, load_vocabulary
from harmonize.manifest.build import (
    case_class_values,
    dumps,
    has_label,
    source_section,
)
from harmonize.manifest.lesions import instance_fields
from harmonize.manifest.records import Case, ManifestRecord
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.read.case import case_channels, read_case

#: Bump when the meaning of outputs changes, so older ``done.json`` files are redone.
PIPELINE_FORMAT = 1


IMAGE_FILE = "image.nii.gz"


MASK_FILE = "mask.nii.gz"


MARKER_FILE = "done.json"


PROVENANCE_LIBRARIES = ("numpy", "nibabel", "SimpleITK", "isal")  # isal: the gzip bytes


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
                       "channels": desc.channels,
                       # only when set, so other datasets' keys stay as they were
                       **({"rescale": list(desc.rescale)} if desc.rescale else {})},
        "case": {"patient_id": case.patient_id, "official_split": case.official_split,
                 "annotated": case.annotated, "channel_names": case.channel_names,
                 "channels": case_channels(task.plugin, case),  # canonical: vocabulary edits count
                 "labels": {k: list(v) for k, v in (case.labels or {}).items()},
                 "same_patient_as": case.same_patient_as, "metadata": case.metadata,
                 **({"rescale": list(case.rescale)} if case.rescale else {})},
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
    """Remove the marker, the temporary files left by writers that are gone
    (:func:`~harmonize.files.remove_stale_temps`; never another live process's), and the outputs
    if ``outputs``."""
    if not case_dir.is_dir():
        return
    (case_dir / MARKER_FILE).unlink(missing_ok=True)
    remove_stale_temps(case_dir)
    if outputs:
        for name in (IMAGE_FILE, MASK_FILE):
            (case_dir / name).unlink(missing_ok=True)
        if not any(case_dir.iterdir()):
            case_dir.rmdir()


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
        vocabulary = task.vocabulary if task.vocabulary is not None else load_vocabulary()
        labels = case_class_values(plugin, case, vocabulary, label)
    image_fingerprint = fingerprint(image)
    instances = instance_fields(plugin, case, image=image, label=label)
    result = normalize_case(
        image, label, modality=desc.modality, settings=task.settings,
        dataset_window=desc.ct_window, series_window=case.ct_window,
        dataset_stats=task.dataset_stats, channels=case_channels(plugin, case),
    )
    write_volume(result.image, case_dir / IMAGE_FILE)  # creates case_dir
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
        spacing=[float(s) for s in out.spacing],
        orientation=out.orientation, source=source_section(case, task.out, hashes),
        stage="normalized",
        channels=case_channels(plugin, case),
        affine=np.asarray(out.affine, dtype=float).tolist(),
        ct_window=list(case.ct_window) if case.ct_window else None,
        same_patient_as=list(case.same_patient_as), metadata=dict(case.metadata or {}),
        extra={"original": result.original,
               "operations": [*image.operations, *(label.operations if label is not None else []),
                              *result.operations],
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
        write_text_atomic(case_dir / MARKER_FILE, jsonio.dumps(marker, allow_nan=False) + "\n")
        return CaseOutcome(dataset, case.case_id, "done", record=record)
    except Exception as exc:  # noqa: BLE001 - one case must not stop the run
        try:
            clear_case_dir(case_dir, outputs=True)
        except OSError:
            pass
        failed: BaseException = exc
        if isinstance(exc, OSError) and exc.filename is not None:
            path = Path(os.fsdecode(exc.filename))
            if path == task.out or task.out in path.parents:  # e.g. a case folder not writable
                failed = output_error(exc, path, dataset=dataset, case=case.case_id)
        return CaseOutcome(dataset, case.case_id, "failed",
                           error=case_error(failed, dataset, case))


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
        return CaseOutcome(dataset, case.case_id, "failed", error=case_error(exc, dataset, case))


#: Exceptions meaning "the worker process died", from the process pool and from Dask.
WORKER_DIED = ("BrokenProcessPool", "KilledWorker")


def case_error(exc: BaseException, dataset: str, case: Case) -> ErrorRecord:
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
