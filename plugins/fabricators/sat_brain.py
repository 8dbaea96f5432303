"""Fabricate the BraTS 2023 sub-challenges MEN, MET, PED and SSA in their released layouts.

Folders, file names and case ids as SAT-DS ``processor.py`` (``preprocess_BraTS2023_MEN`` ...
``_SSA``) and its ``data/jsonl/BraTS2023_<SUB>.jsonl`` walk them (registry/datasets/
brats2023-{men,met,ped,ssa}.yaml); geometry, sequences and label values as the GLI fabricator
(``brats.py``: SRI24 LPS affine, 1 mm, values 1 necrotic core, 2 edema, 3 enhancing). Quirks:
MEN's ``BraTS-MEN-Train-Fix`` holds corrected copies of some ``BraTS-MEN-Train`` cases (and a
patient with a second scan ``-001``); MET's training data comes in two folders and
``BraTS-MET-00232-000`` of the additional part lacks its ``t2w`` file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from harmonize.plugins.fabricators.brats import brats_affine, brats_case_arrays

from harmonize.testing import write_nifti

#: file suffixes in channel order T1, T1ce, T2, FLAIR
SEQUENCES = ("t1n", "t1c", "t2w", "t2f")
#: sub-challenge -> its training folders and the case ids fabricated in each
BRATS_SUBS: dict[str, dict[str, tuple[str, ...]]] = {
    "men": {"BraTS-MEN-Train": ("BraTS-MEN-00004-000", "BraTS-MEN-00023-000",
                                "BraTS-MEN-01435-000", "BraTS-MEN-01435-001"),
            "BraTS-MEN-Train-Fix": ("BraTS-MEN-00023-000",)},
    "met": {"ASNR-MICCAI-BraTS2023-MET-Challenge-TrainingData": ("BraTS-MET-00002-000",
                                                                  "BraTS-MET-00003-000"),
            "ASNR-MICCAI-BraTS2023-MET-Challenge-TrainingData_Additional": (
                "BraTS-MET-00231-000", "BraTS-MET-00232-000")},
    "ped": {"ASNR-MICCAI-BraTS2023-PED-Challenge-TrainingData": ("BraTS-PED-00002-000",
                                                                  "BraTS-PED-00003-000")},
    "ssa": {"ASNR-MICCAI-BraTS2023-SSA-Challenge-TrainingData_V2": ("BraTS-SSA-00002-000",
                                                                     "BraTS-SSA-00007-000")},
}
#: (folder, case id) -> sequences the release lacks (SAT-DS's jsonl lists 3 files for it)
MISSING = {("ASNR-MICCAI-BraTS2023-MET-Challenge-TrainingData_Additional",
            "BraTS-MET-00232-000"): ("t2w",)}


def make_brats2023_sub(
    root: Path, sub: str, *, seed: int = 0, shape: tuple[int, int, int] = (20, 20, 12),
) -> Path:
    """A tiny BraTS 2023 ``sub`` (men, met, ped, ssa) training release under ``root``; returns
    ``root``. Every case gets its own random tumour, so a Fix copy differs from its original."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    affine = brats_affine(shape)
    for folder, cases in BRATS_SUBS[sub].items():
        for case_id in cases:
            channels, label = brats_case_arrays(shape, rng, enhancing=3)
            lacking = MISSING.get((folder, case_id), ())
            for suffix, data in zip(SEQUENCES, channels):
                if suffix not in lacking:
                    write_nifti(root / folder / case_id / f"{case_id}-{suffix}.nii.gz", data,
                                affine)
            write_nifti(root / folder / case_id / f"{case_id}-seg.nii.gz", label, affine)
    return root
