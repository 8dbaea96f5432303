"""Fabricate TCIA NSCLC-Radiomics in its NBIA "Descriptive Directory Name" layout.

::

    NSCLC-Radiomics/LUNG1-001/09-18-2008-StudyID-NA-69331/0.000000-NA-82046/1-001.dcm ...
    NSCLC-Radiomics/LUNG1-001/09-18-2008-StudyID-NA-69331/3.000000-NA-78236/1-1.dcm

The CT slices and the RTSTRUCT are written from pydicom's real ``CT_small.dcm`` and
``rtstruct.dcm`` headers (:mod:`harmonize.testing.rtstruct`). Every ROI is made of axis-aligned
rectangles whose voxel sets are known exactly (:func:`case_rois`): the GTV lies inside the left
lung (overlap), the oesophagus is a ring (outer contour minus a hole) and the spinal cord has two
contours on one slice. ROI names vary per case as in the collection (``Lung-Left``,
``LUNG LEFT``, ``Lung_L``); case 1 adds an unmatched ``Couch`` ROI, case 3 a second ``GTV-2``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmonize.testing import SeriesGeometry, uid, voxel_box, write_ct, write_rtstruct

#: (rows, columns, slices) of every fabricated CT
SHAPE = (32, 28, 8)
LEFT_LUNG_NAMES = ("Lung-Left", "LUNG LEFT", "Lung_L")


def geometry(n: int) -> SeriesGeometry:
    return SeriesGeometry(rows=SHAPE[0], columns=SHAPE[1], pixel_spacing=(0.9, 0.8),
                          origin=(-11.0 - n, -13.0, -40.0 + 3 * n), step=3.0)


def case_rois(n: int) -> dict[str, list[tuple[int, tuple[int, int, int, int]]]]:
    """ROI name -> contours ``(slice k, (i0, i1, j0, j1))`` of case ``n`` (1-based), in file
    order; a contour is the rectangle of voxels i0..i1 x j0..j1 (column i, row j). Contours on
    one slice combine by XOR (a contour inside another is a hole)."""
    left = LEFT_LUNG_NAMES[(n - 1) % len(LEFT_LUNG_NAMES)]
    rois: dict[str, list[tuple[int, tuple[int, int, int, int]]]] = {
        "GTV-1": [(3, (17, 19, 8, 11)), (4, (17, 20, 9, 11))],
        left: [(k, (15, 24, 4, 20)) for k in range(2, 7)],
        "Lung-Right": [(k, (2, 11, 4 + n % 2, 20)) for k in range(2, 7)],
        "Esophagus": [c for k in range(8) for c in ((k, (12, 14, 20, 22)), (k, (13, 13, 21, 21)))],
        "Heart": [(k, (9, 18, 21, 27)) for k in range(1, 4)],
        "Spinal-Cord": [(k, (13, 14, 27, 28)) for k in range(8)] + [(5, (13, 14, 24, 25))],
    }
    if n == 1:
        rois["Couch"] = [(0, (0, 27, 30, 31))]
    if n == 3:
        rois["GTV-2"] = [(5, (5, 6, 10, 11))]
    return rois


def make_nsclc_radiomics(root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
    """Write ``n_cases`` patients under ``root/NSCLC-Radiomics``; return that folder."""
    rng = np.random.default_rng(seed)
    top = Path(root) / "NSCLC-Radiomics"
    for n in range(1, n_cases + 1):
        patient = f"LUNG1-{n:03d}"
        grid = geometry(n)
        study_uid, series_uid = uid("nsclc", seed, n, "study"), uid("nsclc", seed, n, "ct")
        frame_uid = uid("nsclc", seed, n, "frame")
        digits = rng.integers(10000, 99999, 3)
        study = top / patient / f"0{n % 9 + 1}-18-2008-StudyID-NA-{digits[0]}"
        volume = rng.normal(-700, 50, (SHAPE[1], SHAPE[0], SHAPE[2])).round()
        files = write_ct(study / f"0.000000-NA-{digits[1]}", grid, volume, series_uid=series_uid,
                         study_uid=study_uid, frame_uid=frame_uid, patient_id=patient)
        rois = {name: [(k, voxel_box(*box)) for k, box in contours]
                for name, contours in case_rois(n).items()}
        write_rtstruct(study / f"3.000000-NA-{digits[2]}" / "1-1.dcm", grid, files, rois,
                       series_uid=series_uid, study_uid=study_uid, frame_uid=frame_uid,
                       patient_id=patient)
    return top
