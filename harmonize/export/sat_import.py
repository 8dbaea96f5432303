"""SAT-DS interop, import: a SAT-DS JSONL (format: :mod:`harmonize.export.sat`) in as a dataset.

:func:`import_sat` (``harmonize import sat``) reads a SAT-DS JSONL as a dataset and writes our
manifest with :func:`harmonize.manifest.build.build_manifest` (masks read and checked). Labels come
from the ``harmonize`` key when present; else from ``labels_from`` (our descriptor YAML: values and
merges of the masks as SAT-DS stores them); else ``label[i]`` -> value ``i + 1``. In that last
case, names whose value occurs in no mask of the file (SAT-DS's appended merged names, e.g. a
``kidney`` appended after ``left kidney`` and ``right kidney``) are left out with a warning. Each
line becomes one single-channel case; ``split_json`` makes SAT-DS's train/test the official split.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonlines
import numpy as np

from harmonize.errors import ErrorRecord, LabelError, ManifestError
from harmonize.export import ExportError
from harmonize.export.sat import REQUIRED_KEYS
from harmonize.labels.vocabulary import load_vocabulary
from harmonize.manifest.build import build_manifest, write_manifest, write_splits
from harmonize.manifest.records import Case, ManifestRecord, Skipped
from harmonize.manifest.splits import DEFAULT_RATIOS
from harmonize.plugin.dataset import DatasetPlugin, strip_nifti_suffix
from harmonize.plugin.descriptor import Descriptor, load_descriptor, parse_descriptor
from harmonize.plugin.discovery import discover
from harmonize.read.volume import Volume, read_volume

OUR_MODALITY = {"CT": "CT", "MRI": "MR", "MR": "MR", "PET": "PET"}
OUR_SPLIT = {"train": "train", "training": "train", "val": "val", "valid": "val",
             "validation": "val", "test": "test", "testing": "test", "unknown": None, None: None}
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_DATASET_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def read_sat_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a SAT-DS JSONL; a line without SAT-DS's keys is a :class:`ManifestError`."""
    path = Path(path)
    try:
        with jsonlines.open(path) as reader:
            lines = list(reader.iter(type=dict))
    except (OSError, jsonlines.InvalidLineError) as exc:
        raise ManifestError(f"cannot read SAT-DS JSONL: {exc}", file=path,
                            hint="pass a file from SAT-DS's data/jsonl/ folder") from exc
    for number, line in enumerate(lines, start=1):
        missing = [k for k in REQUIRED_KEYS if k not in line]
        if missing or not isinstance(line.get("label"), list):
            raise ManifestError(f"line {number}: missing SAT-DS key(s) {missing or ['label']}",
                                file=path, hint="each line needs " + ", ".join(REQUIRED_KEYS))
        if line["official_split"] not in OUR_SPLIT:
            raise ManifestError(
                f"line {number}: official_split {line['official_split']!r} is not one of "
                f"{sorted(k for k in OUR_SPLIT if k)}", file=path,
                hint="fix the line, or map the value to train/val/test/unknown")
    if not lines:
        raise ManifestError("the SAT-DS JSONL is empty", file=path)
    return lines


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._+-") or "case"


def case_ids(lines: Sequence[dict[str, Any]]) -> list[str]:
    """One safe, unique case id per line: our ``harmonize.case_id``, else the patient id (without
    a NIfTI suffix) when every line has its own patient, else from the image path."""
    ours = [line.get("harmonize", {}).get("case_id") if isinstance(line.get("harmonize"), dict)
            else None for line in lines]
    if all(ours) and len(set(ours)) == len(ours):
        return [_safe(str(c)) for c in ours]
    patients = [_safe(strip_nifti_suffix(str(line["patient_id"]))) for line in lines]
    if len(set(patients)) == len(patients):
        return patients
    parts = [list(Path(str(line["image"])).parts) for line in lines]
    ids: list[str] = []
    for depth in range(1, max(len(p) for p in parts) + 1):
        ids = [_safe("_".join([*p[:-1][len(p) - depth:], strip_nifti_suffix(p[-1])]))
               for p in parts]
        if len(set(ids)) == len(ids):
            break
    seen: dict[str, int] = {}
    unique = []
    for cid in ids:
        seen[cid] = seen.get(cid, 0) + 1
        unique.append(cid if seen[cid] == 1 else f"{cid}-{seen[cid]}")
    return unique


class SatJsonlDataset(DatasetPlugin):
    """A SAT-DS JSONL as a dataset: one case per line; labels per line (see module doc)."""

    demo = False

    def __init__(self, descriptor: Descriptor, lines: Sequence[dict[str, Any]], *,
                 base_dir: Path, case_labels: Sequence[dict[str, list[int]] | None],
                 split_of: dict[str, str] | None = None, source: Path | None = None) -> None:
        super().__init__(descriptor)
        self.lines = list(lines)
        self.base_dir = Path(base_dir)
        self.case_labels = list(case_labels)
        self.split_of = split_of or {}
        self.source_file = source
        self.observed_max = 0
        self.source = f"SAT-DS JSONL {source}" if source else "SAT-DS JSONL"

    def _path(self, text: str) -> Path:
        path = Path(text)
        return path if path.is_absolute() else self.base_dir / path

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        ids = case_ids(self.lines)
        for number, (line, case_id, labels) in enumerate(
                zip(self.lines, ids, self.case_labels), start=1):
            image, mask = self._path(str(line["image"])), line.get("mask")
            where = f"line {number} of {self.source_file}"
            if not image.exists():
                if image.parent.is_file():
                    yield Skipped(image, f"{where}: SAT-DS channel pseudo-path (a 4D file plus "
                                  "a channel name) is not supported", case_id=case_id,
                                  hint="split the 4D file into one NIfTI per channel")
                else:
                    yield Skipped(image, f"{where}: image file does not exist", case_id=case_id,
                                  hint="pass --base-dir: the folder SAT-DS paths are relative to")
                continue
            mask_path = self._path(str(mask)) if mask else None
            if (line.get("harmonize") or {}).get("layout") == "channels":
                yield Skipped(mask_path or image, f"{where}: a channel mask (C, X, Y, Z: one "
                              "channel per structure, as SAT-DS reads this dataset) is not "
                              "imported", case_id=case_id,
                              hint="use the manifest `harmonize run` wrote for this export")
                continue
            if mask_path is not None and not mask_path.exists():
                yield Skipped(mask_path, f"{where}: mask file does not exist", case_id=case_id,
                              hint="pass --base-dir or restore the mask")
                continue
            patient = str(line["patient_id"])
            split = self.split_of.get(patient, OUR_SPLIT[line["official_split"]])
            modality = str(line.get("modality", ""))
            channel = modality.split(" ", 1)[1] if " " in modality else None
            yield Case(
                case_id=case_id, patient_id=patient, images=(image,), label=mask_path,
                official_split=split, channel_names=(channel,) if channel else None,
                labels=labels,
                metadata={"sat": {"dataset": line.get("dataset"), "modality": modality,
                                  "line": number, "label": list(line["label"])}},
            )

    def read_label(self, case: Case) -> Volume | None:
        """The mask as a plain volume; remembers the largest value seen (see :func:`import_sat`)."""
        if case.label is None:
            return None
        volume = read_volume(case.label, kind="label")
        if volume.data.size:
            self.observed_max = max(self.observed_max, int(np.rint(volume.data.max())))
        return volume


@dataclass
class SatImport:
    manifest: Path | None
    records: list[ManifestRecord]
    skipped: list[Skipped]
    errors: list[ErrorRecord]
    warnings: list[str]


def _modality(lines: Sequence[dict[str, Any]], path: Path) -> str:
    found = {OUR_MODALITY.get(str(line["modality"]).split(" ")[0]) for line in lines}
    if None in found or len(found) != 1:
        raise ManifestError(
            f"modalities {sorted({str(line['modality']) for line in lines})} do not map to one "
            "of CT, MR, PET", file=path, hint="import each modality's lines as its own dataset")
    return found.pop()  # type: ignore[return-value]


def _descriptor(dataset_id: str, lines: Sequence[dict[str, Any]], path: Path,
                labels_from: Path | None) -> Descriptor:
    if labels_from is not None:
        desc = load_descriptor(Path(labels_from))
        return dataclasses.replace(desc, id=dataset_id)
    names = max((list(line["label"]) for line in lines), key=len)
    if not names:
        raise ManifestError("no label names in the JSONL", file=path,
                            hint="pass --labels-from DESCRIPTOR")
    values = {i + 1: str(n) for i, n in enumerate(names)}
    return parse_descriptor({
        "id": dataset_id, "name": f"SAT-DS {lines[0]['dataset']}",
        "modality": _modality(lines, path), "values": values,
        "classes": {str(n): [i + 1] for i, n in enumerate(names)},
        "description": f"imported from SAT-DS JSONL {path.name}",
    }, source=path)


def line_labels(line: dict[str, Any]) -> tuple[dict[str, list[int]], bool]:
    """A line's class -> mask values, and whether they are exact (our ``harmonize`` key)."""
    extra = line.get("harmonize")
    if isinstance(extra, dict) and isinstance(extra.get("labels"), dict):
        return {str(k): [int(v) for v in vs] for k, vs in extra["labels"].items()}, True
    return {str(n): [i + 1] for i, n in enumerate(line["label"])}, False


def _check_names(labels: Sequence[dict[str, list[int]]], path: Path, dataset_id: str) -> None:
    vocabulary = load_vocabulary()
    unknown: list[str] = []
    for mapping in labels:
        for name in mapping:
            try:
                vocabulary.resolve(name)
            except LabelError:
                if name not in unknown:
                    unknown.append(name)
    if unknown:
        raise LabelError(
            f"label name(s) {unknown} are not canonical names or synonyms", dataset=dataset_id,
            file=path, hint="pass --labels-from DESCRIPTOR (our YAML format) mapping the mask "
                            "values to canonical names, or add synonyms to the vocabulary")


def default_base_dir(jsonl: Path) -> Path:
    """The folder a SAT-DS JSONL's relative paths start from: the SAT-DS root for
    ``<root>/data/jsonl/<name>.jsonl`` (SAT-DS's own layout), the export folder for
    ``<out>/jsonl/<name>.jsonl`` (``harmonize export sat``), else the current folder."""
    folder = Path(jsonl).resolve().parent
    if folder.name == "jsonl":
        return folder.parent.parent if folder.parent.name == "data" else folder.parent
    return Path.cwd()


def import_sat(
    jsonl: Path,
    dataset_id: str,
    out: Path,
    *,
    labels_from: Path | None = None,
    base_dir: Path | None = None,
    split_json: Path | None = None,
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_RATIOS,
) -> SatImport:
    """Read a SAT-DS JSONL as dataset ``dataset_id``; write ``out/<dataset_id>.jsonl`` and
    ``out/splits.json`` (see the module doc). ``base_dir`` resolves relative paths (default:
    :func:`default_base_dir`); ``split_json`` is SAT-DS's ``{"train": [...], "test": [...]}``."""
    jsonl = Path(jsonl)
    base_dir = default_base_dir(jsonl) if base_dir is None else base_dir
    if not _DATASET_ID.match(dataset_id):
        raise ExportError(f"dataset id {dataset_id!r} must be lowercase letters, digits, '.', "
                          "'_' or '-'", hint="e.g. --dataset-id sat-my-dataset")
    lines = read_sat_jsonl(jsonl)
    descriptor = _descriptor(dataset_id, lines, jsonl, labels_from)
    per_line = [line_labels(line) for line in lines]
    exact = all(e for _, e in per_line)
    case_labels: list[dict[str, list[int]] | None] = (
        [None] * len(lines) if labels_from is not None and not exact else [m for m, _ in per_line])
    if labels_from is None or exact:
        _check_names([m for m, _ in per_line], jsonl, dataset_id)
    split_of: dict[str, str] = {}
    if split_json is not None:
        doc = json.loads(Path(split_json).read_text(encoding="utf-8"))
        for split in ("train", "test"):
            split_of.update({str(p): split for p in doc.get(split, [])})
    plugin = SatJsonlDataset(descriptor, lines, base_dir=Path(base_dir),
                             case_labels=case_labels, split_of=split_of, source=jsonl)
    found = discover(plugin, plugin.base_dir)
    result = build_manifest(plugin, found, Path(out), seed=seed, ratios=ratios)
    warnings = list(result.warnings)
    if labels_from is None and not exact and result.records:
        dropped = _drop_unobserved(result.records, plugin.observed_max)
        if dropped:
            warnings.append(
                f"label name(s) {dropped} are at positions beyond the largest mask value "
                f"({plugin.observed_max}) of any case, so they are not mask values (SAT-DS "
                "derives such merged classes in its loader.py); they were not imported. Parent "
                "classes come from the vocabulary, or pass --labels-from DESCRIPTOR")
            assert result.path is not None
            write_manifest(result.path, result.records)
            write_splits(Path(out))
    return SatImport(manifest=result.path, records=result.records, skipped=found.skipped,
                     errors=result.errors, warnings=warnings)


def _drop_unobserved(records: list[ManifestRecord], observed_max: int) -> list[str]:
    dropped: list[str] = []
    for record in records:
        for name, values in list(record.labels.items()):
            if values and min(values) > observed_max:
                del record.labels[name]
                if name not in dropped:
                    dropped.append(name)
        record.label = [n for n in record.label if n in record.labels]
        record.annotated = [n for n in record.annotated if n in record.labels]
    return dropped
