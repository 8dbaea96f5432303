"""Fabricate MRSpineSeg and SKI10 (spine and knee MR of SAT-DS's collection) as released.

YAML-only datasets (registry/datasets/{mrspineseg,ski10}.yaml); folders, file names and
label values as SAT-DS's ``processor.py``, ``loader.py`` and ``data/jsonl`` read them (cited in
each descriptor). Each maker returns the folder to pass as root. Arrays are (X, Y, Z).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from harmonize.plugins.fabricators.abdomen import lps_affine

from harmonize.testing import ellipsoid, write_nifti

Shape = tuple[int, int, int]


def spine_label(shape: Shape, rng: np.random.Generator, bones: int = 10) -> np.ndarray:
    """A sagittal stack (x: left-right, few slices; y: anterior-posterior; z: up) with the
    MRSpineSeg values: 1 sacrum at the bottom, 2-10 vertebrae L5 ... T9 upwards, disc 11 + k
    (L5-S1 ... T9-T10) between bone k + 1 and the next; only the lowest ``bones`` bones and the
    discs between them are drawn (the field of view ends there)."""
    label = np.zeros(shape, np.uint8)
    step = 1.0 / 20
    for k in range(bones):  # bone k at height (2k + 0.5) * step, disc k above it
        z = (2 * k + 0.5) * step + rng.uniform(-0.003, 0.003)
        label[ellipsoid(shape, (0.5, 0.45, z), (0.4, 0.15, 0.4 * step))] = k + 1
        if k < bones - 1:
            label[ellipsoid(shape, (0.5, 0.45, z + step), (0.35, 0.12, 0.3 * step))] = k + 11
    return label


def make_mrspineseg(root: Path, *, cases: Sequence[int] = (17, 113), seed: int = 0,
                    shape: Shape = (8, 16, 40), short: Sequence[int] = (113,)) -> Path:
    """MRSpineSeg_Challenge_SMU/train/MR/Case<n>.nii.gz + train/Mask/mask_case<n>.nii.gz
    (values 1-19); sagittal T2 at 4.4 x 0.6 x 0.6 mm. Cases in ``short`` end at T11: T10, T9
    and the discs above T11 (values 9, 10, 18, 19) are absent."""
    data = Path(root) / "MRSpineSeg_Challenge_SMU"
    rng = np.random.default_rng(seed)
    for number in cases:
        label = spine_label(shape, rng, bones=8 if number in short else 10)
        image = np.where(label > 10, 420.0, np.where(label > 0, 180.0, 90.0))
        image = np.clip(image + rng.normal(0.0, 10.0, size=shape), 0, None).astype(np.int16)
        affine = lps_affine((4.4, 0.6, 0.6), (20.0, 60.0, -120.0))
        write_nifti(data / "train" / "MR" / f"Case{number}.nii.gz", image, affine)
        write_nifti(data / "train" / "Mask" / f"mask_case{number}.nii.gz", label, affine)
    return data


def _write_mhd(path: Path, xyz: np.ndarray, spacing: Sequence[float]) -> None:
    image = sitk.GetImageFromArray(np.ascontiguousarray(xyz.transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin((-60.0, -70.0, -40.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))  # .mhd header + .raw voxels


def knee_label(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """SKI10 values: 1 femur bone (top), 2 its cartilage, 3 tibia bone (bottom), 4 its cartilage
    (cartilage a thin shell on each bone's joint side)."""
    label = np.zeros(shape, np.uint8)
    shift = rng.uniform(-0.02, 0.02)
    femur_c = ellipsoid(shape, (0.5, 0.5, 0.75 + shift), (0.35, 0.3, 0.27))
    tibia_c = ellipsoid(shape, (0.5, 0.5, 0.22 + shift), (0.35, 0.3, 0.22))
    label[femur_c] = 2
    label[ellipsoid(shape, (0.5, 0.5, 0.78 + shift), (0.33, 0.28, 0.26))] = 1
    label[tibia_c] = 4
    label[ellipsoid(shape, (0.5, 0.5, 0.19 + shift), (0.33, 0.28, 0.21))] = 3
    return label


def make_ski10(root: Path, *, training: Sequence[int] = (1, 28), validation: Sequence[int] = (79,),
               seed: int = 0, shape: Shape = (16, 16, 20)) -> Path:
    """SKI10Data/{training,validation}/image-<nnn>.mhd + labels-<nnn>.mhd (MetaImage + .raw;
    values 0-4) at 0.4 x 0.4 x 1.0 mm; validation cases also have roi-<nnn>.mhd (not read)."""
    data = Path(root) / "SKI10Data"
    rng = np.random.default_rng(seed)
    for folder, numbers in (("training", training), ("validation", validation)):
        for number in numbers:
            label = knee_label(shape, rng)
            grey = np.array([60.0, 300.0, 180.0, 310.0, 190.0])[label]
            image = np.clip(grey + rng.normal(0.0, 12.0, size=shape), 0, None).astype(np.int16)
            stem = f"{number:03d}"
            spacing = (0.4, 0.4, 1.0)
            _write_mhd(data / folder / f"image-{stem}.mhd", image, spacing)
            _write_mhd(data / folder / f"labels-{stem}.mhd", label, spacing)
            if folder == "validation":
                roi = np.isin(label, (2, 4)).astype(np.uint8)
                _write_mhd(data / folder / f"roi-{stem}.mhd", roi, spacing)
    return data
