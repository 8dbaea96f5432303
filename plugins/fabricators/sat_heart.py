"""Fabricate the cardiac MR datasets of SAT-DS's collection in their released layouts.

MM-WHS MRI, MyoPS 2020, LAScarQS 2022 tasks 1 and 2 and CMRxMotion: YAML-only datasets
(registry/datasets/{mm-whs-mri,myops2020,lascarqs22-task1,lascarqs22-task2,cmrxmotion}.yaml).
Folders, file names and label values are those SAT-DS's ``processor.py`` and ``data/jsonl``
read (cited in each descriptor). Each maker returns the folder to pass as root; structures are
ellipsoids (fractions of each axis) so a test can count voxels from the arrays itself. Arrays
are (X, Y, Z) with an LPS-style affine (x and y flipped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from harmonize.plugins.fabricators.abdomen import lps_affine
from harmonize.plugins.fabricators.sat_small_b import MMWHS_BLOBS, Blob, paint

from harmonize.testing import ellipsoid, write_nifti

Shape = tuple[int, int, int]

#: MyoPS 2020 release values: 200 normal myocardium, 500 LV, 600 RV, 1220 edema, 2221 scar
MYOPS_BLOBS: dict[int, Blob] = {
    200: ((0.55, 0.50, 0.5), (0.24, 0.24, 0.45)),
    1220: ((0.70, 0.50, 0.5), (0.10, 0.14, 0.35)),
    2221: ((0.74, 0.50, 0.5), (0.06, 0.08, 0.30)),
    500: ((0.55, 0.50, 0.5), (0.14, 0.14, 0.45)),
    600: ((0.25, 0.50, 0.5), (0.09, 0.20, 0.45)),
}
#: CMRxMotion values: 1 left ventricle, 2 myocardium, 3 right ventricle
CMRX_BLOBS: dict[int, Blob] = {
    2: ((0.58, 0.5, 0.5), (0.22, 0.22, 0.45)),
    1: ((0.58, 0.5, 0.5), (0.13, 0.13, 0.40)),
    3: ((0.30, 0.5, 0.5), (0.10, 0.22, 0.40)),
}
#: grey value per sequence and label value (blood bright in bSSFP, scar bright in LGE)
MYOPS_GREY = {"C0": {0: 60, 200: 90, 500: 400, 600: 380, 1220: 95, 2221: 90},
              "DE": {0: 50, 200: 40, 500: 250, 600: 240, 1220: 60, 2221: 500},
              "T2": {0: 70, 200: 110, 500: 160, 600: 150, 1220: 300, 2221: 280}}


def _mr(label: np.ndarray, grey: Mapping[int, float], rng: np.random.Generator) -> np.ndarray:
    image = np.zeros(label.shape, np.float32)
    for value, level in grey.items():
        image[label == value] = level
    image += rng.normal(0.0, 12.0, size=label.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, None).astype(np.int16)


def make_mm_whs_mri(root: Path, *, cases: Sequence[int] = (1001, 1002, 1003), seed: int = 0,
                    shape: Shape = (20, 20, 12)) -> Path:
    """MM_WHS/MM-WHS/mr_train/mr_train_<n>_image.nii.gz + _label.nii.gz with the release's
    values 205 ... 850 (uint16); whole-heart MR at about 1 x 1 x 1.6 mm."""
    data = Path(root) / "MM_WHS"
    rng = np.random.default_rng(seed)
    grey = {0: 80, 205: 150, 420: 420, 500: 450, 550: 410, 600: 430, 820: 470, 850: 460}
    for number in cases:
        label = paint(shape, MMWHS_BLOBS, rng, np.uint16)
        affine = lps_affine((1.0 + 0.1 * (number % 3), 1.0 + 0.1 * (number % 3), 1.6),
                            (90.0, 140.0, -60.0))
        folder = data / "MM-WHS" / "mr_train"
        write_nifti(folder / f"mr_train_{number}_image.nii.gz", _mr(label, grey, rng), affine)
        write_nifti(folder / f"mr_train_{number}_label.nii.gz", label, affine)
    return data


def make_myops2020(root: Path, *, cases: Sequence[int] = (101, 102), seed: int = 0,
                   shape: Shape = (24, 24, 5), test_cases: Sequence[int] = (201,)) -> Path:
    """MyoPS2020/train25/myops_training_<n>_{C0,DE,T2}.nii.gz (three co-registered sequences)
    + train25_myops_gd/myops_training_<n>_gd.nii.gz (values 200/500/600/1220/2221, int16);
    the unlabelled test20/myops_test_<n>_*.nii.gz are written too (never read)."""
    data = Path(root) / "MyoPS2020"
    rng = np.random.default_rng(seed)
    for number in (*cases, *test_cases):
        training = number in cases
        label = paint(shape, MYOPS_BLOBS, rng, np.int16)
        affine = lps_affine((0.73, 0.73, 12.0 + number % 2), (95.0, 110.0, -30.0))
        stem = f"myops_training_{number}" if training else f"myops_test_{number}"
        folder = data / ("train25" if training else "test20")
        for sequence, grey in MYOPS_GREY.items():
            write_nifti(folder / f"{stem}_{sequence}.nii.gz", _mr(label, grey, rng), affine)
        if training:
            write_nifti(data / "train25_myops_gd" / f"{stem}_gd.nii.gz", label, affine)
    return data


def lascarqs_masks(shape: Shape, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(left atrial cavity, scar): the scar a shell patch on the cavity's wall, partly inside
    the cavity mask and partly outside it (both boolean)."""
    centre = np.array((0.5, 0.5, 0.5)) + rng.uniform(-0.03, 0.03, size=3)
    cavity = ellipsoid(shape, tuple(centre), (0.25, 0.25, 0.35))
    wall = ellipsoid(shape, tuple(centre), (0.33, 0.33, 0.43)) & ~ellipsoid(
        shape, tuple(centre), (0.20, 0.20, 0.30))
    scar = wall & ellipsoid(shape, tuple(centre + (0.3, 0.0, 0.0)), (0.2, 0.3, 0.3))
    return cavity, scar


def make_lascarqs22(root: Path, *, task1: Sequence[int] = (1, 2, 10),
                    task2: Sequence[int] = (1, 2), seed: int = 0,
                    shape: Shape = (22, 22, 10)) -> Path:
    """LAScarQS22/LAScarQS2022_released_training_data/task{1,2}/train_data/train_<n>/ with
    enhanced.nii.gz, atriumSegImgMO.nii.gz and (task 1) scarSegImgM.nii.gz (binary uint8);
    LGE at 0.625 x 0.625 x 2.5 mm."""
    data = Path(root) / "LAScarQS22"
    rng = np.random.default_rng(seed)
    for task, numbers in (("task1", task1), ("task2", task2)):
        for number in numbers:
            folder = (data / "LAScarQS2022_released_training_data" / task / "train_data"
                      / f"train_{number}")
            cavity, scar = lascarqs_masks(shape, rng)
            image = np.where(cavity, 120.0, 60.0) + np.where(scar, 300.0, 0.0)
            image = np.clip(image + rng.normal(0.0, 10.0, size=shape), 0, None)
            affine = lps_affine((0.625, 0.625, 2.5), (120.0, 130.0, -40.0))
            write_nifti(folder / "enhanced.nii.gz", np.rint(image).astype(np.int16), affine)
            write_nifti(folder / "atriumSegImgMO.nii.gz", cavity.astype(np.uint8), affine)
            if task == "task1":
                write_nifti(folder / "scarSegImgM.nii.gz", scar.astype(np.uint8), affine)
    return data


def make_cmrxmotion(root: Path, *, volunteers: Sequence[int] = (1, 2), seed: int = 0,
                    shape: Shape = (20, 20, 6), unlabelled: Sequence[str] = ("P001-4",),
                    scans: Sequence[int] = (1, 2, 3, 4)) -> Path:
    """CMRxMotion/segmentation/data/P001-1/P001-1-{ED,ES}.nii.gz (+ -label.nii.gz, values
    1 LV, 2 myocardium, 3 RV): ``scans`` of -1 ... -4 per volunteer, images (X, Y, Z, 1);
    the ``unlabelled`` scans (non-diagnostic quality) ship without label files."""
    data = Path(root) / "CMRxMotion"
    rng = np.random.default_rng(seed)
    grey = {0: 50, 1: 380, 2: 110, 3: 360}
    for volunteer in volunteers:
        for scan in scans:
            name = f"P{volunteer:03d}-{scan}"
            folder = data / "segmentation" / "data" / name
            affine = lps_affine((1.33, 1.33, 9.6), (100.0, 120.0, -35.0 - scan))
            for frame in ("ED", "ES"):
                label = paint(shape, CMRX_BLOBS, rng)
                image = _mr(label, grey, rng)[..., np.newaxis]
                write_nifti(folder / f"{name}-{frame}.nii.gz", image, affine)
                if name not in unlabelled:
                    write_nifti(folder / f"{name}-{frame}-label.nii.gz", label, affine)
    return data
