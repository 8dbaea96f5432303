"""Fabricate abdominal CT datasets with regular layouts: WORD, FLARE22 and AbdomenCT-1K.

These three are YAML-only datasets (registry/datasets/{word,flare22,abdomenct-1k}.yaml), so the
trees written here are what the generic layout reader (harmonize/layout.py) must handle. The organ
phantom (:func:`abdomen_case`) is shared with the AMOS fabricator. Arrays are (X, Y, Z) with an
LPS-style affine (x and y flipped, as the WORD release files are), so voxel index 0 along x is the
patient's right: left/right mix-ups show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from harmonize.testing import ct_phantom, ellipsoid, write_nifti

#: organ -> (centre, radii) as fractions of (patient right->left, anterior->posterior,
#: inferior->superior), CT HU and MR grey value.
ORGANS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float, float]] = {
    "liver": ((0.30, 0.45, 0.72), (0.20, 0.25, 0.16), 60, 520),
    "spleen": ((0.78, 0.60, 0.72), (0.08, 0.10, 0.10), 50, 640),
    "right kidney": ((0.30, 0.72, 0.45), (0.08, 0.09, 0.13), 150, 700),
    "left kidney": ((0.70, 0.72, 0.48), (0.08, 0.09, 0.13), 150, 700),
    "gallbladder": ((0.38, 0.32, 0.58), (0.06, 0.06, 0.09), 10, 900),
    "esophagus": ((0.53, 0.62, 0.92), (0.04, 0.04, 0.10), 40, 480),
    "stomach": ((0.64, 0.38, 0.74), (0.12, 0.12, 0.10), 30, 450),
    "aorta": ((0.55, 0.64, 0.55), (0.04, 0.04, 0.40), 180, 300),
    "inferior vena cava": ((0.45, 0.62, 0.52), (0.04, 0.04, 0.35), 160, 320),
    "pancreas": ((0.57, 0.52, 0.56), (0.11, 0.05, 0.09), 70, 560),
    "right adrenal gland": ((0.36, 0.68, 0.64), (0.04, 0.04, 0.08), 35, 500),
    "left adrenal gland": ((0.66, 0.68, 0.64), (0.04, 0.04, 0.08), 35, 500),
    "duodenum": ((0.42, 0.50, 0.46), (0.05, 0.05, 0.09), 45, 470),
    "colon": ((0.50, 0.28, 0.35), (0.30, 0.06, 0.06), -20, 400),
    "small bowel": ((0.52, 0.40, 0.30), (0.15, 0.10, 0.08), 25, 430),
    "rectum": ((0.50, 0.62, 0.12), (0.05, 0.05, 0.07), 0, 410),
    "urinary bladder": ((0.50, 0.40, 0.10), (0.08, 0.08, 0.07), 5, 1000),
    "prostate or uterus": ((0.50, 0.54, 0.06), (0.07, 0.07, 0.07), 45, 600),
    "right femoral head": ((0.22, 0.55, 0.07), (0.06, 0.07, 0.08), 500, 250),
    "left femoral head": ((0.78, 0.55, 0.07), (0.06, 0.07, 0.08), 500, 250),
}


def lps_affine(spacing: Sequence[float], origin: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Affine of an (X, Y, Z) array with x and y flipped (orientation code LPS)."""
    affine = np.diag([-float(spacing[0]), -float(spacing[1]), float(spacing[2]), 1.0])
    affine[:3, 3] = origin
    return affine


def abdomen_case(
    shape: Sequence[int],
    rng: np.random.Generator,
    values: Mapping[int, str | Sequence[str]],
    *,
    modality: str = "CT",
    label_dtype: type = np.uint8,
) -> tuple[np.ndarray, np.ndarray]:
    """An int16 image (CT in HU, or MR grey values) and a label map of the given ``values``.

    ``values`` maps label value -> organ name(s) from :data:`ORGANS`; several names share one value
    where a dataset labels them together (AbdomenCT-1K's kidney = both kidneys).
    """
    shape = tuple(int(s) for s in shape)
    jitter = rng.uniform(-0.02, 0.02, size=3)
    label: np.ndarray = np.zeros(shape, dtype=label_dtype)
    if modality == "CT":
        image = ct_phantom(shape, rng, axial_axes=(0, 1)).astype(np.float32)
    else:
        body = ellipsoid(shape, (0.5, 0.5, 0.5), (0.46, 0.4, 0.7))
        image = np.where(body, 350.0, 0.0).astype(np.float32)
    for value, names in values.items():
        for name in (names,) if isinstance(names, str) else names:
            centre, radii, hu, grey = ORGANS[name]
            mask = ellipsoid(shape, tuple(c + j for c, j in zip(centre, jitter)), radii)
            label[mask] = value
            image[mask] = hu if modality == "CT" else grey
    image += rng.normal(0.0, 8.0 if modality == "CT" else 20.0, size=shape).astype(np.float32)
    if modality != "CT":
        image = np.clip(image, 0, None)
    return np.rint(image).astype(np.int16), label


WORD_VALUES: dict[int, str | tuple[str, ...]] = {
    1: "liver", 2: "spleen", 3: "left kidney", 4: "right kidney", 5: "stomach",
    6: "gallbladder", 7: "esophagus", 8: "pancreas", 9: "duodenum", 10: "colon",
    11: "small bowel", 12: ("right adrenal gland", "left adrenal gland"), 13: "rectum",
    14: "urinary bladder", 15: "left femoral head", 16: "right femoral head",
}
FLARE22_VALUES: dict[int, str] = {
    1: "liver", 2: "right kidney", 3: "spleen", 4: "pancreas", 5: "aorta",
    6: "inferior vena cava", 7: "right adrenal gland", 8: "left adrenal gland",
    9: "gallbladder", 10: "esophagus", 11: "stomach", 12: "duodenum", 13: "left kidney",
}
ABDOMENCT1K_VALUES: dict[int, str | tuple[str, ...]] = {
    1: "liver", 2: ("right kidney", "left kidney"), 3: "spleen", 4: "pancreas",
}

#: WORD-V0.1.0 case numbers per folder: test ids are from the published labelsTs archive
#: (WORD_V0.1.0_labelsTs.zip holds word_0014, word_0016, ...).
WORD_IDS = {"Tr": (2, 3, 4, 5, 7, 8), "Val": (1, 6, 9), "Ts": (14, 16, 17)}


def make_word(
    root: Path, *, n_train: int = 2, n_val: int = 1, n_test: int = 1, seed: int = 0,
    test_labels: bool = True, shape: tuple[int, int, int] = (32, 32, 12),
) -> Path:
    """A tiny WORD-V0.1.0 tree (imagesTr/labelsTr, imagesVal/labelsVal, imagesTs/labelsTs);
    returns the WORD-V0.1.0 folder. ``test_labels=False`` leaves labelsTs out, as before the test
    labels were published."""
    data = Path(root) / "WORD-V0.1.0"
    rng = np.random.default_rng(seed)
    for part, count in (("Tr", n_train), ("Val", n_val), ("Ts", n_test)):
        for number in WORD_IDS[part][:count]:
            name = f"word_{number:04d}.nii.gz"
            slices = shape[2] + number % 3
            image, label = abdomen_case((shape[0], shape[1], slices), rng, WORD_VALUES)
            affine = lps_affine((0.977, 0.977, 3.0), (249.5, 437.0, -395.4))
            write_nifti(data / f"images{part}" / name, image, affine)
            if part != "Ts" or test_labels:
                write_nifti(data / f"labels{part}" / name, label, affine)
    return data


def make_flare22(
    root: Path, *, n_cases: int = 3, seed: int = 0, folders: tuple[str, str] = ("images", "labels"),
    shape: tuple[int, int, int] = (32, 32, 12),
) -> Path:
    """A tiny FLARE22 labelled training set, ``FLARE22Train/images/FLARE22_Tr_0001_0000.nii.gz``
    + ``labels/FLARE22_Tr_0001.nii.gz`` (``folders=("imagesTr", "labelsTr")`` for the nnU-Net
    style copies); returns the FLARE22Train folder."""
    data = Path(root) / "FLARE22Train"
    rng = np.random.default_rng(seed)
    for number in range(1, n_cases + 1):
        case = f"FLARE22_Tr_{number:04d}"
        image, label = abdomen_case((shape[0], shape[1], shape[2] + number % 2), rng, FLARE22_VALUES)
        affine = lps_affine((0.8, 0.8, 2.5), (200.0, 210.0, -300.0 - number))
        write_nifti(data / folders[0] / f"{case}_0000.nii.gz", image, affine)
        write_nifti(data / folders[1] / f"{case}.nii.gz", label, affine)
    return data


def make_abdomenct1k(
    root: Path, *, n_cases: int = 3, seed: int = 0, layout: str = "release",
    unlabelled: tuple[int, ...] = (), shape: tuple[int, int, int] = (32, 32, 12),
) -> Path:
    """A tiny AbdomenCT-1K; returns the folder to pass as root.

    ``layout="release"``: the three image archives and the mask archive extracted side by side
    (``AbdomenCT-1K-ImagePart1/Case_00001_0000.nii.gz``, ``Mask/Case_00001.nii.gz``; Part1 holds
    cases 1-400). ``layout="sat-ds"``: SAT-DS's ``Images/`` + ``Masks/``. Case numbers in
    ``unlabelled`` get no mask.
    """
    if layout not in ("release", "sat-ds"):
        raise ValueError(f"layout must be 'release' or 'sat-ds', not {layout!r}")
    data = Path(root) / "AbdomenCT-1K"
    rng = np.random.default_rng(seed)
    numbers = [1 + 399 * i for i in range(n_cases)]  # 1, 400, 799: spans the image parts
    for number in numbers:
        case = f"Case_{number:05d}"
        if layout == "release":
            part = 1 + (number - 1) // 400
            images, masks = f"AbdomenCT-1K-ImagePart{part}", "Mask"
        else:
            images, masks = "Images", "Masks"
        image, label = abdomen_case((shape[0], shape[1], shape[2] + number % 3), rng,
                                    ABDOMENCT1K_VALUES)
        affine = lps_affine((0.7 + 0.1 * (number % 3), 0.7 + 0.1 * (number % 3), 5.0),
                            (180.0, 190.0, -250.0))
        write_nifti(data / images / f"{case}_0000.nii.gz", image, affine)
        if number not in unlabelled:
            write_nifti(data / masks / f"{case}.nii.gz", label, affine)
    return data
