"""The RECIST release's metadata files (series.json, patients.csv, windows_mapping.json,
recist_measurements.csv), read and indexed for discovery; a missing or malformed file is a
:class:`DiscoveryError` naming it."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harmonize.plugin import DiscoveryError

SUBSETS = {"train": "train", "training": "train", "test": "test", "testing": "test"}
#: utils/windowing.py WINDOWS: window name in windows_mapping.json -> (level, width) in HU
WINDOWS = {
    "lung": (-500, 1400), "abdomen": (40, 350), "bone": (400, 1000), "air": (-426, 1000),
    "brain": (50, 100), "mediastinum": (50, 350),
}

def normalize_subset(value: str) -> str | None:
    """``training``/``train`` -> ``train``, ``test``/``testing`` -> ``test``; anything else None."""
    return SUBSETS.get(str(value).strip().lower())



@dataclass
class Metadata:
    """The release's metadata files, indexed for discovery."""

    series: dict[str, dict[str, Any]]
    patients: dict[int, dict[str, Any]]
    windows: dict[str, str]
    targets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    study_order: dict[str, str] = field(default_factory=dict)
    assessed_studies: set[str] = field(default_factory=set)



def load_metadata(data: Path, dataset: str) -> Metadata:
    """Read series.json, patients.csv, windows_mapping.json and recist_measurements.csv;
    a missing or malformed file is a :class:`DiscoveryError` naming it."""
    folder = data / "metadata"
    series_rows = _json(folder / "series.json", list, dataset)
    series: dict[str, dict[str, Any]] = {}
    for row in series_rows:
        _require(row, ("uuid", "patient_id", "region", "study_uuid", "study_date"),
                 folder / "series.json", dataset)
        series[str(row["uuid"])] = row
    windows = _json(folder / "windows_mapping.json", dict, dataset)
    for key, name in windows.items():
        if name not in WINDOWS:
            raise DiscoveryError(
                f"window {name!r} for {key} is not one of the release's windows "
                f"{sorted(WINDOWS)}", dataset=dataset,
                file=folder / "windows_mapping.json", hint="restore the file from the release",
            )
    patients: dict[int, dict[str, Any]] = {}
    path = folder / "patients.csv"
    for row in _csv(path, ("patient_id", "subset"), dataset):
        split = normalize_subset(row["subset"])
        if split is None:
            raise DiscoveryError(f"patient {row['patient_id']}: unknown subset {row['subset']!r}",
                                 dataset=dataset, file=path,
                                 hint="subset must be training or test")
        age = row.get("age")
        patients[int(row["patient_id"])] = {
            "subset": row["subset"], "split": split, "sex": row.get("sex") or None,
            "age": int(float(age)) if age else None, "diagnosis": row.get("diagnosis") or None,
            "histology": row.get("histology") or None,
            "health_insurance": row.get("health_insurance") or None,
        }
    meta = Metadata(series=series, patients=patients, windows=windows)
    _load_measurements(data / "recist_measurements.csv", meta, dataset)
    return meta

def _load_measurements(path: Path, meta: Metadata, dataset: str) -> None:
    columns = ("patient_id", "study_uuid", "uuid", "lesion_label_value", "lesion_label_alias",
               "recist_measurement_mm", "study_order")
    by_study: dict[str, set[str]] = defaultdict(set)
    for row in _csv(path, columns, dataset):
        measurement = float(row["recist_measurement_mm"])
        meta.targets.setdefault(row["uuid"], []).append({
            "value": int(float(row["lesion_label_value"])),
            "alias": row["lesion_label_alias"],
            "measurement_mm": int(measurement) if measurement.is_integer() else measurement,
        })
        by_study[row["study_uuid"]].add(row["study_order"])
    meta.assessed_studies = set(by_study)
    for study, orders in by_study.items():
        if len(orders) > 1:
            raise DiscoveryError(f"study {study} has several study_order values {sorted(orders)}",
                                 dataset=dataset, file=path,
                                 hint="restore the file from the release")
        meta.study_order[study] = orders.pop()
    # studies without measurements: order the patient's study dates (baseline first)
    studies: dict[int, set[tuple[str, str]]] = defaultdict(set)
    for row in meta.series.values():
        studies[int(row["patient_id"])].add((str(row["study_date"]), str(row["study_uuid"])))
    for dated in studies.values():
        for rank, (_, study) in enumerate(sorted(dated)):
            meta.study_order.setdefault(study, "baseline" if rank == 0 else f"follow-up-{rank}")
    for rows in meta.targets.values():
        rows.sort(key=lambda t: t["value"])

def _json(path: Path, kind: type, dataset: str) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DiscoveryError(f"cannot read {path.name}: {exc}", dataset=dataset,
                             file=path, hint="restore the metadata file from the release") from exc
    if not isinstance(data, kind):
        raise DiscoveryError(f"{path.name} must hold a JSON {kind.__name__}",
                             dataset=dataset, file=path,
                             hint="restore the metadata file from the release")
    return data

def _csv(path: Path, columns: tuple[str, ...], dataset: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DiscoveryError(f"cannot read {path.name}: {exc}", dataset=dataset,
                             file=path, hint="restore the file from the release") from exc
    for row in rows:
        _require(row, columns, path, dataset)
    return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in rows]

def _require(row: Any, keys: tuple[str, ...], path: Path, dataset: str) -> None:
    missing = [k for k in keys if not isinstance(row, dict) or row.get(k) in (None, "")]
    if missing:
        raise DiscoveryError(f"{path.name}: a row lacks {missing}: {row}",
                             dataset=dataset, file=path,
                             hint="restore the metadata file from the release")
