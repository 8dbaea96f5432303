"""Fabricate LNDb, LUNA16, COVID-19-CT-Seg and BTCV Cervix in their released layouts
(YAML-only datasets; see :mod:`harmonize.plugins.fabricators.sat_ct` for the conventions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from harmonize.plugins.fabricators.abdomen import lps_affine
from harmonize.plugins.fabricators.sat_ct import Blob, Shape, ct_image, write_mhd
from harmonize.plugins.fabricators.sat_small_b import paint

from harmonize.testing import write_nifti

#: LUNA16 lung-mask values (3 left lung, 4 right lung, 5 trachea); patient's left is +x (LPS)
LUNA16_BLOBS: dict[int, Blob] = {
    3: ((0.70, 0.50, 0.45), (0.18, 0.25, 0.35)),
    4: ((0.30, 0.50, 0.45), (0.18, 0.25, 0.35)),
    5: ((0.50, 0.45, 0.85), (0.04, 0.04, 0.15)),
}
#: COVID-19-CT-Seg values (1 left lung, 2 right lung, 3 infection, painted inside the lungs)
COVID_BLOBS: dict[int, Blob] = {
    1: ((0.70, 0.50, 0.5), (0.18, 0.25, 0.35)),
    2: ((0.30, 0.50, 0.5), (0.18, 0.25, 0.35)),
    3: ((0.72, 0.55, 0.4), (0.08, 0.08, 0.10)),
}
#: BTCV Cervix values (1 bladder, 2 uterus, 3 rectum, 4 small bowel)
CERVIX_BLOBS: dict[int, Blob] = {
    4: ((0.50, 0.40, 0.75), (0.25, 0.20, 0.20)),
    1: ((0.50, 0.35, 0.30), (0.10, 0.08, 0.10)),
    2: ((0.50, 0.55, 0.35), (0.08, 0.08, 0.12)),
    3: ((0.50, 0.75, 0.30), (0.05, 0.05, 0.15)),
}
#: LUNA16-like SeriesInstanceUIDs (the LIDC-IDRI root 1.3.6.1.4.1.14519.5.2.1.6279.6001)
LUNA_UIDS = ("1.3.6.1.4.1.14519.5.2.1.6279.6001.105756658031515062000744821260",
             "1.3.6.1.4.1.14519.5.2.1.6279.6001.108197895896446896160048741492",
             "1.3.6.1.4.1.14519.5.2.1.6279.6001.109002525524522225658609808059")


def make_lndb(root: Path, *, raters: Mapping[str, tuple[int, int]] | None = None, seed: int = 0,
              shape: Shape = (16, 16, 10)) -> tuple[Path, dict[str, list[np.ndarray]]]:
    """``(root, masks)``: LNDb/data<k>/LNDb-<nnnn>.mhd (+ .raw) with masks/LNDb-<nnnn>_rad<r>.mhd
    per rater. ``raters`` maps a case to (its data folder, its number of raters; 0: no mask, the
    scan is skipped). Rater 1 of each case marks its second nodule with value 2 (a per-nodule
    encoding; any non-zero value is nodule, as SAT-DS reads it). ``masks`` are the arrays
    written per case, in rater order."""
    raters = raters or {"LNDb-0001": (0, 3), "LNDb-0002": (0, 1), "LNDb-0312": (5, 2),
                        "LNDb-0100": (2, 0)}
    data = Path(root) / "LNDb"
    rng = np.random.default_rng(seed)
    written: dict[str, list[np.ndarray]] = {}
    for case, (folder, count) in raters.items():
        spacing, origin = (0.7, 0.7, 1.0), (-180.0, -170.0, -300.0)
        nodules = [((0.3, 0.4, 0.5), (0.12, 0.12, 0.2)), ((0.7, 0.6, 0.5), (0.1, 0.1, 0.2))]
        base = paint(shape, {1: nodules[0]}, rng)
        write_mhd(data / f"data{folder}" / f"{case}.mhd", ct_image(shape, base, rng), spacing,
                  origin)
        written[case] = []
        for rater in range(1, count + 1):
            blobs = {1: nodules[0], 2: nodules[1]} if rater == 1 else {1: nodules[0]}
            mask = paint(shape, blobs, rng)
            write_mhd(data / "masks" / f"{case}_rad{rater}.mhd", mask, spacing, origin)
            written[case].append(mask)
    return data, written


def make_luna16(root: Path, *, folds: Sequence[int] = (0, 0, 9), seed: int = 0,
                shape: Shape = (16, 16, 10)) -> Path:
    """LUNA16/subset<k>/<uid>.mhd (+ .raw) with seg-lungs-LUNA16/<uid>.mhd (values 3-5), one
    scan per entry of ``folds``; the last scan has no lung mask (skipped, as SAT-DS does), and
    subsets hold a non-image file."""
    data = Path(root) / "LUNA16"
    rng = np.random.default_rng(seed)
    for k, (fold, uid) in enumerate(zip(folds, LUNA_UIDS)):
        label = paint(shape, LUNA16_BLOBS, rng)
        spacing, origin = (0.68, 0.68, 2.5), (-175.0, -170.0, -330.0 + k)
        write_mhd(data / f"subset{fold}" / f"{uid}.mhd", ct_image(shape, label, rng), spacing,
                  origin)
        if k < len(folds) - 1:
            write_mhd(data / "seg-lungs-LUNA16" / f"{uid}.mhd", label, spacing, origin)
        (data / f"subset{fold}" / "checksums.md5").write_text(f"0  {uid}.mhd\n")
    return data


def make_covid19(root: Path, *, cases: Sequence[int] = (1, 3, 9), seed: int = 0,
                 shape: Shape = (16, 16, 10)) -> Path:
    """COVID-19-CT-Seg_20cases/coronacases_<nnn>.nii.gz with Lung_and_Infection_Mask/ (values
    1-3), plus what is not read: radiopaedia_* scans (0-255 grey values) with their masks, and
    the Lung_Mask/ and Infection_Mask/ folders."""
    data = Path(root) / "COVID-19-CT-Seg_20cases"
    rng = np.random.default_rng(seed)
    for number in cases:
        label = paint(shape, COVID_BLOBS, rng)
        affine = np.diag([0.7, 0.7, 1.0 + number % 2 * 4.0, 1.0])  # RAS, as released
        name = f"coronacases_{number:03d}.nii.gz"
        write_nifti(data / name, ct_image(shape, label, rng), affine)
        write_nifti(data / "Lung_and_Infection_Mask" / name, label, affine)
        write_nifti(data / "Lung_Mask" / name, np.isin(label, [1, 2, 3]).astype(np.uint8), affine)
        write_nifti(data / "Infection_Mask" / name, (label == 3).astype(np.uint8), affine)
    other = "radiopaedia_40_86625_0.nii.gz"
    label = paint(shape, COVID_BLOBS, rng)
    write_nifti(data / other, rng.integers(0, 256, shape).astype(np.uint8), np.eye(4))
    write_nifti(data / "Lung_and_Infection_Mask" / other, label, np.eye(4))
    return data


def make_btcv_cervix(root: Path, *, cases: Sequence[str] = ("0507688", "0759564", "9570942"),
                     seed: int = 0, shape: Shape = (16, 16, 10)) -> Path:
    """BTCV_Cervix/RawData/Training/img/<id>-Image.nii.gz with label/<id>-Mask.nii.gz
    (values 1-4), and RawData/Testing/img/ images without labels (not read)."""
    data = Path(root) / "BTCV_Cervix"
    rng = np.random.default_rng(seed)
    for case in cases:
        label = paint(shape, CERVIX_BLOBS, rng)
        affine = lps_affine((0.9, 0.9, 2.5), (230.0, 230.0, -500.0))
        train = data / "RawData" / "Training"
        write_nifti(train / "img" / f"{case}-Image.nii.gz", ct_image(shape, label, rng), affine)
        write_nifti(train / "label" / f"{case}-Mask.nii.gz", label, affine)
    write_nifti(data / "RawData" / "Testing" / "img" / "5933980-Image.nii.gz",
                ct_image(shape, np.zeros(shape, np.uint8), rng), lps_affine((0.9, 0.9, 2.5)))
    return data


#: DAP Atlas values painted (Data/label_name.csv: 1 left to annotate, 11 rectum, 13 liver,
#: 15/16 kidney left/right, 105-111 heart parts, 144 left subclavian artery per SAT-DS's order)
DAP_BLOBS: dict[int, Blob] = {
    1: ((0.50, 0.50, 0.50), (0.45, 0.45, 0.48)),
    13: ((0.35, 0.45, 0.45), (0.12, 0.12, 0.10)),
    15: ((0.70, 0.60, 0.40), (0.06, 0.06, 0.06)),
    16: ((0.30, 0.60, 0.40), (0.06, 0.06, 0.06)),
    11: ((0.50, 0.70, 0.10), (0.05, 0.05, 0.06)),
    105: ((0.55, 0.40, 0.70), (0.10, 0.10, 0.08)),
    107: ((0.55, 0.40, 0.70), (0.04, 0.04, 0.03)),
    110: ((0.60, 0.35, 0.70), (0.03, 0.03, 0.03)),
    144: ((0.75, 0.40, 0.90), (0.03, 0.03, 0.05)),
}
#: autoPET studies: (subject, study folder); the last has no DAP mask
DAP_STUDIES = (("0011f3deaf", "03-23-2003-NA-PET-CT Ganzkoerper  primaer mit KM-10445"),
               ("0011f3deaf", "08-13-2005-NA-PET-CT Ganzkoerper  primaer mit KM-56839"),
               ("ff1451316e", "03-31-2003-NA-PET-CT Ganzkoerper  primaer mit KM-22165"),
               ("ff1451316e", "04-02-2004-NA-PET-CT Ganzkoerper  primaer mit KM-31337"))


def make_dap_atlas(root: Path, *, seed: int = 0, shape: Shape = (16, 16, 20)
                   ) -> tuple[Path, Path]:
    """``(masks, autopet)``: DAP_Atlas/Atlas_final_dataset_V1_533/AutoPET_<subject>_<5 digits>
    .nii.gz and autoPET_nii/PETCT_<subject>/<study folder>/{CT,PET,SEG}.nii.gz; one subject has
    two labelled studies (the study digits make the case ids unique), one study has no mask."""
    masks = Path(root) / "DAP_Atlas" / "Atlas_final_dataset_V1_533"
    autopet = Path(root) / "autoPET_nii"
    rng = np.random.default_rng(seed)
    for k, (subject, study) in enumerate(DAP_STUDIES):
        label = paint(shape, DAP_BLOBS, rng)
        affine = np.diag([2.0, 2.0, 3.0, 1.0])  # RAS, as autoPET's NIfTI conversion
        folder = autopet / f"PETCT_{subject}" / study
        write_nifti(folder / "CT.nii.gz", ct_image(shape, label, rng), affine)
        write_nifti(folder / "PET.nii.gz", rng.random(shape).astype(np.float32), affine)
        write_nifti(folder / "SEG.nii.gz", np.zeros(shape, np.uint8), affine)
        if k < len(DAP_STUDIES) - 1:
            write_nifti(masks / f"AutoPET_{subject}_{study[-5:]}.nii.gz", label, affine)
    return masks, autopet
