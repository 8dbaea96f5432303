"""Fabricate the RECIST dataset (Zenodo 17788162) in its released layouts (see plugins/recist.py).

``make_recist(root, layout="final-formatted")`` writes ``root/final-formatted/`` as
format_final_folder.py does; ``layout="final"`` (alias ``"unformatted"``) writes the older
``root/final/images/{train,test}/...`` layout with bare SeriesInstanceUID file names. Both carry
metadata/{patients.csv, series.json, windows_mapping.json} and recist_measurements.csv with the
release's columns, and the quirks the plugin must handle:

* instance masks with gaps in the values (objects removed for being small, as
  get_3d_instance_annotated_lesions.py does) and labels/*.json mapping value -> "type,site";
* one patient with a baseline and a follow-up study, each with a thorax and an abdomen series, and
  target lesions whose mask value changes between studies while the alias stays;
* ``training``/``test`` in the CSVs against ``train``/``test`` folders;
* a study without RECIST rows (its order comes from the study dates);
* CT stored as int16 with scl_inter -1024 on thorax series (as dcm2niix writes raw DICOM values) and a
  dcm2niix-like LAS affine.

:func:`recist_lesions` gives every fabricated lesion's true semi-axes so tests can check measurements.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from harmonize.testing import ct_phantom

#: (region) -> in-plane spacing, slice spacing, slice thickness, window name
REGION_GRID = {
    "thorax": (0.740234375, 1.0, 1.0, "lung"),
    "abdomen": (0.78125, 1.5, 1.5, "abdomen"),
}
LESION_HU = {"m": 60.0, "n": 35.0, "t": 20.0}
RECIST_COLUMNS = (
    "patient_id", "subset", "study_date", "study_uuid", "uuid", "filename", "region",
    "final_3d_objects", "lesion_label_value", "lesion_label_alias", "recist_measurement_mm",
    "study_order",
)
PATIENT_COLUMNS = (
    "patient_id", "subset", "first_study_date", "sex", "age", "diagnosis", "histology",
    "health_insurance",
)


@dataclass(frozen=True)
class Lesion:
    """One fabricated lesion: mask value, release label, centre and semi-axes (mm), in-plane angle."""

    value: int
    label: str
    centre: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    angle_deg: float
    alias: str | None = None

    @property
    def recist_mm(self) -> int:
        """What a radiologist reports: long axis for tumours, short axis for lymph nodes."""
        a, b, _ = self.semi_axes
        return int(round(2 * (b if self.label.startswith("n,") else a)))


# (pid, subset, sex, age, diagnosis, histology, insurance, studies)
# study: (date, order or None when the study has no RECIST rows, [(region, lesions)])
_L = Lesion
_PATIENTS = [
    (1, "training", "F", 57, "lung cancer", "Adenocarcinoma", "public", [
        ("20230426", "baseline", [
            ("thorax", [_L(1, "m,lung", (-8, -7, 0), (4.0, 2.5, 3.0), 20),
                        _L(2, "m,lung", (8, -8, 0), (2.6, 2.2, 2.5), 0),
                        _L(4, "t,lung", (7, 8, 1), (6.5, 3.5, 4.0), 35, "A"),
                        _L(5, "n,mediastinum", (-8, 8, -1), (5.0, 4.0, 3.5), -25)]),
            ("abdomen", [_L(1, "m,liver", (-7, -7, 0), (6.0, 4.5, 4.5), 60, "B"),
                         _L(2, "n,periaortic", (8, 7, 0), (5.5, 4.0, 4.5), 10, "C")]),
        ]),
        ("20230802", "follow-up-1", [
            ("thorax", [_L(1, "m,lung", (-8, -7, 0), (3.0, 2.2, 2.5), 20),
                        _L(2, "t,lung", (7, 8, 1), (5.0, 3.0, 3.5), 35, "A")]),
            ("abdomen", [_L(1, "n,periaortic", (8, 7, 0), (4.5, 3.0, 4.0), 10, "C"),
                         _L(3, "m,liver", (-7, -7, 0), (5.0, 4.0, 4.0), 60, "B")]),
        ]),
    ]),
    (3, "test", "M", 64, "gastric cancer", "", "uninsured", [
        ("20210615", "baseline", [
            ("abdomen", [_L(1, "m,liver", (-6, 6, 0), (6.5, 5.0, 4.5), -40, "A"),
                         _L(2, "m,liver", (8, -7, 0), (3.5, 3.0, 3.0), 0),
                         _L(3, "n,hepatic hilum", (7, 8, 0), (4.0, 3.5, 3.0), 70)]),
        ]),
    ]),
    (7, "training", "F", 62, "colon cancer", "Adenocarcinoma", "uninsured", [
        ("20220712", "baseline", [
            ("thorax", [_L(1, "m,lung", (-6, 0, 0), (3.5, 3.0, 2.5), 15, "A"),
                        _L(2, "m,lung", (7, -6, 0), (3.0, 2.5, 2.5), 80)]),
        ]),
        ("20221012", None, [
            ("abdomen", [_L(1, "m,liver", (0, 0, 0), (5.0, 3.5, 4.0), 45),
                         _L(2, "m,rib", (-9, 9, 0), (3.0, 2.0, 3.0), 0)]),
        ]),
    ]),
]


def _extra_patient(k: int) -> tuple:
    pid = 10 + 3 * k
    lesions = [_L(1, "m,liver", (-5, 4, 0), (5.0, 3.5, 4.0), 10 * k),
               _L(2, "n,retroperitoneal", (8, -7, 0), (4.0, 3.0, 3.0), 0)]
    return (pid, "test" if k % 2 else "training", "M" if k % 2 else "F", 50 + k, "rectal cancer",
            "", "private", [(f"2022{1 + k % 12:02d}15", None, [("abdomen", lesions)])])


def recist_lesions(n_patients: int = 3) -> dict[str, list[Lesion]]:
    """Case id (``<pid:03d>_<uid>``) -> the lesions :func:`make_recist` draws in its mask."""
    out: dict[str, list[Lesion]] = {}
    series_id = 0
    for pid, *_, studies in _patients(n_patients):
        for _date, _order, series_list in studies:
            for _region, lesions in series_list:
                series_id += 1
                out[f"{pid:03d}_{series_uid(pid, series_id)}"] = list(lesions)
    return out


def _patients(n_patients: int) -> list[tuple]:
    return [*_PATIENTS, *(_extra_patient(k) for k in range(max(0, n_patients - 3)))][:n_patients]


def series_uid(pid: int, number: int) -> str:
    return f"1.3.12.2.1107.5.1.4.83504.300000{pid:04d}{number:03d}12315883400041810"


def study_uid(pid: int, number: int) -> str:
    return f"1.3.51.0.1.1.172.19.3.128.{3187796 + 97 * pid + number}.{3187735 + 97 * pid + number}"


def make_recist(
    root: Path,
    *,
    layout: str = "final-formatted",
    n_patients: int = 3,
    seed: int = 0,
    shape: tuple[int, int, int] = (48, 48, 16),
) -> Path:
    """Write ``n_patients`` patients in the given layout under ``root``; return the dataset folder
    (``root/final-formatted`` or ``root/final``) to pass to discovery."""
    if layout not in ("final-formatted", "final", "unformatted"):
        raise ValueError(f"layout must be 'final-formatted' or 'final', got {layout!r}")
    formatted = layout == "final-formatted"
    data = Path(root) / ("final-formatted" if formatted else "final")
    rng = np.random.default_rng(seed)
    patients = _patients(n_patients)
    series_rows, patient_rows, recist_rows, windows = [], [], [], {}
    series_id = 0
    for pid, subset, sex, age, diagnosis, histology, insurance, studies in patients:
        folder_subset = "train" if subset == "training" else "test"
        patient_rows.append(dict(zip(PATIENT_COLUMNS, (
            pid, subset, studies[0][0], sex, age, diagnosis, histology, insurance))))
        for s_index, (date, order, series_list) in enumerate(studies):
            study = study_uid(pid, s_index)
            for region, lesions in series_list:
                series_id += 1
                uid = series_uid(pid, series_id)
                in_plane, slice_spacing, thickness, window = REGION_GRID[region]
                stem = f"{pid:03d}_{uid}" if formatted else uid
                where = data / "images" / (region if formatted else "") / folder_subset
                _write_series(where, stem, lesions, (in_plane, in_plane, slice_spacing), shape, rng,
                              scaled=region == "thorax")
                windows[f"{stem}.nii.gz"] = window
                series_rows.append({
                    "id": series_id, "region": region, "uuid": uid, "study_uuid": study,
                    "study_date": date, "patient_id": pid, "slice_thickness": thickness,
                    "row_spacing": in_plane, "column_spacing": in_plane,
                    "slice_spacing": slice_spacing, "slices": shape[2], "rows": shape[1],
                    "columns": shape[0],
                })
                for lesion in lesions if order else ():
                    if lesion.alias:
                        recist_rows.append(dict(zip(RECIST_COLUMNS, (
                            pid, subset, date, study, uid, f"{stem}.nii.gz", region, len(lesions),
                            lesion.value, lesion.alias, lesion.recist_mm, order))))
    meta = data / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "series.json").write_text(json.dumps(series_rows, indent=4), encoding="utf-8")
    (meta / "windows_mapping.json").write_text(json.dumps(windows, indent=4), encoding="utf-8")
    _write_csv(meta / "patients.csv", PATIENT_COLUMNS, patient_rows)
    _write_csv(data / "recist_measurements.csv", RECIST_COLUMNS, recist_rows)
    return data


def lesion_mask(shape: tuple[int, int, int], affine: np.ndarray, lesion: Lesion,
                origin_mm: np.ndarray) -> np.ndarray:
    """Voxels whose centres lie inside the lesion's (in-plane rotated) ellipsoid."""
    index = np.indices(shape).reshape(3, -1).astype(float)
    world = affine[:3, :3] @ index + affine[:3, 3:4]
    rel = world - (origin_mm + np.asarray(lesion.centre, dtype=float))[:, None]
    theta = np.deg2rad(lesion.angle_deg)
    u = rel[0] * np.cos(theta) + rel[1] * np.sin(theta)
    v = -rel[0] * np.sin(theta) + rel[1] * np.cos(theta)
    a, b, c = lesion.semi_axes
    return ((u / a) ** 2 + (v / b) ** 2 + (rel[2] / c) ** 2 <= 1.0).reshape(shape)


def dcm2niix_affine(spacing: tuple[float, float, float], origin: tuple[float, float, float]) -> np.ndarray:
    """A dcm2niix-like axial affine: x flipped (LAS), y and z as stored."""
    affine = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    affine[:3, 3] = origin
    return affine


def _write_series(folder: Path, stem: str, lesions: list[Lesion], spacing: tuple[float, float, float],
                  shape: tuple[int, int, int], rng: np.random.Generator, *, scaled: bool) -> None:
    origin = (float(rng.uniform(150, 200)), float(rng.uniform(-200, -150)), float(rng.uniform(-400, -100)))
    affine = dcm2niix_affine(spacing, origin)
    centre_mm = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[:3, 3]
    image = ct_phantom(shape, rng, axial_axes=(0, 1)).astype(np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    for lesion in lesions:
        inside = lesion_mask(shape, affine, lesion, centre_mm)
        if inside.sum() < 50 or len(np.unique(np.nonzero(inside)[2])) < 2:
            raise ValueError(f"fabricated lesion {lesion} is too small for the release's 50-voxel rule")
        if (mask[inside] != 0).any():
            raise ValueError(f"fabricated lesion {lesion} overlaps another")
        mask[inside] = lesion.value
        image[inside] = LESION_HU[lesion.label[0]] + rng.normal(0, 5, int(inside.sum()))
    hu = np.rint(image).astype(np.int16)
    _nifti(folder / "images" / f"{stem}.nii.gz", (hu + 1024).astype(np.int16) if scaled else hu,
           affine, inter=-1024.0 if scaled else 0.0)
    _nifti(folder / "masks" / f"{stem}.nii.gz", mask, affine)
    labels = {str(lesion.value): lesion.label for lesion in lesions}
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    (folder / "labels" / f"{stem}.json").write_text(json.dumps(labels, indent=4), encoding="utf-8")


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, inter: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    if inter:
        image.header.set_slope_inter(1.0, inter)
    nib.save(image, str(path))


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
