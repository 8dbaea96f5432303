"""Fabricate a TotalSegmentator v2 release: ``s####/ct.nii.gz`` + 117 binary structure files.

Layout and quirks reproduced (see plugins/totalsegmentator.py and DATASETS.md section 11):
the ``Totalsegmentator_dataset_v201/`` folder, ``meta.csv`` ``;``-separated with a UTF-8 BOM and the
v2.0.1 columns, RAS int16 CT at 1.5 mm, one uint8 binary file per structure named after
``class_map["total"]``, zero-filled files for structures outside the field of view, structures that
overlap (kidney cysts inside kidneys, the atrial appendage inside the heart), and subjects with files
left out of ``segmentations/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import numpy as np

from harmonize.testing import ct_phantom, ellipsoid, write_nifti

FOLDER = "Totalsegmentator_dataset_v201"
META_COLUMNS = (
    "image_id", "age", "gender", "institute", "study_type", "split", "manufacturer",
    "scanner_model", "kvp", "pathology", "pathology_location",
)
SPLIT_CYCLE = ("train", "val", "test")
#: Structures drawn inside another one, so the painting order matters: (inner, outer).
NESTED = (
    ("kidney_cyst_left", "kidney_left"),
    ("kidney_cyst_right", "kidney_right"),
    ("atrial_appendage_left", "heart"),
    ("vertebrae_S1", "sacrum"),
)


def structure_names() -> list[str]:
    """The 117 v2 structure names in label-value order (from the bundled descriptor)."""
    from harmonize.plugins.totalsegmentator import TotalSegmentator

    return list(TotalSegmentator().structures.values())


def subject_masks(
    names: Sequence[str], shape: tuple[int, int, int], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """One boolean mask per structure: small ellipsoids at seeded places (about a fifth empty,
    as for structures outside the scan), with the :data:`NESTED` pairs overlapping."""
    masks: dict[str, np.ndarray] = {}
    for name in names:
        if rng.random() < 0.2:
            masks[name] = np.zeros(shape, dtype=bool)
            continue
        center = rng.uniform(0.2, 0.8, size=3)
        radii = rng.uniform(0.06, 0.16, size=3)
        masks[name] = ellipsoid(shape, center, radii)
    for inner, outer in NESTED:
        if inner in masks and outer in masks:
            center = rng.uniform(0.35, 0.65, size=3)
            masks[outer] = ellipsoid(shape, center, (0.2, 0.18, 0.16))
            masks[inner] = ellipsoid(shape, center + 0.05, (0.08, 0.07, 0.06))
    return masks


def make_totalsegmentator(
    root: Path,
    *,
    n_cases: int = 3,
    seed: int = 0,
    first_subject: int = 0,
    shape: tuple[int, int, int] = (24, 28, 32),
    missing: Mapping[int, Sequence[str]] | None = None,
    splits: Sequence[str] | None = None,
) -> Path:
    """Write ``n_cases`` subjects under ``root/Totalsegmentator_dataset_v201``; return ``root``.

    Subject numbers start at ``first_subject``; splits cycle train/val/test unless given.
    ``missing`` maps a subject number to structure names left out of its ``segmentations/``;
    by default the second subject lacks every seventh structure (the first has all 117 files).
    """
    root = Path(root)
    data = root / FOLDER
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = structure_names()
    if missing is None:
        missing = {first_subject + 1: names[::7]}
    rows = [";".join(META_COLUMNS)]
    for index in range(n_cases):
        number = first_subject + index
        subject = f"s{number:04d}"
        folder = data / subject
        size = (shape[0], shape[1], shape[2] + 2 * (index % 3))
        affine = np.diag([1.5, 1.5, 1.5, 1.0])
        affine[:3, 3] = (-rng.uniform(150, 250), -rng.uniform(150, 250), -rng.uniform(300, 900))
        image = ct_phantom(size, rng, axial_axes=(0, 1))
        masks = subject_masks(names, size, rng)
        for value, name in enumerate(names, start=1):
            image[masks[name]] = np.int16(-850 if "lung" in name else 30 + (value % 9) * 80)
            if name in missing.get(number, ()):
                continue
            write_nifti(folder / "segmentations" / f"{name}.nii.gz", masks[name].astype(np.uint8),
                        affine)
        write_nifti(folder / "ct.nii.gz", image, affine)
        split = (splits[index] if splits is not None else SPLIT_CYCLE[index % 3])
        rows.append(";".join([
            subject, str(int(rng.integers(20, 90))), str(rng.choice(["m", "f"])),
            str(rng.choice(["A", "B", "H", "Z"])), "ct abdomen-pelvis", split, "siemens",
            "somatom definition as", str(rng.choice([100, 120])), "no_pathology", "",
        ]))
    # meta.csv is written with a UTF-8 byte-order mark, as in the release
    (data / "meta.csv").write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    return root


def reference_label_map(segmentations: Path, names: Sequence[str]) -> np.ndarray:
    """Combine ``segmentations/`` the way the official converter does, one structure at a time in
    float (``combined[img.get_fdata() > 0] = idx + 1``): a slow, independent reference for tests."""
    import nibabel as nib

    combined: np.ndarray | None = None
    for value, name in enumerate(names, start=1):
        path = Path(segmentations) / f"{name}.nii.gz"
        if not path.is_file():
            continue
        data = cast(nib.Nifti1Image, nib.load(str(path))).get_fdata()
        if combined is None:
            combined = np.zeros(data.shape, dtype=np.uint8)
        combined[data > 0] = value
    if combined is None:
        raise ValueError(f"no structure files in {segmentations}")
    return combined
