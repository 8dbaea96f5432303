"""Fabricate a BTCV abdomen tree in its released layout (see plugins/btcv.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmonize.testing import ct_phantom, ellipsoid, write_nifti

#: Released training ids (0001-0010, 0021-0040) and test ids (0061-0080).
TRAIN_IDS = (*range(1, 11), *range(21, 41))
TEST_IDS = tuple(range(61, 81))

#: label value: (centre, radii, HU) as fractions of the (X, Y, Z) array, stored L-P-S so a small
#: X index is the patient's right. Painted in this order (small structures last, on top).
ORGANS: dict[int, tuple[tuple[float, float, float], tuple[float, float, float], int]] = {
    6: ((0.30, 0.45, 0.68), (0.17, 0.20, 0.20), 60),   # liver (patient's right)
    7: ((0.63, 0.38, 0.70), (0.10, 0.10, 0.12), 30),   # stomach
    1: ((0.76, 0.60, 0.70), (0.08, 0.10, 0.14), 50),   # spleen (patient's left)
    2: ((0.30, 0.68, 0.42), (0.07, 0.08, 0.16), 160),  # right kidney
    3: ((0.70, 0.68, 0.48), (0.07, 0.08, 0.16), 160),  # left kidney
    11: ((0.56, 0.52, 0.52), (0.12, 0.05, 0.06), 45),  # pancreas
    4: ((0.30, 0.32, 0.52), (0.06, 0.06, 0.08), 10),   # gallbladder
    8: ((0.53, 0.62, 0.50), (0.05, 0.05, 0.48), 200),  # aorta
    9: ((0.44, 0.60, 0.50), (0.05, 0.05, 0.40), 150),  # inferior vena cava
    10: ((0.45, 0.50, 0.62), (0.06, 0.04, 0.06), 170),  # portal vein and splenic vein
    5: ((0.52, 0.56, 0.92), (0.05, 0.05, 0.10), 40),   # esophagus
    12: ((0.36, 0.62, 0.64), (0.05, 0.05, 0.06), 35),  # right adrenal gland
    13: ((0.64, 0.62, 0.66), (0.05, 0.05, 0.06), 35),  # left adrenal gland
}


def btcv_case_arrays(
    shape: tuple[int, int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """CT (int16 HU) and label (uint8, values 1-13) arrays, (X, Y, Z) stored L-P-S."""
    image = ct_phantom(shape, rng, axial_axes=(0, 1))
    label = np.zeros(shape, dtype=np.uint8)
    shift = rng.uniform(-0.02, 0.02, size=3)
    for value, (centre, radii, hu) in ORGANS.items():
        organ = ellipsoid(shape, tuple(c + s for c, s in zip(centre, shift)), radii)
        label[organ] = value
        image[organ] = hu
    return image, label


def make_btcv(
    root: Path,
    *,
    n_cases: int = 3,
    seed: int = 0,
    n_test: int = 1,
    test_folder: str = "Testing",
    shape: tuple[int, int, int] = (48, 48, 20),
    missing_label: tuple[int, ...] = (),
) -> Path:
    """Write ``root/RawData/Training/{img,label}`` and ``root/RawData/<test_folder>/img``.

    Training cases take the first ``n_cases`` released ids (0001, 0002, ...), test cases the first
    ``n_test`` test ids (0061, ...). ``test_folder`` is ``Testing`` (Synapse zip) or ``Test``
    (nnU-Net's copy). Spacing 0.54-0.98 mm in-plane, 2.5-5 mm slices; ``missing_label`` lists ids
    whose label file is left out.
    """
    root = Path(root)
    raw = root / "RawData"
    rng = np.random.default_rng(seed)
    cases = [(n, "Training") for n in TRAIN_IDS[:n_cases]]
    cases += [(n, test_folder) for n in TEST_IDS[:n_test]]
    for number, split in cases:
        dims = (shape[0], shape[1], shape[2] + 2 * (number % 3))
        image, label = btcv_case_arrays(dims, rng)
        in_plane = round(float(rng.uniform(0.54, 0.98)), 4)
        thickness = float(rng.choice([2.5, 3.0, 5.0]))
        affine = np.diag([-in_plane, -in_plane, thickness, 1.0])
        affine[:3, 3] = (in_plane * dims[0] / 2, in_plane * dims[1] / 2, float(rng.uniform(-400, -200)))
        write_nifti(raw / split / "img" / f"img{number:04d}.nii.gz", image, affine)
        if split == "Training" and number not in missing_label:
            write_nifti(raw / split / "label" / f"label{number:04d}.nii.gz", label, affine)
    (raw / "Training" / "label").mkdir(parents=True, exist_ok=True)
    return root
