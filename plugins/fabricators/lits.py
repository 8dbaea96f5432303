"""Fabricate a LiTS tree in its released layout (see plugins/lits.py).

Each case's voxels depend only on ``(seed, number)``, so ``volume-N`` is the same image whatever
``n_cases`` is: other fabricators (MSD Task03, CTSpine1K ``liver_N``) reuse :func:`lits_volume` to
build the cross-dataset duplicates the real releases have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmonize.testing import ct_phantom, ellipsoid, write_nifti

#: Training numbers 0-27 came in Training_Batch1.zip, 28-130 in Training_Batch2.zip.
BATCH_1_LAST = 27
BATCH_FOLDERS = ("Training Batch 1", "Training Batch 2")
#: Folder names used by nnU-Net's Task029 conversion script for a merged copy and the test volumes.
MERGED_FOLDER = "LITS-Challenge-Train-Data"
TEST_FOLDER = "test_data"
#: Storage conventions seen in LiTS: most volumes L-P-S, some with the row axis flipped (L-A-S)
#: or the slice axis reversed (L-P-I).
STORAGE = ("LPS", "LAS", "LPI")


def lits_volume(
    number: int, *, seed: int = 0, shape: tuple[int, int, int] = (40, 40, 16), test: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image int16 HU, label uint8, affine)`` of fabricated case ``number``, stored L-P-S.

    Arrays are (X, Y, Z) with the liver on the patient's right (small X index in L-P-S storage)
    and a tumor inside it. ``test`` draws a different patient for ``test-volume-N``.
    """
    rng = np.random.default_rng([seed, number, int(test)])
    slices = shape[2] + 2 * (number % 3)
    dims = (shape[0], shape[1], slices)
    image = ct_phantom(dims, rng, axial_axes=(0, 1))
    label = np.zeros(dims, dtype=np.uint8)
    jitter = rng.uniform(-0.04, 0.04, size=3)
    liver = ellipsoid(dims, (0.32 + jitter[0], 0.42 + jitter[1], 0.55), (0.2, 0.22, 0.4))
    label[liver] = 1
    tumor = ellipsoid(dims, (0.3 + jitter[0], 0.4 + jitter[1], 0.5 + jitter[2]), (0.07, 0.07, 0.12))
    label[tumor & liver] = 2
    image[label == 1] = 60
    image[label == 2] = 25
    in_plane = round(float(rng.uniform(0.56, 1.0)), 4)
    thickness = float(rng.choice([0.7, 1.0, 2.5, 5.0]))
    affine = np.diag([-in_plane, -in_plane, thickness, 1.0])
    affine[:3, 3] = (in_plane * dims[0] / 2, in_plane * dims[1] / 2, -thickness * slices)
    return image, label, affine


def restore(data: np.ndarray, affine: np.ndarray, storage: str) -> tuple[np.ndarray, np.ndarray]:
    """Re-store an L-P-S array as ``storage`` (same anatomy in world space, other voxel order)."""
    flips = [axis for axis, (a, b) in enumerate(zip("LPS", storage)) if a != b]
    flip = np.eye(4)
    for axis in flips:
        data = np.flip(data, axis=axis)
        flip[axis, axis] = -1.0
        flip[axis, 3] = data.shape[axis] - 1
    return np.ascontiguousarray(data), affine @ flip


def make_lits(
    root: Path,
    *,
    n_cases: int = 3,
    seed: int = 0,
    first_case: int = 26,
    n_test: int = 1,
    layout: str = "batches",
    shape: tuple[int, int, int] = (40, 40, 16),
    missing_label: tuple[int, ...] = (),
) -> Path:
    """Write ``n_cases`` training cases (numbers from ``first_case``) and ``n_test`` test volumes.

    ``layout="batches"`` puts cases 0-27 in ``Training Batch 1`` and 28-130 in ``Training Batch 2``
    (the two zips; the default numbers straddle the boundary); ``layout="merged"`` puts all of them
    in one ``LITS-Challenge-Train-Data`` folder. Files are uncompressed ``.nii``; every third volume
    is stored with a flipped axis. ``missing_label`` lists numbers written without segmentation.
    """
    if layout not in ("batches", "merged"):
        raise ValueError(f"layout must be 'batches' or 'merged', not {layout!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for number in range(first_case, first_case + n_cases):
        if layout == "merged":
            folder = root / MERGED_FOLDER
        else:
            folder = root / BATCH_FOLDERS[int(number > BATCH_1_LAST)]
        image, label, affine = lits_volume(number, seed=seed, shape=shape)
        storage = STORAGE[number % len(STORAGE)]
        data, stored_affine = restore(image, affine, storage)
        write_nifti(folder / f"volume-{number}.nii", data, stored_affine)
        if number not in missing_label:
            seg, _ = restore(label, affine, storage)
            write_nifti(folder / f"segmentation-{number}.nii", seg, stored_affine)
    for number in range(n_test):
        image, _, affine = lits_volume(number, seed=seed, shape=shape, test=True)
        write_nifti(root / TEST_FOLDER / f"test-volume-{number}.nii", image, affine)
    return root
