"""Fabricate the TotalSegmentator v1 release (``registry/datasets/totalsegmentator-v1.yaml``).

Layout as SAT-DS's ``processor.py`` (``preprocess_TotalSegmentator`` docstring) walks it::

    Totalsegmentator_dataset/
      meta.csv                                ';'-separated: image_id;age;gender;institute;study_type;split
      s0000/ct.nii.gz
      s0000/segmentations/adrenal_gland_left.nii.gz ... vertebrae_T9.nii.gz   (104 files)

Quirks reproduced: one uint8 binary file per ``class_map["total_v1"]`` structure, zero-filled
files for structures outside the scan, structures that overlap (the pulmonary artery leaving the
right ventricle, the face over the brain), a subject with files left out of ``segmentations/``,
and the derived ``organs_label.nii.gz`` ... files SAT-DS's processor writes beside ``ct.nii.gz``
(they are not part of the release and must be ignored). RAS int16 CT at 1.5 mm as released.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from harmonize.testing import ct_phantom, ellipsoid, write_nifti

TS_V1_FOLDER = "Totalsegmentator_dataset"
TS_V1_META = ("image_id", "age", "gender", "institute", "study_type", "split")
#: (inner, outer) pairs drawn overlapping, so a voxel belongs to both structures
TS_V1_OVERLAPS = (("pulmonary_artery", "heart_ventricle_right"), ("face", "brain"))
#: files SAT-DS's processor adds to each subject folder (not in the release)
SAT_DERIVED = ("organs_label", "vertebrae_label", "cardiac_label", "muscles_label", "ribs_label")


def ts_v1_names() -> list[str]:
    """The 104 v1 structure file stems in value order (``class_map["total_v1"]``)."""
    from importlib import resources

    from harmonize.plugin import load_descriptor

    entry = resources.files("harmonize.registry").joinpath("datasets", "totalsegmentator-v1.yaml")
    with resources.as_file(entry) as path:
        desc = load_descriptor(path)
    return [name for value, name in sorted(desc.values.items()) if value]


def make_totalsegmentator_v1(
    root: Path, *, n_cases: int = 2, seed: int = 0, shape: tuple[int, int, int] = (12, 10, 8),
    missing: Mapping[int, Sequence[str]] | None = None, splits: Sequence[str] = ("train", "test", "val"),
) -> Path:
    """Write ``n_cases`` subjects s0000... under ``root/Totalsegmentator_dataset``; return that
    folder (the ``--root``). ``missing`` maps a subject number to stems left out of its
    ``segmentations/`` (default: subject 1 lacks every tenth structure)."""
    data = Path(root) / TS_V1_FOLDER
    rng = np.random.default_rng(seed)
    names = ts_v1_names()
    missing = {1: names[::10]} if missing is None else missing
    rows = [";".join(TS_V1_META)]
    for number in range(n_cases):
        subject = f"s{number:04d}"
        folder = data / subject
        affine = np.diag([1.5, 1.5, 1.5, 1.0])
        affine[:3, 3] = (-rng.uniform(150, 250), -rng.uniform(150, 250), -rng.uniform(300, 900))
        image = ct_phantom(shape, rng, axial_axes=(0, 1))
        masks = {}
        for name in names:
            empty = rng.random() < 0.2
            masks[name] = (np.zeros(shape, bool) if empty else
                           ellipsoid(shape, rng.uniform(0.2, 0.8, 3), rng.uniform(0.12, 0.25, 3)))
        for inner, outer in TS_V1_OVERLAPS:
            centre = rng.uniform(0.4, 0.6, 3)
            masks[outer] = ellipsoid(shape, centre, (0.3, 0.3, 0.3))
            masks[inner] = ellipsoid(shape, centre + 0.1, (0.2, 0.2, 0.25))
        for value, name in enumerate(names, start=1):
            image[masks[name]] = np.int16(-850 if "lung" in name else 30 + (value % 9) * 80)
            if name not in missing.get(number, ()):
                write_nifti(folder / "segmentations" / f"{name}.nii.gz",
                            masks[name].astype(np.uint8), affine)
        write_nifti(folder / "ct.nii.gz", image, affine)
        for derived in SAT_DERIVED:  # SAT-DS's stacked masks, written beside the CT
            write_nifti(folder / f"{derived}.nii.gz", np.zeros((2, *shape), np.uint8), affine)
        rows.append(";".join([subject, str(int(rng.integers(20, 90))), str(rng.choice(["m", "f"])),
                              str(rng.choice(["A", "B", "H", "Z"])), "ct abdomen-pelvis",
                              splits[number % len(splits)]]))
    (data / "meta.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data


#: autoPET study folders (TCIA names: <MM-DD-YYYY>-NA-<study description>-<5 digits>; two spaces
#: inside, as released) per patient; the second patient's study is a negative control
AUTOPET_STUDIES = {
    "PETCT_0011f3deaf": ("03-23-2003-NA-PET-CT Ganzkoerper  primaer mit KM-10445",
                         "08-13-2005-NA-PET-CT Ganzkoerper  primaer mit KM-56839"),
    "PETCT_01140d52d8": ("11-05-2001-NA-PET-CT Teilkoerper  primaer mit KM-18049",),
}
#: SUV of the fabricated bladder: above the convention's 50 SUV clip
BLADDER_SUV = 62.0


def make_autopet(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (12, 10, 14)) -> Path:
    """The NIfTI tree the autoPET converter (lab-midas/TCIA_processing) writes, for
    :data:`AUTOPET_STUDIES`; returns ``root/FDG-PET-CT-Lesions`` (the ``--root``).

    Per study: CTres (CT resampled to the PET grid, float64 HU, -1024 outside), SUV (float32,
    slightly negative noise, a bladder above 50 SUV, lesions 6-20 SUV), SEG (uint8 0/1, empty
    for the negative control) on one PET grid (2.0364 x 2.0364 x 3 mm, x flipped), and the
    files the layout must ignore: CT.nii.gz on its own finer grid and PET.nii.gz in Bq/ml."""
    data = Path(root) / "FDG-PET-CT-Lesions"
    rng = np.random.default_rng(seed)
    for p, (patient, studies) in enumerate(AUTOPET_STUDIES.items()):
        for s, study in enumerate(studies):
            folder = data / patient / study
            affine = np.diag([-2.0364, 2.0364, 3.0, 1.0])
            affine[:3, 3] = (350.0, -340.0, -1100.0 + 10 * s)
            ct = ct_phantom(shape, rng, axial_axes=(0, 1)).astype(np.float64)
            suv = rng.normal(0.8, 0.3, size=shape).astype(np.float32)  # some voxels < 0
            suv[ellipsoid(shape, (0.5, 0.5, 0.15), (0.2, 0.2, 0.12))] = BLADDER_SUV
            seg = np.zeros(shape, np.uint8)
            if p == 0:  # lesions; the second patient is a negative control
                for centre in ((0.3, 0.4, 0.6), (0.7, 0.6, 0.8)):
                    lesion = ellipsoid(shape, centre, (0.15, 0.18, 0.12))
                    seg[lesion] = 1
                    suv[lesion] = rng.uniform(6.0, 20.0)
            write_nifti(folder / "CTres.nii.gz", ct, affine)
            write_nifti(folder / "SUV.nii.gz", suv, affine)
            write_nifti(folder / "SEG.nii.gz", seg, affine)
            fine = np.diag([-0.98, 0.98, 3.0, 1.0])
            fine[:3, 3] = affine[:3, 3]
            write_nifti(folder / "CT.nii.gz", np.zeros((24, 20, 14), np.int16), fine)
            write_nifti(folder / "PET.nii.gz", suv * np.float32(5200.0), affine)
    return data


#: HECKTOR 2022 training cases fabricated (centre-number ids); MDA-003 has no involved node
HECKTOR_CASES = ("CHUM-001", "CHUP-012", "MDA-003")
#: CT grid (1 x 1 x 1.5 mm, x and y flipped) and the coarser PET grid (4 x 4 x 3 mm) that covers it
HECKTOR_CT = (np.diag([-1.0, -1.0, 1.5, 1.0]) + np.array([[0, 0, 0, 100.0], [0, 0, 0, 90.0],
                                                         [0, 0, 0, -50.0], [0, 0, 0, 0]]))
HECKTOR_PT = (np.diag([-4.0, -4.0, 3.0, 1.0]) + np.array([[0, 0, 0, 106.0], [0, 0, 0, 96.0],
                                                         [0, 0, 0, -56.0], [0, 0, 0, 0]]))


def make_hecktor2022(root: Path, *, seed: int = 0) -> Path:
    """``hecktor2022_training/hecktor2022/`` with imagesTr/<case>__CT.nii.gz (int16 HU on the
    CT grid), <case>__PT.nii.gz (float32 SUV on its own coarser grid), labelsTr/<case>.nii.gz
    (uint8, 1 GTVp, 2 GTVn, on the CT grid) for :data:`HECKTOR_CASES`, and the clinical-info CSV
    beside the folders; returns the ``--root``."""
    data = Path(root) / "hecktor2022_training" / "hecktor2022"
    rng = np.random.default_rng(seed)
    ct_shape, pt_shape = (16, 14, 10), (8, 8, 8)
    for case in HECKTOR_CASES:
        ct = ct_phantom(ct_shape, rng, axial_axes=(0, 1))
        label = np.zeros(ct_shape, np.uint8)
        label[ellipsoid(ct_shape, (0.45, 0.5, 0.5), (0.2, 0.2, 0.25))] = 1
        if not case.startswith("MDA"):
            label[ellipsoid(ct_shape, (0.8, 0.3, 0.6), (0.12, 0.12, 0.2))] = 2
        ct[label > 0] = 60
        pet = (rng.uniform(0.5, 2.0, size=pt_shape) + 8.0 * ellipsoid(
            pt_shape, (0.45, 0.45, 0.5), (0.2, 0.2, 0.2))).astype(np.float32)
        write_nifti(data / "imagesTr" / f"{case}__CT.nii.gz", ct, HECKTOR_CT)
        write_nifti(data / "imagesTr" / f"{case}__PT.nii.gz", pet, HECKTOR_PT)
        write_nifti(data / "labelsTr" / f"{case}.nii.gz", label, HECKTOR_CT)
    (data / "hecktor2022_clinical_info_training.csv").write_text(
        "PatientID,Task 1,Task 2,CenterID\n" + "".join(f"{c},1,1,{c.split('-')[0]}\n"
                                                       for c in HECKTOR_CASES))
    return data
