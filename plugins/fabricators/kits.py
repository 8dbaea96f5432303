"""Fabricate KiTS19/21/23 trees in their released layouts (see plugins/kits.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harmonize.testing import ct_phantom, ellipsoid, slice_first_affine, write_nifti

RELEASES = {
    # release: (data folder under root, label file, label values used, clinical file)
    "kits23": ("dataset", "segmentation.nii.gz", (1, 2, 3), "kits23.json"),
    "kits21": ("kits21/data", "aggregated_MAJ_seg.nii.gz", (1, 2, 3), "kits.json"),
    "kits19": ("data", "segmentation.nii.gz", (1, 2), "kits.json"),
}


def kits_case_arrays(
    shape: tuple[int, int, int], rng: np.random.Generator, values: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """CT (int16 HU) and label (uint8) arrays in KiTS storage order (slices, H, W).

    Two kidneys of different size (so left/right mistakes show), a tumor in one, a cyst in the other
    when the release labels cysts.
    """
    image = ct_phantom(shape, rng, axial_axes=(1, 2))
    label = np.zeros(shape, dtype=np.uint8)
    jitter = rng.uniform(-0.03, 0.03, size=3)
    kidney_a = ellipsoid(shape, (0.5 + jitter[0], 0.62, 0.30 + jitter[1]), (0.30, 0.14, 0.10))
    kidney_b = ellipsoid(shape, (0.55 + jitter[2], 0.62, 0.72), (0.25, 0.12, 0.09))
    label[kidney_a | kidney_b] = 1
    tumor = ellipsoid(shape, (0.5 + jitter[0], 0.60, 0.27 + jitter[1]), (0.12, 0.06, 0.05))
    label[tumor & kidney_a] = 2
    if 3 in values:
        cyst = ellipsoid(shape, (0.6 + jitter[2], 0.62, 0.74), (0.08, 0.05, 0.04))
        label[cyst & kidney_b] = 3
    image[label == 1] = 180
    image[label == 2] = 90
    image[label == 3] = 10
    return image, label


def make_kits(
    root: Path,
    *,
    release: str = "kits23",
    n_cases: int = 3,
    seed: int = 0,
    first_case: int = 0,
    shape: tuple[int, int, int] = (24, 40, 48),
    missing_imaging: tuple[int, ...] = (),
    missing_label: tuple[int, ...] = (),
) -> Path:
    """Write ``n_cases`` KiTS cases under ``root`` in the release's layout; return ``root``.

    Cases get different slice counts and spacings (0.6-0.9 mm in-plane, 1-5 mm slices) and the
    (slices, H, W) storage order with KiTS's axis-swapped affine. ``missing_imaging`` and
    ``missing_label`` list case numbers whose image or label file is left out (an incomplete
    download), for error-path tests.
    """
    folder, label_file, values, clinical_file = RELEASES[release]
    root = Path(root)
    data = root / folder
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clinical = []
    for number in range(first_case, first_case + n_cases):
        case = data / f"case_{number:05d}"
        case.mkdir(exist_ok=True)
        slices = shape[0] + 2 * (number % 4)
        spacing = (round(float(rng.uniform(0.6, 0.9)), 4), 0.0, round(float(rng.choice([1.0, 3.0, 5.0])), 1))
        spacing = (spacing[0], spacing[0], spacing[2])
        image, label = kits_case_arrays((slices, shape[1], shape[2]), rng, values)
        affine = slice_first_affine(spacing, origin=(float(rng.uniform(-20, 20)), 150.0, -300.0))
        if number not in missing_imaging:
            write_nifti(case / "imaging.nii.gz", image, affine)
        if number not in missing_label:
            write_nifti(case / label_file, label, affine)
        if release == "kits23":
            write_nifti(
                case / "instances" / "kidney_instance-1_annotation-1.nii.gz",
                (label > 0).astype(np.uint8),
                affine,
            )
        clinical.append(
            {
                "case_id": case.name,
                "age_at_nephrectomy": int(rng.integers(30, 80)),
                "gender": str(rng.choice(["male", "female"])),
                "body_mass_index": round(float(rng.uniform(19, 35)), 1),
            }
        )
    (data / clinical_file).write_text(json.dumps(clinical, indent=1) + "\n", encoding="utf-8")
    return root


def make_kits23(root: Path, *, n_cases: int = 3, seed: int = 0, **kwargs) -> Path:
    """A tiny KiTS23 clone: ``root/dataset/case_XXXXX/{imaging,segmentation}.nii.gz`` + kits23.json."""
    return make_kits(root, release="kits23", n_cases=n_cases, seed=seed, **kwargs)
