"""Fabricate KiPA22, CT-ORG, CTPelvic1K, SLIVER07, Couinaud liver, PARSE2022 and INSTANCE 2022
in their released layouts (YAML-only datasets, ``registry/datasets/<id>.yaml``).

Layouts, file names and label values are those SAT-DS's ``processor.py``, ``loader.py`` and
``data/jsonl`` read (cited in each descriptor). Structures are ellipsoids (fractions of each
axis, painted in table order, later ones over earlier ones), so a test counts voxels per value
from the written arrays itself. Arrays are (X, Y, Z); each maker returns the folder to pass as
``--root`` and writes the release's quirks (see each docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from harmonize.plugins.fabricators.abdomen import lps_affine
from harmonize.plugins.fabricators.sat_small_b import paint

from harmonize.testing import ct_phantom, write_nifti

Shape = tuple[int, int, int]
Blob = tuple[tuple[float, float, float], tuple[float, float, float]]

#: KiPA22 values (1 renal vein, 2 kidney, 3 renal artery, 4 kidney tumor)
KIPA22_BLOBS: dict[int, Blob] = {
    2: ((0.35, 0.55, 0.5), (0.18, 0.22, 0.35)),
    1: ((0.60, 0.50, 0.5), (0.15, 0.05, 0.08)),
    3: ((0.60, 0.62, 0.5), (0.15, 0.04, 0.08)),
    4: ((0.30, 0.60, 0.6), (0.07, 0.08, 0.12)),
}
#: CT-ORG values (1 liver, 2 bladder, 3 lungs, 4 kidneys, 5 bone, 6 brain)
CT_ORG_BLOBS: dict[int, Blob] = {
    3: ((0.50, 0.50, 0.80), (0.30, 0.25, 0.15)),
    1: ((0.35, 0.45, 0.55), (0.15, 0.15, 0.10)),
    4: ((0.65, 0.60, 0.45), (0.08, 0.08, 0.08)),
    2: ((0.50, 0.40, 0.15), (0.08, 0.08, 0.08)),
    5: ((0.50, 0.80, 0.50), (0.06, 0.06, 0.40)),
    6: ((0.50, 0.50, 0.96), (0.15, 0.15, 0.04)),
}
#: CTPelvic1K values (the authors' dataset.json: 1 sacrum, 2 right hip, 3 left hip, 4 lumbar
#: vertebra)
PELVIC_BLOBS: dict[int, Blob] = {
    4: ((0.50, 0.65, 0.85), (0.07, 0.07, 0.15)),
    1: ((0.50, 0.70, 0.55), (0.08, 0.06, 0.12)),
    2: ((0.22, 0.50, 0.40), (0.12, 0.15, 0.20)),  # patient's right: -x in LPS voxel order
    3: ((0.78, 0.50, 0.40), (0.12, 0.15, 0.20)),
}
#: Couinaud segments I-VIII as values 1-8 (eight slabs of one liver ellipsoid)
COUINAUD_BLOBS: dict[int, Blob] = {
    value: ((0.2 + 0.08 * (value - 1), 0.5, 0.5), (0.05, 0.2, 0.3)) for value in range(1, 9)
}
#: CTPelvic1K sub-dataset folders: (images, masks, image prefix, mask prefix)
PELVIC_SUBSETS = {
    6: ("CTPelvic1K_dataset6_data", "CTPelvic1K_dataset6_Anonymized_mask", "dataset6_", "dataset6_"),
    7: ("CTPelvic1K_dataset7_data", "CTPelvic1K_dataset7_mask", "dataset7_", ""),
}


def ct_image(shape: Shape, label: np.ndarray, rng: np.random.Generator, *,
             offset: float = 0.0) -> np.ndarray:
    """An int16 CT-like volume in HU (+ ``offset``: KiPA22 stores HU + 1000)."""
    image = ct_phantom(shape, rng, axial_axes=(0, 1)).astype(np.float32)
    image[label > 0] = 40.0 + (label[label > 0].astype(np.float32) % 7) * 25.0
    image += rng.normal(0.0, 8.0, size=shape).astype(np.float32)
    return np.rint(image + offset).astype(np.int16)


def write_mhd(path: Path, array: np.ndarray, spacing: Sequence[float],
              origin: Sequence[float]) -> Path:
    """A MetaImage ``.mhd`` + ``.raw`` of an (X, Y, Z) array (SimpleITK, LPS world)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    itk = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    itk.SetSpacing(tuple(float(s) for s in spacing))
    itk.SetOrigin(tuple(float(o) for o in origin))
    sitk.WriteImage(itk, str(path))
    return path


def make_kipa22(root: Path, *, cases: Sequence[int] = (0, 1, 10), seed: int = 0,
                shape: Shape = (20, 20, 12)) -> Path:
    """KiPA22/train/image/<n>.nii.gz (stored HU + 1000, int16) + train/label/<n>.nii.gz, and
    the train/processed_image/ copy SAT-DS's processor writes (HU), which is not release data."""
    data = Path(root) / "KiPA22"
    rng = np.random.default_rng(seed)
    for number in cases:
        label = paint(shape, KIPA22_BLOBS, rng)
        affine = lps_affine((0.6 + 0.05 * (number % 3), 0.6 + 0.05 * (number % 3), 0.5),
                            (60.0, 120.0, -80.0 - number))
        hu = ct_image(shape, label, rng)
        write_nifti(data / "train" / "image" / f"{number}.nii.gz", hu + np.int16(1000), affine)
        write_nifti(data / "train" / "label" / f"{number}.nii.gz", label, affine)
        write_nifti(data / "train" / "processed_image" / f"{number}.nii.gz", hu, affine)
    return data


def make_ct_org(root: Path, *, cases: Sequence[int] = (0, 1, 21), seed: int = 0,
                shape: Shape = (16, 16, 20), tcia: bool = False) -> Path:
    """CT_ORG/volumes/volume-<n>.nii.gz + labels/labels-<n>.nii.gz (``tcia``: both in
    OrganSegmentations/, as the TCIA download); the brain (6) only in the first case."""
    data = Path(root) / "CT_ORG"
    rng = np.random.default_rng(seed)
    for k, number in enumerate(cases):
        blobs = dict(CT_ORG_BLOBS) if k == 0 else {v: b for v, b in CT_ORG_BLOBS.items() if v != 6}
        label = paint(shape, blobs, rng)
        affine = lps_affine((0.8, 0.8, 2.5 + number % 3), (200.0, 200.0, -300.0))
        volumes, labels = (("OrganSegmentations",) * 2) if tcia else ("volumes", "labels")
        write_nifti(data / volumes / f"volume-{number}.nii.gz", ct_image(shape, label, rng), affine)
        write_nifti(data / labels / f"labels-{number}.nii.gz", label, affine)
    return data


def make_ctpelvic1k(root: Path, *, cases: Mapping[int, Sequence[str]] | None = None,
                    seed: int = 0, shape: Shape = (16, 14, 12)) -> Path:
    """CTPelvic1K/CTPelvic1K_dataset6_data/dataset6_CLINIC_0001_data.nii.gz with
    CTPelvic1K_dataset6_Anonymized_mask/dataset6_CLINIC_0001_mask_4label.nii.gz, and
    CTPelvic1K_dataset7_data/dataset7_CLINIC_metal_0013_data.nii.gz with
    CTPelvic1K_dataset7_mask/CLINIC_metal_0013_mask_4label.nii.gz (no prefix)."""
    cases = cases or {6: ["CLINIC_0001", "CLINIC_0002"], 7: ["CLINIC_metal_0013"]}
    data = Path(root) / "CTPelvic1K"
    rng = np.random.default_rng(seed)
    for subset, names in cases.items():
        images, masks, image_prefix, mask_prefix = PELVIC_SUBSETS[subset]
        for name in names:
            label = paint(shape, PELVIC_BLOBS, rng)
            affine = lps_affine((0.75, 0.75, 1.0 + (subset - 6) * 0.25), (180.0, 190.0, -400.0))
            write_nifti(data / images / f"{image_prefix}{name}_data.nii.gz",
                        ct_image(shape, label, rng), affine)
            write_nifti(data / masks / f"{mask_prefix}{name}_mask_4label.nii.gz", label, affine)
    return data


def make_sliver07(root: Path, *, cases: Sequence[int] = (1, 5, 20), seed: int = 0,
                  shape: Shape = (16, 16, 10)) -> Path:
    """SLIVER07/scan/liver-orig<nnn>.mhd (+ .raw) with label/liver-seg<nnn>.mhd (uint8 0/1), and
    the .nii.gz copies SAT-DS's processor writes beside them (not release data)."""
    data = Path(root) / "SLIVER07"
    rng = np.random.default_rng(seed)
    for number in cases:
        label = paint(shape, {1: ((0.4, 0.45, 0.5), (0.25, 0.2, 0.3))}, rng)
        spacing, origin = (0.7, 0.7, 1.5 + number % 2), (-170.0, -150.0, -400.0 + number)
        image = ct_image(shape, label, rng)
        write_mhd(data / "scan" / f"liver-orig{number:03d}.mhd", image, spacing, origin)
        write_mhd(data / "label" / f"liver-seg{number:03d}.mhd", label, spacing, origin)
        write_nifti(data / "scan" / f"liver-orig{number:03d}.nii.gz", image, np.eye(4))
    return data


def make_couinaud(root: Path, *, labelled: Sequence[int] = (1, 4), unlabelled: Sequence[int] = (2,),
                  seed: int = 0, shape: Shape = (16, 16, 10)) -> tuple[Path, Path]:
    """``(labels, msd)``: Couinaud_Liver/hepaticvessel_<nnn>.nii.gz (values 1-8; each with a
    macOS '.'-companion) and Task08_HepaticVessel/imagesTr/hepaticvessel_<nnn>.nii.gz (MSD
    images, some without a Couinaud label)."""
    labels, msd = Path(root) / "Couinaud_Liver", Path(root) / "Task08_HepaticVessel"
    rng = np.random.default_rng(seed)
    for number in sorted([*labelled, *unlabelled]):
        name = f"hepaticvessel_{number:03d}.nii.gz"
        label = paint(shape, COUINAUD_BLOBS, rng)
        affine = lps_affine((0.8, 0.8, 5.0), (190.0, 200.0, -100.0))
        write_nifti(msd / "imagesTr" / name, ct_image(shape, label, rng), affine)
        if number in labelled:
            write_nifti(labels / name, label, affine)
            (labels / f".{name}").write_bytes(b"\x00\x05\x16\x07")
    return labels, msd


def make_parse2022(root: Path, *, cases: Sequence[str] = ("PA000005", "PA000016"), seed: int = 0,
                   shape: Shape = (16, 16, 12)) -> Path:
    """PARSE2022/train/train/PA000005/image/PA000005.nii.gz + label/PA000005.nii.gz; returns
    the folder holding the PA* case folders."""
    data = Path(root) / "PARSE2022" / "train" / "train"
    rng = np.random.default_rng(seed)
    for case in cases:
        label = paint(shape, {1: ((0.5, 0.5, 0.5), (0.08, 0.3, 0.3))}, rng)
        affine = lps_affine((0.7, 0.7, 1.0), (180.0, 170.0, -200.0))
        write_nifti(data / case / "image" / f"{case}.nii.gz", ct_image(shape, label, rng), affine)
        write_nifti(data / case / "label" / f"{case}.nii.gz", label, affine)
    return data


def make_instance22(root: Path, *, cases: Sequence[int] = (1, 2, 100), seed: int = 0,
                    shape: Shape = (20, 20, 6)) -> Path:
    """Instance22/train_2/data/<nnn>.nii.gz + train_2/label/<nnn>.nii.gz (0.45 mm in plane,
    5 mm slices); the last case has no haemorrhage voxel left."""
    data = Path(root) / "Instance22"
    rng = np.random.default_rng(seed)
    for k, number in enumerate(cases):
        blobs = {} if k == len(cases) - 1 else {1: ((0.4, 0.5, 0.5), (0.1, 0.12, 0.3))}
        label = paint(shape, blobs, rng)
        affine = lps_affine((0.45, 0.45, 5.0), (110.0, 110.0, -60.0))
        name = f"{number:03d}.nii.gz"
        write_nifti(data / "train_2" / "data" / name, ct_image(shape, label, rng), affine)
        write_nifti(data / "train_2" / "label" / name, label, affine)
    return data
