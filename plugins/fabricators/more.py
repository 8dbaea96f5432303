"""Fabricate PI-CAI, TopCoW 2023 and ATM'22: popular releases outside SAT-DS (YAML-only).

Layouts, file names and label values as the descriptors cite them
(registry/datasets/{pi-cai,topcow2023-ct,topcow2023-mr,atm22}.yaml). Each ``make_*`` returns
the folder to give as ``--root`` (PI-CAI also the labels' folder, its extra root). Arrays are
(X, Y, Z); NIfTI affines flip x and y (LPS-style), MHA files carry an ITK direction matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from harmonize.plugins.fabricators.abdomen import lps_affine

from harmonize.testing import ct_phantom, ellipsoid, write_nifti

#: PI-CAI studies: (fold, patient, study, label values or None for no human_expert file).
#: Patient 11054 has a negative study (1001074) and a positive one (1001075), as the
#: picai_labels README describes; study 10005_1000005 has no voxel-level delineation.
PICAI_STUDIES: tuple[tuple[int, str, str, tuple[int, ...] | None], ...] = (
    (0, "10000", "1000000", (2, 3)),
    (1, "11054", "1001074", ()),
    (1, "11054", "1001075", (4,)),
    (2, "10005", "1000005", None),
)


def _write_mha(path: Path, array: np.ndarray, spacing: tuple[float, float, float],
               origin: tuple[float, float, float], direction: tuple[float, ...]) -> None:
    """Write an (X, Y, Z) array as a MetaImage with the given ITK geometry."""
    itk = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    itk.SetSpacing(spacing)
    itk.SetOrigin(origin)
    itk.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(itk, str(path), True)


def make_picai(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (20, 20, 8)
               ) -> tuple[Path, Path]:
    """Tiny ``picai_public_images_fold<k>/<patient>/<patient>_<study>_{t2w,adc,hbv,cor,sag}.mha``
    folds and a ``picai_labels`` clone with ``csPCa_lesion_delineations/human_expert/resampled/
    <patient>_<study>.nii.gz`` on each T2W grid (values: ISUP grade groups 2-5 per lesion).
    ADC/HBV are on their own coarser grid, as released. Returns (images root, labels root)."""
    images, labels = Path(root) / "picai", Path(root) / "picai_labels"
    rng = np.random.default_rng(seed)
    cos, sin = float(np.cos(np.radians(5.0))), float(np.sin(np.radians(5.0)))
    oblique = (1.0, 0.0, 0.0, 0.0, cos, -sin, 0.0, sin, cos)  # a 5-degree tilt about x
    for fold, patient, study, values in PICAI_STUDIES:
        case = f"{patient}_{study}"
        folder = images / f"picai_public_images_fold{fold}" / patient
        origin = (-60.0, -55.0 + fold, -30.0)
        label = np.zeros(shape, np.uint8)
        for k, value in enumerate(values or ()):
            centre = (0.35 + 0.3 * k, 0.5, 0.5) + rng.uniform(-0.03, 0.03, 3)
            label[ellipsoid(shape, centre, (0.12, 0.12, 0.25))] = value
        t2w = np.where(label > 0, 120.0, 300.0) + rng.normal(0.0, 12.0, size=shape)
        _write_mha(folder / f"{case}_t2w.mha", np.rint(t2w).astype(np.int16),
                   (0.5, 0.5, 3.6), origin, oblique)
        for sequence in ("adc", "hbv"):  # released on the DWI grid, not the T2W one
            coarse = rng.normal(800.0, 50.0, size=(10, 8, 8))
            _write_mha(folder / f"{case}_{sequence}.mha", np.rint(coarse).astype(np.int16),
                       (2.0, 2.0, 3.6), origin, oblique)
        for sequence in ("cor", "sag"):
            _write_mha(folder / f"{case}_{sequence}.mha", np.zeros((8, 8, 6), np.int16),
                       (0.6, 0.6, 3.0), origin, (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
        if values is not None:
            target = labels / "csPCa_lesion_delineations/human_expert/resampled" / f"{case}.nii.gz"
            itk = sitk.GetImageFromArray(np.ascontiguousarray(label.transpose(2, 1, 0)))
            itk.SetSpacing((0.5, 0.5, 3.6))
            itk.SetOrigin(origin)
            itk.SetDirection(oblique)
            target.parent.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(itk, str(target), True)
    return images, labels


#: TopCoW multi-class values (TopCoW_Eval_Metrics constants.py): 1-12 and 15; 13/14 unused
TOPCOW_VALUES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15)


def topcow_label(shape: tuple[int, int, int], rng: np.random.Generator,
                 values: tuple[int, ...]) -> np.ndarray:
    """One short tube (a thin ellipsoid) per vessel value, laid side by side."""
    label = np.zeros(shape, np.uint8)
    for k, value in enumerate(values):
        x = (k + 0.5) / len(values)
        label[ellipsoid(shape, (x, 0.5 + rng.uniform(-0.05, 0.05), 0.5),
                        (0.5 / len(values), 0.06, 0.3))] = value
    return label


def make_topcow(root: Path, *, numbers: tuple[int, ...] = (1, 2), seed: int = 0,
                shape: tuple[int, int, int] = (26, 16, 10)) -> Path:
    """A tiny ``topcow_batch-1_40pairMRCT_30062023`` folder: imagesTr with whole-head and _roi_
    crops of CT and MR of each patient number, mul_labelsTr (multi-class) and bin_labelsTr.
    Case 2 has no Acom (10) and no 3rd-A2 (15): variants absent from a real circle."""
    batch = Path(root) / "TopCoW2023" / "topcow_batch-1_40pairMRCT_30062023"
    rng = np.random.default_rng(seed)
    spacings = {"ct": (0.45, 0.45, 0.7), "mr": (0.3, 0.3, 0.6)}
    for number in numbers:
        values = TOPCOW_VALUES if number % 2 else tuple(v for v in TOPCOW_VALUES if v not in (10, 15))
        for modality, spacing in spacings.items():
            label = topcow_label(shape, rng, values)
            grey = 300.0 if modality == "ct" else 400.0
            image = np.where(label > 0, grey, 40.0) + rng.normal(0.0, 8.0, size=shape)
            affine = lps_affine(spacing, (60.0, 80.0, -20.0 - number))
            for part in ("whole", "roi"):
                name = f"topcow_{modality}_{part}_{number:03d}"
                crop = (slice(None),) * 3 if part == "whole" else (slice(4, 20), slice(2, 14), slice(None))
                write_nifti(batch / "imagesTr" / f"{name}_0000.nii.gz",
                            np.rint(image[crop]).astype(np.int16), affine)
                write_nifti(batch / "mul_labelsTr" / f"{name}.nii.gz", label[crop], affine)
                write_nifti(batch / "bin_labelsTr" / f"{name}.nii.gz",
                            (label[crop] > 0).astype(np.uint8), affine)
            (batch / "roi_size_loc").mkdir(parents=True, exist_ok=True)
            (batch / "roi_size_loc" / f"topcow_{modality}_roi_{number:03d}.txt").write_text(
                "Size of ROI: [16, 12, 10]\nLocation of ROI: [4, 2, 0]\n")
    return batch.parent


def make_atm22(root: Path, *, numbers: tuple[int, ...] = (1, 2, 164), seed: int = 0,
               shape: tuple[int, int, int] = (20, 20, 12)) -> Path:
    """A tiny ``TrainBatch1/{imagesTr,labelsTr}/ATM_NNN_0000.nii.gz`` release: the label keeps
    the image's ``_0000`` suffix; value 1 is the airway (a trachea tube and two bronchi).
    ATM_164 is written too: the descriptor excludes it (withdrawn by the organisers)."""
    data = Path(root) / "ATM22"
    rng = np.random.default_rng(seed)
    for number in numbers:
        image = ct_phantom(shape, rng).astype(np.float32)
        label = np.zeros(shape, np.uint8)
        for centre, radii in (((0.5, 0.5, 0.75), (0.06, 0.06, 0.25)),
                              ((0.38, 0.5, 0.42), (0.12, 0.04, 0.05)),
                              ((0.62, 0.5, 0.42), (0.12, 0.04, 0.05))):
            label[ellipsoid(shape, centre, radii)] = 1
        image[label > 0] = -980.0
        affine = lps_affine((0.68, 0.68, 1.0), (175.0, 170.0, -250.0 - number))
        name = f"ATM_{number:03d}_0000.nii.gz"
        write_nifti(data / "TrainBatch1" / "imagesTr" / name, np.rint(image).astype(np.int16), affine)
        write_nifti(data / "TrainBatch1" / "labelsTr" / name, label, affine)
    return data


def _write_itk(path: Path, array: np.ndarray, spacing: tuple[float, float, float],
               origin: tuple[float, float, float]) -> None:
    """An (X, Y, Z) array as NRRD/MHA (by suffix) with an identity (LPS) direction."""
    _write_mha(path, array, spacing, origin, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def make_lnq2023(root: Path, *, numbers: tuple[int, ...] = (1, 2), seed: int = 0,
                 shape: tuple[int, int, int] = (18, 16, 8)) -> Path:
    """A tiny LNQ2023 release: ``train/lnq2023-train-NNNN-{ct,seg}.nrrd`` (value 1: the few
    delineated nodes), ``val/lnq2023-val-NNNN-ct.nrrd`` without labels, and case 0003 whose seg
    has another size than its CT (the release quirk a participant's conversion resamples)."""
    data = Path(root) / "LNQ2023"
    rng = np.random.default_rng(seed)
    spacing, origin = (0.78, 0.78, 2.5), (-200.0, -180.0, -150.0)
    for number in (*numbers, 3):
        image = ct_phantom(shape, rng)
        label = ellipsoid(shape, (0.45 + 0.05 * number, 0.4, 0.5), (0.08, 0.08, 0.2)).astype(np.uint8)
        stem = data / "train" / f"lnq2023-train-{number:04d}"
        _write_itk(Path(f"{stem}-ct.nrrd"), np.rint(image).astype(np.int16), spacing, origin)
        seg = label if number != 3 else label[:, :, 1:-1]  # another size: refused, never resampled
        _write_itk(Path(f"{stem}-seg.nrrd"), seg, spacing, origin)
    _write_itk(data / "val" / "lnq2023-val-0001-ct.nrrd",
               np.rint(ct_phantom(shape, rng)).astype(np.int16), spacing, origin)
    return data


#: AortaSeg24 values 1-23 (official evaluate.py order); zones along the aorta, then branches
AORTA_ZONES = (1, 3, 5, 7, 8, 9, 10, 12, 14, 17)
AORTA_BRANCHES = (2, 4, 6, 11, 13, 15, 16, 18, 19, 20, 21, 22, 23)


def make_aortaseg24(root: Path, *, numbers: tuple[int, ...] = (1, 2), seed: int = 0,
                    shape: tuple[int, int, int] = (12, 12, 30)) -> Path:
    """A tiny AortaSeg24 training set ``images/subjectNNN_CTA.mha`` + ``masks/subjectNNN_label.mha``
    (1 mm isotropic): the aorta as a column of zones 1..17 from top to bottom, each branch a small
    ball beside it. Subject 2 lacks the right renal artery (15), as variants do."""
    data = Path(root) / "AortaSeg24"
    rng = np.random.default_rng(seed)
    for number in numbers:
        label = np.zeros(shape, np.uint8)
        aorta = ellipsoid(shape, (0.5, 0.5, 0.5), (0.15, 0.15, 0.5))
        for k, value in enumerate(reversed(AORTA_ZONES)):  # zone 0 at the top (superior)
            label[:, :, 3 * k:3 * k + 3][aorta[:, :, 3 * k:3 * k + 3]] = value
        branches = [v for v in AORTA_BRANCHES if not (number == 2 and v == 15)]
        for k, value in enumerate(branches):
            z = (k + 0.5) / len(AORTA_BRANCHES)
            label[ellipsoid(shape, (0.2 if k % 2 else 0.8, 0.5, z), (0.08, 0.08, 0.03))] = value
        image = np.where(label > 0, 350.0, 40.0) + rng.normal(0.0, 10.0, size=shape)
        origin = (-6.0, -150.0, -400.0 - number)
        _write_itk(data / "images" / f"subject{number:03d}_CTA.mha",
                   np.rint(image).astype(np.int16), (1.0, 1.0, 1.0), origin)
        _write_itk(data / "masks" / f"subject{number:03d}_label.mha", label, (1.0, 1.0, 1.0), origin)
    return data
