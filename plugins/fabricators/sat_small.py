"""Fabricate three YAML-only datasets of SAT-DS's collection: ACDC, SegTHOR and PROMISE12.

Layouts, file names and label values as SAT-DS ``processor.py`` (``preprocess_ACDC``,
``preprocess_SegTHOR``, ``preprocess_PROMISE12``), its ``data/jsonl/<name>.jsonl`` paths and
``loader.py`` read them (registry/datasets/{acdc,segthor,promise12}.yaml). Each ``make_*`` returns
the folder to give as ``--root``. Arrays are (X, Y, Z) with an LPS-style affine (x and y flipped),
so voxel index 0 along x is the patient's right.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from harmonize.plugins.fabricators.abdomen import lps_affine

from harmonize.testing import ct_phantom, ellipsoid, write_nifti


def heart_case(shape: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A cine-MR-like short-axis frame: ACDC values 1 right ventricle, 2 myocardium, 3 left
    ventricle cavity (myocardium a shell around the left cavity)."""
    jitter = rng.uniform(-0.03, 0.03, size=3)
    centre = np.array((0.58, 0.5, 0.5)) + jitter
    label = np.zeros(shape, np.uint8)
    label[ellipsoid(shape, centre + (-0.26, 0.0, 0.0), (0.12, 0.2, 0.4))] = 1
    label[ellipsoid(shape, centre, (0.2, 0.2, 0.42))] = 2
    label[ellipsoid(shape, centre, (0.12, 0.12, 0.36))] = 3
    grey = np.array([40.0, 160.0, 70.0, 200.0], np.float32)[label]
    image = grey + rng.normal(0.0, 10.0, size=shape).astype(np.float32)
    return np.clip(np.rint(image), 0, None).astype(np.int16), label


def make_acdc(
    root: Path, *, n_train: int = 2, n_test: int = 1, seed: int = 0,
    shape: tuple[int, int, int] = (24, 24, 8),
) -> Path:
    """A tiny ACDC ``database`` folder: ``training/patient001/patient001_frame01.nii.gz`` +
    ``_gt.nii.gz`` for the ED frame (01) and an ES frame, testing patients from patient101."""
    data = Path(root) / "database"
    rng = np.random.default_rng(seed)
    for folder, first, count in (("training", 1, n_train), ("testing", 101, n_test)):
        for number in range(first, first + count):
            patient = f"patient{number:03d}"
            spacing = (1.5625, 1.5625, 10.0 if number % 2 else 5.0)
            affine = lps_affine(spacing, (180.0, 175.0, -40.0))
            for frame in (1, 8 + number % 7):
                image, label = heart_case(shape, rng)
                name = f"{patient}_frame{frame:02d}"
                write_nifti(data / folder / patient / f"{name}.nii.gz", image, affine)
                write_nifti(data / folder / patient / f"{name}_gt.nii.gz", label, affine)
    return data


def make_segthor(
    root: Path, *, n_cases: int = 2, seed: int = 0, shape: tuple[int, int, int] = (28, 28, 12),
) -> Path:
    """A tiny SegTHOR ``train/Patient_01/Patient_01.nii.gz`` + ``GT.nii.gz`` tree (values 1
    esophagus, 2 heart, 3 trachea, 4 aorta); returns the folder holding ``train``."""
    data = Path(root) / "SegTHOR"
    rng = np.random.default_rng(seed)
    organs = {2: ((0.55, 0.45, 0.35), (0.2, 0.18, 0.22), 45), 1: ((0.5, 0.68, 0.5), (0.04, 0.04, 0.45), 30),
              3: ((0.5, 0.55, 0.78), (0.05, 0.05, 0.2), -950), 4: ((0.58, 0.62, 0.6), (0.05, 0.05, 0.4), 180)}
    for number in range(1, n_cases + 1):
        case = f"Patient_{number:02d}"
        image = ct_phantom(shape, rng).astype(np.float32)
        label = np.zeros(shape, np.uint8)
        for value, (centre, radii, hu) in organs.items():
            mask = ellipsoid(shape, centre, radii)
            label[mask] = value
            image[mask] = hu
        affine = lps_affine((0.977, 0.977, 2.5), (250.0, 250.0, -300.0 - 10 * number))
        write_nifti(data / "train" / case / f"{case}.nii.gz", np.rint(image).astype(np.int16), affine)
        write_nifti(data / "train" / case / "GT.nii.gz", label, affine)
    return data


#: PROMISE12 case numbers per training part (SAT-DS data/jsonl/PROMISE12.jsonl)
PROMISE12_PARTS = {1: range(0, 26), 2: range(26, 38), 3: range(38, 50)}


def make_promise12(
    root: Path, *, per_part: int = 1, seed: int = 0, shape: tuple[int, int, int] = (24, 24, 10),
) -> Path:
    """A tiny PROMISE12 training set, ``TrainingData_Part1/Case00.mhd`` (+ .raw) with
    ``Case00_segmentation.mhd`` (value 1 prostate), ``per_part`` cases in each of the 3 parts."""
    data = Path(root) / "PROMISE12"
    rng = np.random.default_rng(seed)
    for part, numbers in PROMISE12_PARTS.items():
        folder = data / f"TrainingData_Part{part}"
        folder.mkdir(parents=True, exist_ok=True)
        for number in list(numbers)[:per_part]:
            label = ellipsoid(shape, (0.5, 0.55, 0.5) + rng.uniform(-0.03, 0.03, 3), (0.2, 0.18, 0.3))
            image = np.where(label, 350.0, 180.0) + rng.normal(0.0, 15.0, size=shape)
            for array, name in ((np.rint(image).astype(np.int16), f"Case{number:02d}.mhd"),
                                (label.astype(np.uint8), f"Case{number:02d}_segmentation.mhd")):
                itk = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
                itk.SetSpacing((0.625, 0.625, 3.6))
                itk.SetOrigin((-80.0, -90.0, -20.0 + part))
                sitk.WriteImage(itk, str(folder / name))
    return data
