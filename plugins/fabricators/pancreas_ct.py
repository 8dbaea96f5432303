"""Fabricate NIH Pancreas-CT (TCIA) in its released layout (see plugins/pancreas_ct.py).

::

    Pancreas-CT/PANCREAS_0001/11-24-2015-PANCREAS0001-Pancreas-18957/Pancreas-99667/1-001.dcm ...
    TCIA_pancreas_labels-02-05-2017/label0001.nii.gz ...

Quirks reproduced: the DICOM files (``1-<instance>.dcm``) run from the top slice down, so
InstanceNumber order is the reverse of the position order a DICOM reader stacks; the label NIfTI
holds slice ``k`` = the annotation of instance ``k + 1`` with voxel (i, j) = DICOM (column i,
row j), the correspondence OrganSegC2F/RSTN use. Its header is either geometrically right for that
order (``label_affine="dicom"``) or a bare scaling (``"naive"``): the plugin must not depend on it.
The TCIA v2 release (2020-09-10) removed PANCREAS_0025 and PANCREAS_0070 (the same scan as
PANCREAS_0002, cropped differently) while label0025/label0070 stay in the label zip; with
``removed_duplicates`` their label files are written without image folders, as released.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmonize.testing import SeriesGeometry, SliceFile, uid, write_nifti, write_series

LABELS_FOLDER = "TCIA_pancreas_labels-02-05-2017"
PANCREAS_HU = 95
REMOVED = (25, 70)
#: pancreas as two ellipsoids (fractions of the series' LPS box; x 0 = patient right, y 0 =
#: anterior, z 0 = inferior): head right-inferior, tail towards the left and up
PANCREAS = (((0.42, 0.52, 0.40), (0.10, 0.09, 0.20)), ((0.62, 0.58, 0.62), (0.16, 0.06, 0.16)))


def pancreas_mask(geometry: SeriesGeometry, n: int, k: int) -> np.ndarray:
    """The pancreas on slice ``k`` of the geometry, (rows, columns)."""
    x, y, _ = geometry.world(0)
    z = [geometry.position(0)[2], geometry.position(n - 1)[2]]
    lo = np.array([x.min(), y.min(), min(z)])
    hi = np.array([x.max(), y.max(), max(z)])
    pts = geometry.world(k)
    inside = np.zeros((geometry.rows, geometry.columns), dtype=bool)
    for centre, radii in PANCREAS:
        c = lo + np.asarray(centre) * (hi - lo)
        r = np.asarray(radii) * (hi - lo)
        inside |= sum(((p - ci) / ri) ** 2 for p, ci, ri in zip(pts, c, r)) <= 1.0
    return inside


def label_header_affine(geometry: SeriesGeometry, kind: str) -> np.ndarray:
    """Affine of a label stored (column, row, instance order)."""
    dr, dc = geometry.pixel_spacing
    if kind == "naive":
        return np.diag([dc, dr, abs(geometry.step), 1.0])
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    o = np.asarray(geometry.orientation, dtype=float)
    affine = np.eye(4)
    affine[:3, 0] = lps_to_ras @ (o[:3] * dc)
    affine[:3, 1] = lps_to_ras @ (o[3:] * dr)
    affine[:3, 2] = lps_to_ras @ (geometry.normal * geometry.step)
    affine[:3, 3] = lps_to_ras @ geometry.position(0)
    return affine


def make_pancreas_case(root: Path, number: int, rng: np.random.Generator, *,
                       shape: tuple[int, int, int] = (32, 32, 12), label_kind: str = "dicom",
                       image: bool = True) -> None:
    """One patient: its NBIA DICOM tree under ``root/Pancreas-CT`` and its label NIfTI."""
    rows, cols, n = shape[0], shape[1], shape[2] + number % 3
    spacing = round(float(rng.uniform(0.66, 0.94)), 4)
    step = float(rng.choice([1.0, 1.5]))
    geometry = SeriesGeometry(rows=rows, columns=cols, pixel_spacing=(spacing, spacing),
                              origin=(-180.0 + float(rng.uniform(-10, 10)), -200.0,
                                      float(rng.uniform(-80, 40))), step=-step)
    body = ((np.linspace(-1, 1, cols)[None, :] / 0.95) ** 2
            + (np.linspace(-1, 1, rows)[:, None] / 0.8) ** 2) <= 1.0
    label = np.zeros((cols, rows, n), dtype=np.uint8)
    slices = []
    for k in range(n):  # k = 0 is the top slice = instance 1 = label slice 0
        mask = pancreas_mask(geometry, n, k)
        hu = np.where(body, 30.0 + rng.normal(0, 7, (rows, cols)), -1024.0)
        hu[mask] = PANCREAS_HU
        label[:, :, k] = mask.T
        slices.append(SliceFile(name=f"1-{k + 1:03d}.dcm", pixels=np.rint(hu).astype(np.int16),
                                k=k, instance=k + 1))
    case = f"PANCREAS_{number:04d}"
    if image:
        series = root / "Pancreas-CT" / case / f"11-24-2015-PANCREAS{number:04d}-Pancreas-{18957 + number}"
        write_series(series / f"Pancreas-{99667 + number}", slices, geometry, modality="CT",
                     series_uid=uid("pancreas-ct", number, "series"),
                     study_uid=uid("pancreas-ct", number), patient_id=case,
                     rescale=(1.0, -1024.0))
    write_nifti(root / LABELS_FOLDER / f"label{number:04d}.nii.gz", label,
                label_header_affine(geometry, label_kind))


def make_pancreas_ct(root: Path, *, n_cases: int = 3, seed: int = 0, label_affine: str = "dicom",
                     removed_duplicates: bool = True, old_duplicates: bool = False,
                     numbers: tuple[int, ...] | None = None) -> Path:
    """Write ``n_cases`` Pancreas-CT patients (PANCREAS_0001 ...) and their labels under ``root``.

    ``removed_duplicates`` adds label0025/label0070 without image folders (TCIA v2);
    ``old_duplicates`` also writes their image folders, as a pre-2020 download has them.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for number in numbers or tuple(range(1, n_cases + 1)):
        make_pancreas_case(root, number, rng, label_kind=label_affine)
    if removed_duplicates or old_duplicates:
        for number in REMOVED:
            make_pancreas_case(root, number, rng, label_kind=label_affine, image=old_duplicates)
    return root
