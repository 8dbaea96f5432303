"""Build, write, read and validate JSONL manifests (one record per case, jsonlines)."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonlines

from harmonize import jsonio
from harmonize.errors import ErrorRecord, ManifestError, RefusedRecordWarning
from harmonize.files import sha256_path, writable_folder, write_text_atomic
from harmonize.gate import check_identifier, remember_root
from harmonize.labels.rules import class_values
from harmonize.labels.vocabulary import Vocabulary, load_vocabulary
from harmonize.manifest.guard import Shrink, check_shrink, nothing_to_write, skipped_record
from harmonize.manifest.lesions import instance_fields
from harmonize.manifest.records import (
    SCHEMA_VERSION,
    Case,
    ManifestRecord,
    upgrade_v1,
)
from harmonize.manifest.schema import schema_for
from harmonize.manifest.splits import assign_splits, splits_document
from harmonize.plugin.case import case_rescale
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.plugin.discovery import Discovery
from harmonize.read.case import case_channels, present_values, read_case, record_files
from harmonize.read.volume import Volume, read_header

SPLITS_FILE = "splits.json"


def relative_path(path: Path, start: Path) -> str:
    """POSIX path of ``path`` relative to the folder ``start`` (so output folders can move)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def has_label(plugin: DatasetPlugin, case: Case) -> bool:
    """True if the case is labelled: :attr:`Case.label` is set (a file, or whatever the plugin's
    own :meth:`~DatasetPlugin.read_label` reads). ``None`` means unlabelled (e.g. a hidden test
    set), even for plugins with their own reader, so such records list no annotated class."""
    return case.label is not None


def case_class_values(
    plugin: DatasetPlugin, case: Case, vocabulary: Vocabulary, label: Volume | None
) -> dict[str, list[int]]:
    """Canonical name -> mask values for a labelled case whose label map (as read) is ``label``
    (undeclared values raise). A label that carries its own class table (structure masks
    combined by :func:`~harmonize.labels.overlap.combine_structures`) replaces the descriptor's
    classes and :attr:`Case.labels`: its structures are the case's annotated classes. With the
    descriptor's ``partial_labels`` a class is annotated only where all its values occur."""
    observed = present_values(label.data) if label is not None else None
    read_classes = label.classes if label is not None else None
    annotated: Sequence[str] | None = case.annotated if read_classes is None else None
    if plugin.descriptor.partial_labels and read_classes is None and observed is not None:
        # partially labelled (descriptor partial_labels): a class whose values do not all
        # occur is not annotated in this case
        labelled = [name for name, values in plugin.descriptor.classes.items()
                    if set(values) <= set(observed)]
        annotated = labelled if annotated is None else [n for n in annotated if n in labelled]
    return class_values(
        plugin.descriptor, vocabulary, observed=observed, annotated=annotated,
        case_labels=case.labels if read_classes is None else read_classes,
        case=case.case_id, file=case.label,
    )


def source_section(
    case: Case, manifest_dir: Path, hashes: dict[Path, str] | None = None
) -> dict[str, Any]:
    """The record's ``source``: source paths relative to ``manifest_dir`` and their sha256
    (taken from ``hashes`` when given, else computed), and the case's channel names as shipped."""
    hashes = hashes if hashes is not None else {p: sha256_path(p) for p in case.files()}
    source: dict[str, Any] = {
        "images": [{"path": relative_path(p, manifest_dir), "sha256": hashes[p]}
                   for p in case.images],
        "label": None if case.label is None else {
            "path": relative_path(case.label, manifest_dir), "sha256": hashes[case.label],
        },
    }
    if case.channel_names:  # the names as the dataset ships them (``channels`` is canonical)
        source["channels"] = list(case.channel_names)
    return source


def record_for_case(
    plugin: DatasetPlugin,
    case: Case,
    manifest_dir: Path,
    *,
    vocabulary: Vocabulary | None = None,
    check_labels: bool = True,
) -> ManifestRecord:
    """A manifest record describing the case's *source* files (no normalization).

    With ``check_labels`` (the default) the image and label are read in full: label values are
    checked against the descriptor, and the record gets the image's content ``fingerprint`` (so
    the same image in two datasets is found and kept in one split) and any instance features.
    """
    vocabulary = vocabulary or load_vocabulary()
    desc = plugin.descriptor
    # the one reading layer: channel grids, label grid and values checked by one rule; without
    # check_labels only the image header is read, the label is still checked against its grid
    data = read_case(case, plugin=plugin, image_voxels=check_labels)
    extra: dict[str, Any] = {}
    rescale = case_rescale(case, desc.rescale)
    if rescale is not None:  # the files are not in physical units: read_case applies it
        extra["rescale"] = {"slope": rescale[0], "intercept": rescale[1]}
    if check_labels:  # the image's voxels identify duplicates across datasets
        from harmonize.engine.normalize import fingerprint

        extra["fingerprint"] = fingerprint(data.image)
        extra.update(instance_fields(plugin, case, image=data.image, label=data.label))
    if data.label is not None and data.label.operations:  # e.g. a DICOM-SEG's segment mapping
        extra["label_reading"] = data.label.operations
    labels: dict[str, list[int]] = {}
    if has_label(plugin, case):
        labels = case_class_values(plugin, case, vocabulary, data.label)
    # the record's geometry is the first file's, or the plugin's reading of odd formats
    header = data.image if plugin.reads_images else read_header(case.images[0])
    source = source_section(case, manifest_dir)
    images = [entry["path"] for entry in source["images"]]
    return ManifestRecord(
        dataset=desc.id,
        case_id=case.case_id,
        patient_id=case.patient_id,
        modality=desc.modality,
        image=images[0] if len(images) == 1 else images,
        mask=source["label"]["path"] if source["label"] else None,
        label=list(labels),
        labels=labels,
        annotated=list(labels),
        official_split=case.official_split,
        split=None,
        shape=list(header.data.shape if isinstance(header, Volume) else header.shape),
        spacing=[float(s) for s in header.spacing],
        orientation=header.orientation,
        source=source,
        stage="source",
        channels=case_channels(plugin, case),
        affine=[[float(v) for v in row] for row in header.affine],
        ct_window=list(case.ct_window) if case.ct_window else None,
        same_patient_as=list(case.same_patient_as),
        metadata=dict(case.metadata),
        extra=extra,
    )


@dataclass
class ManifestResult:
    """Records written for one dataset, and every case that did not make it (with the reason).

    ``kept`` is set when the manifest on disk was kept because the new one would lose cases."""

    dataset: str
    path: Path | None
    records: list[ManifestRecord] = field(default_factory=list)
    discovery: Discovery | None = None
    errors: list[ErrorRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kept: Shrink | None = None


def build_manifest(
    plugin: DatasetPlugin,
    discovery: Discovery,
    out_dir: Path,
    *,
    seed: int = 0,
    ratios: Sequence[float] = (0.7, 0.1, 0.2),
    progress: Any = None,
    allow_shrink: bool = False,
    workers: int = 1,
) -> ManifestResult:
    """Describe every discovered case, assign splits and write ``<out_dir>/<dataset>.jsonl``.

    ``workers`` > 1 describes cases in that many processes (the engine's local pool); records
    keep the discovery order whatever order they finish in.

    A case that fails becomes an :class:`ErrorRecord`; the others are written. Nothing is written
    and ``path`` stays ``None`` (an existing manifest and ``splits.json`` are kept) when no case
    yields a record (an ``errors`` entry says so) or when the manifest on disk lists cases the new
    one lacks and ``allow_shrink`` is false (``kept`` and an ``errors`` entry say which and why,
    :mod:`harmonize.manifest.guard`). Raises :class:`~harmonize.errors.OutputError` when
    ``out_dir`` cannot be written, and :class:`ManifestError` when another manifest in it cannot
    be read (their splits are followed).
    The dataset root becomes a trusted root of this user (:func:`harmonize.gate.remember_root`),
    so consumers of the manifest may read the files it points at outside ``out_dir``.
    """
    out_dir = Path(out_dir)
    dataset = plugin.dataset_id
    result = ManifestResult(dataset=dataset, path=None, discovery=discovery,
                            errors=list(discovery.errors))
    if discovery.errors and not discovery.cases:
        return result
    writable_folder(out_dir)
    from harmonize.engine.executors import make_executor

    cases = list(discovery.cases)
    done: dict[int, ManifestRecord | BaseException] = {}
    executor = make_executor("local", workers=max(1, min(workers, len(cases) or 1)))
    try:
        for index, outcome in executor.imap_unordered(
                functools.partial(_describe, plugin, out_dir, load_vocabulary()), cases):
            done[index] = outcome
            if progress is not None:
                progress()
    finally:
        executor.close()
    for index, case in enumerate(cases):
        outcome = done[index]
        if isinstance(outcome, BaseException):
            result.errors.append(ErrorRecord.from_exception(outcome, dataset=dataset,
                                                            case=case.case_id))
        else:
            result.records.append(outcome)
    path = out_dir / f"{dataset}.jsonl"
    problems = [*result.errors, *(skipped_record(dataset, s) for s in discovery.skipped)]
    result.kept = check_shrink(path, [r.case_id for r in result.records], problems,
                               dataset=dataset, allow_shrink=allow_shrink)
    if result.kept is not None:
        result.errors.append(result.kept.error())
        return result
    if not result.records:
        if not result.errors:
            result.errors.append(nothing_to_write(dataset, path, len(discovery.skipped)))
        return result
    result.warnings = assign_splits(result.records, seed=seed, ratios=ratios,
                                    fixed=other_records(out_dir, exclude={dataset}))
    result.path = path
    write_manifest(result.path, result.records)
    remember_root(discovery.root)  # the manifest's paths point there: trust it for this user
    write_splits(out_dir)
    return result


def _describe(plugin: DatasetPlugin, out_dir: Path, vocabulary: Vocabulary, case: Case
              ) -> ManifestRecord:
    """One case's source record (a pool worker's task)."""
    return record_for_case(plugin, case, out_dir, vocabulary=vocabulary)


def dumps(record: ManifestRecord | dict[str, Any]) -> str:
    data = record.to_json() if isinstance(record, ManifestRecord) else record
    return jsonio.dumps(data, ensure_ascii=False, allow_nan=False)


def write_manifest(path: Path, records: Iterable[ManifestRecord]) -> None:
    """Write records sorted by case id, atomically (temp file + rename)."""
    ordered = sorted(records, key=lambda r: r.case_id)
    write_text_atomic(Path(path), "".join(dumps(r) + "\n" for r in ordered))


def manifest_paths(out_dir: Path) -> list[Path]:
    """Every manifest in a folder (``errors.jsonl`` is a report, not a manifest)."""
    return [m for m in sorted(Path(out_dir).glob("*.jsonl")) if m.name != "errors.jsonl"]


def expand_manifests(paths: Iterable[str | Path]) -> list[Path]:
    """Manifest files and folders, as every command that reads several manifests takes them:
    a file as given, a folder as its manifests (:func:`manifest_paths`, in name order)."""
    return [m for p in map(Path, paths) for m in (manifest_paths(p) if p.is_dir() else [p])]


def other_records(out_dir: Path, *, exclude: set[str]) -> list[ManifestRecord]:
    """Records of the manifests already in ``out_dir`` except the ``exclude`` datasets' own."""
    return [r for m in manifest_paths(out_dir) if m.stem not in exclude
            for r in read_manifest(m, check_paths=False)]


def write_splits(out_dir: Path) -> dict[str, list[str]]:
    """(Re)write ``splits.json`` from every manifest in ``out_dir``."""
    records = [r for m in manifest_paths(out_dir) for r in read_manifest(m, check_paths=False)]
    doc = splits_document(records)
    write_text_atomic(Path(out_dir) / SPLITS_FILE, jsonio.dumps(doc, indent=1) + "\n")
    return doc


def read_manifest(path: Path, *, refused: list[ManifestError] | None = None,
                  check_paths: bool = True) -> list[ManifestRecord]:
    """Read a manifest; a newer schema version or a broken line is a :class:`ManifestError`.

    Every record passes the gate (:mod:`harmonize.gate`): a record whose ``dataset`` or
    ``case_id`` is not a safe name, that is malformed, or (``check_paths``) whose image or mask
    path leads outside the manifest's folder and every trusted root is refused and the rest is
    read. Its error (naming manifest, line, field and value) goes to ``refused`` when given,
    else is emitted as a :class:`RefusedRecordWarning`. ``check_paths=False`` is for readers
    that open no file of the records (splits, duplicates by id).
    """
    path = Path(path)
    records = []
    try:
        with jsonlines.open(path) as reader:
            for lineno, obj in enumerate(reader.iter(type=dict), start=1):
                version = obj.get("schema_version")
                if "schema_version" not in obj:
                    raise ManifestError(
                        f"line {lineno} is not a manifest record (no schema_version)",
                        file=path,
                        hint="pass the <dataset>.jsonl manifests, not errors.jsonl or another file",
                    )
                if not isinstance(version, int) or version > SCHEMA_VERSION:
                    raise ManifestError(
                        f"line {lineno}: schema_version {version!r} is not supported "
                        f"(this harmonize reads up to {SCHEMA_VERSION})",
                        dataset=obj.get("dataset"), case=obj.get("case_id"), file=path,
                        hint="upgrade harmonize-med, or regenerate the manifest",
                    )
                record, problem = _gate_record(obj, path, lineno, check_paths=check_paths)
                if record is not None:
                    records.append(record)
                elif refused is not None and problem is not None:
                    refused.append(problem)
                else:
                    warnings.warn(str(problem), RefusedRecordWarning, stacklevel=2)
    except OSError as exc:
        raise ManifestError(f"cannot read manifest: {exc}", file=path) from exc
    except jsonlines.InvalidLineError as exc:
        raise ManifestError(
            f"line {exc.lineno}: not valid JSON", file=path, hint="regenerate the manifest"
        ) from exc
    return records


def _gate_record(obj: dict[str, Any], path: Path, lineno: int, *, check_paths: bool
                 ) -> tuple[ManifestRecord | None, ManifestError | None]:
    """The record of a manifest line, or the reason it is refused (unsafe id, malformed
    fields, a path outside the manifest's folder and the trusted roots)."""
    problem = _unsafe_id(obj, path, lineno)
    if problem is not None:
        return None, problem
    try:
        record = ManifestRecord.from_json(obj)
    except (TypeError, ManifestError) as exc:
        return None, ManifestError(
            f"line {lineno}: malformed record ({exc}); the record was not read",
            dataset=obj.get("dataset"), case=obj.get("case_id"), file=path,
            hint="check it with `harmonize validate`, or regenerate the manifest")
    if check_paths:
        try:
            record_files(record, path.resolve().parent)
        except ManifestError as exc:
            exc.message, exc.file = f"line {lineno}: {exc.message}", str(path)
            return None, exc
    return record, None


def _unsafe_id(obj: dict[str, Any], path: Path, lineno: int) -> ManifestError | None:
    """The refusal of a record whose dataset or case id is not a safe name, else ``None``."""
    for key in ("dataset", "case_id"):
        try:
            check_identifier(obj.get(key), what=key, dataset=obj.get("dataset"), file=path,
                             error=ManifestError)
        except ManifestError as exc:
            exc.message = f"line {lineno}: {exc.message}; the record was not read"
            return exc
    return None


def validate_manifest(path: Path) -> list[str]:
    """Problems found by the JSON Schema of each line's version (3, or the frozen version-2
    schema for version 1 and 2 lines), one readable string per problem (empty = valid).

    A line that is not a JSON object is reported as a problem and ends the check of the file.
    """
    from jsonschema import Draft202012Validator

    validators: dict[object, Draft202012Validator] = {}
    problems = []
    try:
        with jsonlines.open(Path(path)) as reader:
            for lineno, obj in enumerate(reader.iter(type=dict), start=1):
                obj = dict(upgrade_v1(obj))  # version 1 lines are valid version 2 once upgraded
                version = obj.get("schema_version")
                if version not in validators:
                    validators[version] = Draft202012Validator(schema_for(version))
                found = validators[version].iter_errors(obj)
                for error in sorted(found, key=lambda e: list(e.path)):
                    where = "/".join(str(p) for p in error.path) or "(record)"
                    problems.append(f"{path}:{lineno}: {where}: {error.message}")
    except jsonlines.InvalidLineError as exc:
        problems.append(f"{path}:{exc.lineno}: not a JSON object ({exc}); regenerate the manifest")
    except OSError as exc:
        problems.append(f"{path}: cannot read manifest: {exc}")
    return problems
