"""Fabricate SEG.A. 2023, RibFrac 2020, RibSeg v2, Prostate158 and ISBI 2015 in their released
layouts (YAML-only datasets, ``registry/datasets/<id>.yaml``; layouts cited in each descriptor).

Structures are ellipsoids painted with :func:`~harmonize.plugins.fabricators.sat_small_b.paint`,
so a test counts voxels per value from the written arrays itself. Arrays are (X, Y, Z); each
maker returns the folder to pass as ``--root`` and writes the release's quirks (see each
docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from harmonize.plugins.fabricators.abdomen import lps_affine
from harmonize.plugins.fabricators.sat_ct import Blob, Shape, ct_image
from harmonize.plugins.fabricators.sat_heart_hn import write_nrrd
from harmonize.plugins.fabricators.sat_small_b import paint

from harmonize.testing import write_nifti

#: SEG.A. value 1: the aorta (arch and descending part as one tube-like ellipsoid)
SEGA_BLOBS: dict[int, Blob] = {1: ((0.5, 0.45, 0.5), (0.08, 0.08, 0.45))}
#: SEG.A. centres: stored = HU + offset (SAT-DS processor.py subtracts 1000 from KiTS, Rider)
SEGA_OFFSETS = {"Dongyang": 0, "KiTS": 1000, "Rider": 1000}
#: centre -> case folders; a Rider folder has text after the case id (processor.py's
#: ``case.split(' ')[0]``)
SEGA_CASES: dict[str, tuple[str, ...]] = {"Dongyang": ("D1", "D2"), "KiTS": ("K1",),
                                          "Rider": ("R1 (AD)", "R10 (AD)")}


def make_sega(root: Path, *, cases: Mapping[str, Sequence[str]] | None = None, seed: int = 0,
              shape: Shape = (14, 12, 10)) -> Path:
    """SEGA/<centre>/<folder>/<case>.nrrd (int16; KiTS and Rider stored HU + 1000) +
    <case>.seg.nrrd (uint8 0/1), LPS NRRD with each centre's own spacing; ``cases`` maps a
    centre to its case folders (default :data:`SEGA_CASES`)."""
    data = Path(root) / "SEGA"
    rng = np.random.default_rng(seed)
    spacing = {"Dongyang": (0.8, 0.8, 3.0), "KiTS": (0.78, 0.78, 5.0), "Rider": (0.7, 0.7, 2.5)}
    for centre, folders in (cases or SEGA_CASES).items():
        for k, folder in enumerate(folders):
            case = folder.split(" ")[0]
            label = paint(shape, SEGA_BLOBS, rng).astype(np.uint8)
            image = ct_image(shape, label, rng, offset=SEGA_OFFSETS[centre])
            origin = (-180.0 + k, -200.0, -400.0 - 10 * k)
            write_nrrd(data / centre / folder / f"{case}.nrrd", image, spacing[centre], origin)
            write_nrrd(data / centre / folder / f"{case}.seg.nrrd", label, spacing[centre],
                       origin)
    return data


#: RibFrac parts as SAT-DS's processor.py names the folders -> case numbers; the last case of
#: train2 has no label file (SAT-DS skips such an image)
RIBFRAC_PARTS: dict[str, tuple[int, ...]] = {"train1": (1, 2), "train2": (301, 302),
                                             "val": (421,)}
#: RibFrac info CSV label_code per instance: 1 displaced ... 4 segmental, -1 undetermined
RIBFRAC_CODES = (1, -1, 3, 2, 4)


def _fractures(shape: Shape, count: int, rng: np.random.Generator) -> np.ndarray:
    """An instance label map: ``count`` small fractures with values 1..count (uint8)."""
    blobs = {k: ((0.2 + 0.6 * k / (count + 1), 0.3 + 0.05 * k, 0.5), (0.06, 0.06, 0.12))
             for k in range(1, count + 1)}
    return paint(shape, blobs, rng)


def _ribfrac_image_path(data: Path, part: str, number: int) -> Path:
    return data / f"ribfrac-{part}-image" / f"RibFrac{number}-image.nii.gz"


def make_ribfrac(root: Path, *, parts: Mapping[str, Sequence[int]] | None = None,
                 seed: int = 0, shape: Shape = (14, 12, 10), unlabelled: Sequence[int] = (302,)
                 ) -> tuple[Path, dict[str, np.ndarray]]:
    """``(root, labels)``: RibFrac/ribfrac-<part>-image/RibFrac<n>-image.nii.gz (int16 HU, LPS
    0.7 x 0.7 x 1.25 mm) + ribfrac-<part>-labels/RibFrac<n>-label.nii.gz (one value per
    fracture, 1..n; case k has k % 4 + 1 fractures) and ribfrac-<part>-info.csv (public_id,
    label_id, label_code; not read). ``unlabelled`` cases get no label file. ``labels`` maps a
    case id to its written instance array."""
    data = Path(root) / "RibFrac"
    rng = np.random.default_rng(seed)
    labels: dict[str, np.ndarray] = {}
    for part, numbers in (parts or RIBFRAC_PARTS).items():
        rows = ["public_id,label_id,label_code"]
        for number in numbers:
            case = f"RibFrac{number}"
            label = _fractures(shape, number % 4 + 1, rng)
            affine = lps_affine((0.7, 0.7, 1.25), (170.0, 160.0, -300.0 - number))
            write_nifti(_ribfrac_image_path(data, part, number), ct_image(shape, label, rng),
                        affine)
            if number in unlabelled:
                continue
            write_nifti(data / f"ribfrac-{part}-labels" / f"{case}-label.nii.gz", label, affine)
            labels[case] = label
            rows.append(f"{case},0,0")
            rows += [f"{case},{k},{RIBFRAC_CODES[k % 5]}" for k in range(1, int(label.max()) + 1)]
        (data / f"ribfrac-{part}-info.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data, labels


def make_ribseg(root: Path, *, flat: bool = False, seed: int = 0, shape: Shape = (36, 12, 8),
                without_label: Sequence[int] = (2,)) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """``(ribseg_root, ribfrac_root, labels)``: RibSeg/seg/RibFrac<n>-rib-seg.nii.gz (values
    1..24, case 301 lacks ribs 1 and 13) and cl/RibFrac<n>.npz (centrelines, not read) on the
    RibFrac CT of :func:`make_ribfrac` (``flat``: every image in one folder, as nnU-Net's
    script extracts them); ``without_label`` scans have no RibSeg file (skipped)."""
    ribfrac, _ = make_ribfrac(root, seed=seed, shape=shape, unlabelled=())
    if flat:
        for image in sorted(ribfrac.glob("ribfrac-*-image/*.nii.gz")):
            image.rename(ribfrac / image.name)
    data = Path(root) / "RibSeg"
    rng = np.random.default_rng(seed + 1)
    labels: dict[str, np.ndarray] = {}
    for number in (n for numbers in RIBFRAC_PARTS.values() for n in numbers):
        if number in without_label:
            continue
        case = f"RibFrac{number}"
        ribs = {v: ((0.1 + 0.8 * ((v - 1) % 12) / 12, 0.3 if v <= 12 else 0.7, 0.5),
                    (0.03, 0.08, 0.3)) for v in range(1, 25)
                if not (number == 301 and v in (1, 13))}
        label = paint(shape, ribs, rng)
        affine = lps_affine((0.7, 0.7, 1.25), (170.0, 160.0, -300.0 - number))
        write_nifti(data / "seg" / f"{case}-rib-seg.nii.gz", label, affine)
        (data / "cl").mkdir(parents=True, exist_ok=True)
        np.savez(data / "cl" / f"{case}.npz", cl=rng.integers(0, 12, size=(24, 5, 3)))
        labels[case] = label
    return data, ribfrac, labels


#: Prostate158 zones (1 transition zone inside 2 peripheral zone's posterior crescent)
PROSTATE158_BLOBS: dict[int, Blob] = {2: ((0.5, 0.62, 0.5), (0.22, 0.14, 0.3)),
                                      1: ((0.5, 0.45, 0.5), (0.16, 0.14, 0.3))}
#: split folder -> study IDs (three-digit folder names)
PROSTATE158_CASES: dict[str, tuple[str, ...]] = {"train": ("020", "021"), "valid": ("101",),
                                                 "test": ("141",)}


def make_prostate158(root: Path, *, cases: Mapping[str, Sequence[str]] | None = None,
                     seed: int = 0, shape: Shape = (16, 14, 6)) -> Path:
    """prostate158/<split>/<ID>/{t2,adc,dwi}.nii.gz (one grid, LPS 0.4 x 0.4 x 3 mm, float32)
    + t2_anatomy_reader1.nii.gz (uint8 1 transition, 2 peripheral zone), with the files that
    are not read: adc_tumor_reader1.nii.gz or empty.nii.gz, t2_anatomy_reader2.nii.gz (test
    studies), train.csv / valid.csv."""
    data = Path(root) / "prostate158"
    rng = np.random.default_rng(seed)
    for split, ids in (cases or PROSTATE158_CASES).items():
        rows = ["ID,t2,adc,dwi,t2_anatomy_reader1,adc_tumor_reader1"]
        for k, study in enumerate(ids):
            folder = data / split / study
            label = paint(shape, PROSTATE158_BLOBS, rng)
            affine = lps_affine((0.4, 0.4, 3.0), (30.0 + k, 60.0, -20.0))
            base = 300.0 + 200.0 * (label == 1) + 400.0 * (label == 2)
            for k2, name in enumerate(("t2", "adc", "dwi")):
                noise = rng.normal(0.0, 10.0, size=shape)
                write_nifti(folder / f"{name}.nii.gz",
                            (base * (1 + k2) + noise).astype(np.float32), affine)
            write_nifti(folder / "t2_anatomy_reader1.nii.gz", label, affine)
            if split == "test":
                write_nifti(folder / "t2_anatomy_reader2.nii.gz", (label > 0).astype(np.uint8),
                            affine)
            tumour = "empty.nii.gz" if k % 2 else "adc_tumor_reader1.nii.gz"
            write_nifti(folder / tumour, (label == 2).astype(np.uint8) * np.uint8(k % 2 == 0),
                        affine)
            rel = f"{split}/{study}"
            rows.append(f"{study},{rel}/t2.nii.gz,{rel}/adc.nii.gz,{rel}/dwi.nii.gz,"
                        f"{rel}/t2_anatomy_reader1.nii.gz,{rel}/{tumour}")
        if split != "test":
            (data / f"{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data


#: ISBI 2015 patients -> time points (training01 has three, training02 one)
ISBI2015_CASES: dict[str, tuple[int, ...]] = {"training01": (1, 2, 3), "training02": (1,)}


def make_isbi2015(root: Path, *, cases: Mapping[str, Sequence[int]] | None = None,
                  seed: int = 0, shape: Shape = (12, 14, 10)) -> tuple[Path, dict[str, list]]:
    """``(root, masks)``: ISBI_2015/training/<patient>/preprocessed/<patient>_<tt>_{flair,
    mprage,t2,pd}_pp.nii (float32, 1 mm, LPS) + masks/<patient>_<tt>_mask1.nii, _mask2.nii
    (uint8 0/1; rater 2 draws one more lesion) and orig/<patient>_<tt>_flair.nii (raw, not
    read). ``masks`` maps a case id to its [rater 1, rater 2] arrays."""
    data = Path(root) / "ISBI_2015"
    rng = np.random.default_rng(seed)
    masks: dict[str, list] = {}
    lesions = {1: ((0.4, 0.5, 0.5), (0.1, 0.08, 0.1)), 2: ((0.65, 0.45, 0.6), (0.08, 0.1, 0.1))}
    for patient, points in (cases or ISBI2015_CASES).items():
        folder = data / "training" / patient
        for point in points:
            case = f"{patient}_{point:02d}"
            affine = lps_affine((1.0, 1.0, 1.0), (90.0, 126.0, -72.0))
            rater1 = paint(shape, {1: lesions[1]}, rng)
            rater2 = paint(shape, {1: lesions[1]}, rng) | paint(shape, {1: lesions[2]}, rng)
            for k, name in enumerate(("flair", "mprage", "t2", "pd")):
                image = (200.0 + 300.0 * (rater2 > 0) * (k != 1) + 50.0 * k
                         + rng.normal(0.0, 5.0, size=shape)).astype(np.float32)
                write_nifti(folder / "preprocessed" / f"{case}_{name}_pp.nii", image, affine)
            write_nifti(folder / "orig" / f"{case}_flair.nii",
                        rng.normal(100.0, 5.0, size=shape).astype(np.float32), affine)
            write_nifti(folder / "masks" / f"{case}_mask1.nii", rater1, affine)
            write_nifti(folder / "masks" / f"{case}_mask2.nii", rater2, affine)
            masks[case] = [rater1, rater2]
    return data, masks
