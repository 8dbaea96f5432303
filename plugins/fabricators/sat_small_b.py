"""Fabricate CrossMoDA 2021 and MM-WHS CT in their released layouts.

YAML-only datasets (registry/datasets/{crossmoda2021,mm-whs-ct}.yaml); the layouts, file
names and label values are those SAT-DS's processor.py and data/jsonl read. Each maker returns
the folder to pass as root and writes structures as ellipsoids (fractions of each axis), so a
test can count voxels per value from the arrays itself. Arrays are (X, Y, Z).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from harmonize.plugins.fabricators.abdomen import lps_affine

from harmonize.testing import ct_phantom, ellipsoid, write_nifti

Shape = tuple[int, int, int]
Blob = tuple[tuple[float, float, float], tuple[float, float, float]]

#: CrossMoDA values (1 vestibular schwannoma, 2 cochlea)
CROSSMODA_BLOBS: dict[int, Blob] = {
    1: ((0.40, 0.50, 0.5), (0.10, 0.12, 0.20)),
    2: ((0.65, 0.45, 0.5), (0.05, 0.05, 0.10)),
}
#: MM-WHS release values: 205 myocardium, 420 LA, 500 LV, 550 RA, 600 RV, 820 AA, 850 PA
MMWHS_BLOBS: dict[int, Blob] = {
    205: ((0.55, 0.55, 0.45), (0.20, 0.20, 0.25)),
    500: ((0.55, 0.55, 0.45), (0.12, 0.12, 0.16)),
    600: ((0.35, 0.40, 0.45), (0.09, 0.10, 0.15)),
    420: ((0.60, 0.75, 0.65), (0.08, 0.07, 0.10)),
    550: ((0.30, 0.65, 0.65), (0.08, 0.07, 0.10)),
    820: ((0.50, 0.70, 0.85), (0.05, 0.05, 0.12)),
    850: ((0.40, 0.30, 0.85), (0.05, 0.05, 0.12)),
}


def paint(shape: Shape, blobs: Mapping[int, Blob], rng: np.random.Generator,
          dtype: type = np.uint8) -> np.ndarray:
    """A label map with each value's ellipsoid painted in ``blobs`` order (jittered per case)."""
    jitter = rng.uniform(-0.02, 0.02, size=3)
    label: np.ndarray = np.zeros(shape, dtype=dtype)
    for value, (centre, radii) in blobs.items():
        label[ellipsoid(shape, tuple(c + j for c, j in zip(centre, jitter)), radii)] = value
    return label


def _ct(shape: Shape, label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    image = ct_phantom(shape, rng, axial_axes=(0, 1)).astype(np.float32)
    image[label > 0] = 150.0 + (label[label > 0].astype(np.float32) % 7) * 20.0
    image += rng.normal(0.0, 8.0, size=shape).astype(np.float32)
    return np.rint(image).astype(np.int16)


def make_crossmoda2021(root: Path, *, cases: Sequence[int] = (1, 100, 105), seed: int = 0,
                       shape: Shape = (24, 24, 10)) -> Path:
    """CrossMoDA2021/source_training/crossmoda_<n>_ceT1.nii.gz + crossmoda_<n>_Label.nii.gz
    (ceT1 MR grey values; 0.4 mm in-plane, 1.5 mm slices)."""
    data = Path(root) / "CrossMoDA2021"
    rng = np.random.default_rng(seed)
    for number in cases:
        label = paint(shape, CROSSMODA_BLOBS, rng)
        body = ellipsoid(shape, (0.5, 0.5, 0.5), (0.46, 0.45, 0.7))
        image = np.where(body, 300.0, 0.0) + np.where(label > 0, 500.0, 0.0)
        image = np.clip(image + rng.normal(0.0, 15.0, size=shape), 0, None)
        affine = lps_affine((0.41, 0.41, 1.5), (50.0, 60.0, -20.0))
        folder = data / "source_training"
        write_nifti(folder / f"crossmoda_{number}_ceT1.nii.gz", np.rint(image).astype(np.int16),
                    affine)
        write_nifti(folder / f"crossmoda_{number}_Label.nii.gz", label, affine)
    return data


def make_mm_whs_ct(root: Path, *, cases: Sequence[int] = (1001, 1002, 1003), seed: int = 0,
                   shape: Shape = (24, 24, 16)) -> Path:
    """MM_WHS/MM-WHS/ct_train/ct_train_<n>_image.nii.gz + _label.nii.gz with the release's
    values 205 ... 850 (uint16); cardiac CTA spacing ~0.4 x 0.4 x 0.6 mm."""
    data = Path(root) / "MM_WHS"
    rng = np.random.default_rng(seed)
    for number in cases:
        label = paint(shape, MMWHS_BLOBS, rng, np.uint16)
        affine = lps_affine((0.35 + 0.01 * (number % 5), 0.35 + 0.01 * (number % 5), 0.625),
                            (80.0, 150.0, -150.0))
        folder = data / "MM-WHS" / "ct_train"
        write_nifti(folder / f"ct_train_{number}_image.nii.gz", _ct(shape, label, rng), affine)
        write_nifti(folder / f"ct_train_{number}_label.nii.gz", label, affine)
    return data
