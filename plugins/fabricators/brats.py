"""Fabricate BraTS 2021 and BraTS 2023 GLI trees in their released layouts (see plugins/brats.py).

Real layout, names and geometry: case folders with one file per MR sequence plus the label map,
1 mm isotropic voxels with the SRI24 LPS affine BraTS ships (``diag(-1, -1, 1)``, origin at
``(0, ny - 1, 0)``), only much smaller than 240 x 240 x 155. A training folder (labelled) and a
validation folder (no label files) sit side by side, as after extracting the two archives.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmonize.testing import ellipsoid, write_nifti


@dataclass(frozen=True)
class BraTSRelease:
    """File naming and label values of one BraTS release."""

    training_folder: str
    validation_folder: str
    separator: str  # between case id and suffix: "_" (2021) or "-" (2023)
    sequences: tuple[str, str, str, str]  # file suffixes in channel order T1, T1ce, T2, FLAIR
    enhancing: int  # label value of the enhancing tumour

    def case_id(self, number: int, timepoint: int = 0) -> str:
        if self.separator == "_":
            return f"BraTS2021_{number:05d}"
        return f"BraTS-GLI-{number:05d}-{timepoint:03d}"

    def file(self, case_id: str, suffix: str) -> str:
        return f"{case_id}{self.separator}{suffix}.nii.gz"


RELEASES: dict[str, BraTSRelease] = {
    "brats2021": BraTSRelease(
        "RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021",
        "RSNA_ASNR_MICCAI_BraTS2021_ValidationData",
        "_", ("t1", "t1ce", "t2", "flair"), 4,
    ),
    "brats2023-gli": BraTSRelease(
        "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData",
        "ASNR-MICCAI-BraTS2023-GLI-Challenge-ValidationData",
        "-", ("t1n", "t1c", "t2w", "t2f"), 3,
    ),
}
MAPPING_CSV = "BraTS21-17_Mapping.csv"

#: Mean intensity per (sequence index, tissue): background, brain, edema, necrosis, enhancing.
_TISSUE = np.array(
    [
        [0, 420, 330, 180, 380],  # T1: tumour dark
        [0, 450, 380, 150, 1300],  # T1ce: enhancing rim bright
        [0, 600, 1200, 1400, 900],  # T2: edema and necrosis bright
        [0, 300, 900, 400, 700],  # FLAIR: edema bright
    ],
    dtype=np.float32,
)


def brats_affine(shape: tuple[int, int, int]) -> np.ndarray:
    """BraTS's SRI24 affine: 1 mm, x and y flipped (LPS), origin at (0, ny - 1, 0)."""
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[1, 3] = float(shape[1] - 1)
    return affine


def brats_case_arrays(
    shape: tuple[int, int, int], rng: np.random.Generator, enhancing: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Four int16 MR channels (T1, T1ce, T2, FLAIR order) and a uint8 label map.

    The tumour sits in one hemisphere (x < centre), so a left/right flip shows: edema (2) around a
    core of necrosis (1) inside an enhancing rim (``enhancing``).
    """
    jitter = rng.uniform(-0.04, 0.04, size=3)
    brain = ellipsoid(shape, (0.5, 0.5, 0.5), (0.42, 0.45, 0.42))
    centre = (0.32 + jitter[0], 0.45 + jitter[1], 0.5 + jitter[2])
    edema = ellipsoid(shape, centre, (0.18, 0.2, 0.22)) & brain
    core = ellipsoid(shape, centre, (0.1, 0.11, 0.13)) & brain
    necrosis = ellipsoid(shape, centre, (0.05, 0.06, 0.07)) & brain
    tissue = np.zeros(shape, dtype=np.int64)
    tissue[brain] = 1
    tissue[edema] = 2
    tissue[core] = 4
    tissue[necrosis] = 3
    label = np.zeros(shape, dtype=np.uint8)
    label[edema] = 2
    label[core] = enhancing
    label[necrosis] = 1
    channels = []
    for index in range(4):
        volume = _TISSUE[index][tissue]
        volume += rng.normal(0.0, 12.0, size=shape).astype(np.float32) * (tissue > 0)
        channels.append(np.clip(np.rint(volume), 0, None).astype(np.int16))
    return channels, label


def make_brats(
    root: Path,
    *,
    release: str = "brats2021",
    n_cases: int = 3,
    n_validation: int = 1,
    seed: int = 0,
    shape: tuple[int, int, int] = (24, 24, 16),
    bad_label: tuple[int, int] | None = None,
    missing_label: tuple[int, ...] = (),
    missing_channel: tuple[int, ...] = (),
    second_timepoint: bool = True,
    mapping_csv: bool = True,
) -> Path:
    """Write a tiny BraTS release under ``root`` (training and validation folders); return ``root``.

    Training cases get even numbers (BraTS ids are not contiguous), validation cases odd numbers.
    ``bad_label=(i, value)`` writes ``value`` into training case ``i``'s label map (e.g. a 3 in
    BraTS 2021); ``missing_label``/``missing_channel`` list training case indices whose label or
    FLAIR file is left out. For BraTS 2023 ``second_timepoint`` adds ``-001`` of the first
    patient, as the release has for 118 patients. For BraTS 2021 ``mapping_csv`` writes
    BraTS21-17_Mapping.csv next to the training folder.
    """
    spec = RELEASES[release]
    root = Path(root)
    rng = np.random.default_rng(seed)
    affine = brats_affine(shape)
    train_ids = [spec.case_id(2 * i) for i in range(n_cases)]
    if release == "brats2023-gli" and second_timepoint and n_cases:
        train_ids.append(spec.case_id(0, timepoint=1))
    for index, case_id in enumerate(train_ids):
        folder = root / spec.training_folder / case_id
        channels, label = brats_case_arrays(shape, rng, spec.enhancing)
        for position, (suffix, data) in enumerate(zip(spec.sequences, channels)):
            if index in missing_channel and position == 3:
                continue
            write_nifti(folder / spec.file(case_id, suffix), data, affine)
        if bad_label is not None and bad_label[0] == index:
            label[label == 2] = bad_label[1]
        if index not in missing_label:
            write_nifti(folder / spec.file(case_id, "seg"), label, affine)
    for i in range(n_validation):
        case_id = spec.case_id(2 * i + 1)
        folder = root / spec.validation_folder / case_id
        channels, _ = brats_case_arrays(shape, rng, spec.enhancing)
        for suffix, data in zip(spec.sequences, channels):
            write_nifti(folder / spec.file(case_id, suffix), data, affine)
    if release == "brats2021" and mapping_csv:
        _write_mapping(root / MAPPING_CSV, train_ids)
    return root


def _write_mapping(path: Path, case_ids: list[str]) -> None:
    """BraTS21-17_Mapping.csv: the BraTS 2021 id, earlier-release ids and the site number."""
    columns = ["BraTS2021", "BraTS2020", "BraTS2019", "BraTS2018", "BraTS2017",
               "Site No (represents the originating institution)"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for n, case_id in enumerate(case_ids, start=1):
            earlier = f"BraTS20_Training_{n:03d}" if n % 2 else "NA"
            writer.writerow([case_id, earlier, "NA", "NA", "NA", str(n % 3 + 1)])


def make_brats2021(root: Path, *, n_cases: int = 3, seed: int = 0, **kwargs) -> Path:
    """A tiny BraTS 2021 download: training + validation folders and BraTS21-17_Mapping.csv."""
    return make_brats(root, release="brats2021", n_cases=n_cases, seed=seed, **kwargs)


def make_brats2023_gli(root: Path, *, n_cases: int = 3, seed: int = 0, **kwargs) -> Path:
    """A tiny BraTS 2023 GLI download: training (with a -001 time point) + validation folders."""
    return make_brats(root, release="brats2023-gli", n_cases=n_cases, seed=seed, **kwargs)
