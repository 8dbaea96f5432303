"""Fabricate datasets beyond SAT-DS's collection, each in its released layout (see each
descriptor in ``registry/datasets/`` for the source of the layout). Each ``make_*`` returns the
folder to give as ``--root`` and writes tiny volumes with realistic affines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from harmonize.plugins.fabricators.abdomen import lps_affine

from harmonize.testing import ct_phantom, ellipsoid, write_nifti

#: AbdomenAtlas 1.1 Mini structure files (SAT-DS preprocess_AbdomenAtlas docstring)
ATLAS_FILES = (
    "aorta", "gall_bladder", "kidney_left", "kidney_right", "liver", "pancreas", "postcava",
    "spleen", "stomach", "adrenal_gland_left", "adrenal_gland_right", "bladder", "celiac_trunk",
    "colon", "duodenum", "esophagus", "femur_left", "femur_right", "hepatic_vessel",
    "intestine", "lung_left", "lung_right", "portal_vein_and_splenic_vein", "prostate", "rectum",
)
#: AbdomenAtlas cases: (partition folder or "" for a case extracted without it, case id)
ATLAS_CASES = (
    ("AbdomenAtlas1.1Mini_BDMAP_00000001_00000500", "BDMAP_00000001"),
    ("AbdomenAtlas1.1Mini_BDMAP_00000001_00000500", "BDMAP_00000002"),
    ("", "BDMAP_00000501"),
)


def make_abdomenatlas(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (12, 10, 8)
                      ) -> Path:
    """``AbdomenAtlas1.1Mini/`` with :data:`ATLAS_CASES`: ct.nii.gz, 25 uint8 structure files
    (hepatic_vessel inside the liver: an overlap), combined_labels.nii.gz beside (ignored); the
    second case has no prostate file (a female patient)."""
    data = Path(root) / "AbdomenAtlas1.1Mini"
    rng = np.random.default_rng(seed)
    for k, (partition, case) in enumerate(ATLAS_CASES):
        folder = data / partition / case
        affine = lps_affine((0.8, 0.8, 2.5), (200.0, 180.0, -300.0 - 5 * k))
        image = ct_phantom(shape, rng)
        combined = np.zeros(shape, np.uint8)
        for value, name in enumerate(ATLAS_FILES, start=1):
            if name == "prostate" and k == 1:
                continue
            if name == "liver":
                mask = ellipsoid(shape, (0.35, 0.5, 0.5), (0.25, 0.3, 0.35))
            elif name == "hepatic_vessel":
                mask = ellipsoid(shape, (0.35, 0.5, 0.5), (0.1, 0.1, 0.3))
            else:
                mask = ellipsoid(shape, rng.uniform(0.2, 0.8, 3), rng.uniform(0.1, 0.2, 3))
            combined[mask] = value
            image[mask] = np.int16(40 + value)
            write_nifti(folder / "segmentations" / f"{name}.nii.gz", mask.astype(np.uint8), affine)
        write_nifti(folder / "ct.nii.gz", image, affine)
        write_nifti(folder / "combined_labels.nii.gz", combined, affine)
    return data


#: FLARE23 fabricated cases -> the label values each one has (partial labels, as released:
#: 13 organs only; tumour only; five organs and tumour)
FLARE23_CASES = {
    "FLARE23_0001": tuple(range(1, 14)),
    "FLARE23_0002": (14,),
    "FLARE23_0003": (1, 2, 3, 4, 13, 14),
}


def make_flare23(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (14, 12, 8)) -> Path:
    """``MICCAI-FLARE23/`` with imagesTr2200/<case>_0000.nii.gz + labelsTr2200/<case>.nii.gz for
    :data:`FLARE23_CASES`, and an unlabeledTr1800 scan and a validation image (not cases)."""
    data = Path(root) / "MICCAI-FLARE23"
    rng = np.random.default_rng(seed)
    for k, (case, values) in enumerate(FLARE23_CASES.items()):
        affine = lps_affine((0.82, 0.82, 2.5), (210.0, 200.0, -400.0 + 7 * k))
        image = ct_phantom(shape, rng)
        label = np.zeros(shape, np.uint8)
        for value in values:
            mask = ellipsoid(shape, rng.uniform(0.25, 0.75, 3), rng.uniform(0.12, 0.2, 3))
            label[mask] = value
            image[mask] = np.int16(30 + 10 * value)
        write_nifti(data / "imagesTr2200" / f"{case}_0000.nii.gz", image, affine)
        write_nifti(data / "labelsTr2200" / f"{case}.nii.gz", label, affine)
    affine = lps_affine((0.82, 0.82, 2.5))
    write_nifti(data / "unlabeledTr1800" / "FLARE23_2201.nii.gz", ct_phantom(shape, rng), affine)
    write_nifti(data / "validation" / "FLARE23Ts_0001_0000.nii.gz", ct_phantom(shape, rng), affine)
    return data


def make_totalsegmentator_mri(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (10, 12, 8)
                              ) -> Path:
    """``TotalsegmentatorMRI_dataset_v100/`` with s0001, s0002: mri.nii.gz (uint16 MR) and the 50
    ``total_mr`` structure files (vertebrae and intervertebral_discs overlapping; s0002 lacks
    every fifth file) plus a file of a structure this release does not have (reported)."""
    from importlib import resources

    from harmonize.plugin import load_descriptor

    entry = resources.files("harmonize.registry").joinpath("datasets", "totalsegmentator-mri.yaml")
    with resources.as_file(entry) as path:
        desc = load_descriptor(path)
    names = [n for v, n in sorted(desc.values.items()) if v]
    data = Path(root) / "TotalsegmentatorMRI_dataset_v100"
    rng = np.random.default_rng(seed)
    for k, subject in enumerate(("s0001", "s0002")):
        folder = data / subject
        affine = lps_affine((1.2, 1.2, 4.0), (150.0, 160.0, -200.0 + 9 * k))
        image = rng.integers(0, 300, size=shape).astype(np.uint16)
        spine = rng.uniform(0.4, 0.6, 3)
        for n, name in enumerate(names):
            if k == 1 and n % 5 == 0:
                continue
            if name in ("vertebrae", "intervertebral_discs"):
                mask = ellipsoid(shape, spine + (0.1 if name == "vertebrae" else -0.1),
                                 (0.25, 0.25, 0.3))
            else:
                mask = ellipsoid(shape, rng.uniform(0.2, 0.8, 3), rng.uniform(0.12, 0.2, 3))
            image[mask] = 400 + 10 * n
            write_nifti(folder / "segmentations" / f"{name}.nii.gz", mask.astype(np.uint8), affine)
        write_nifti(folder / "segmentations" / "thigh_compartment_left.nii.gz",
                    np.zeros(shape, np.uint8), affine)
        write_nifti(folder / "mri.nii.gz", image, affine)
    return data


#: SPIDER series fabricated (file stems), and per patient the label values its masks hold
SPIDER_SERIES = ("1_t1", "1_t2", "2_t1", "2_t2", "2_t2_SPACE")
SPIDER_VALUES = (1, 2, 3, 4, 5, 6, 107, 100, 201, 202, 203, 204, 205, 206)


def make_spider(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (16, 20, 6)) -> Path:
    """``SPIDER/`` with images/<series>.mha and masks/<series>.mha (uint8/uint16 MetaImage,
    sagittal: the third array axis is left-right, 3.3 mm) for :data:`SPIDER_SERIES`: vertebrae
    1-6 from the bottom, a partially visible 107 at the top, discs 201-206 between them, the
    spinal canal 100 behind; overview.csv and radiological_gradings.csv beside (not cases)."""
    import SimpleITK as sitk

    data = Path(root) / "SPIDER"
    rng = np.random.default_rng(seed)
    (data / "images").mkdir(parents=True, exist_ok=True)
    (data / "masks").mkdir(parents=True, exist_ok=True)
    for series in SPIDER_SERIES:
        ap, si, lr = shape  # array (i, j, k): anterior-posterior, inferior-superior, left-right
        mask = np.zeros(shape, np.uint16 if series.endswith("SPACE") else np.uint8)
        for level in range(7):  # six vertebrae + a partial one, a disc below each of the six
            lo = 1 + 3 * level
            mask[3:10, lo:lo + 2, 1:5] = 107 if level == 6 else level + 1
            if level < 6:
                mask[3:10, lo - 1, 1:5] = 201 + level
        mask[11:13, :, 2:4] = 100
        image = (rng.integers(50, 150, size=shape) + mask.astype(np.int64) % 7 * 40).astype(
            np.uint16)
        spacing = (0.47, 0.47, 0.9) if series.endswith("SPACE") else (0.625, 0.625, 3.3)
        for folder, array in (("images", image), ("masks", mask)):
            img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
            img.SetSpacing(spacing)
            img.SetDirection((0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0))
            img.SetOrigin((-10.0, 40.0, 120.0))
            sitk.WriteImage(img, str(data / folder / f"{series}.mha"), True)
    (data / "overview.csv").write_text("new_file_name,subset,sex,age\n" + "".join(
        f"{s},training,F,50\n" for s in SPIDER_SERIES))
    (data / "radiological_gradings.csv").write_text("Patient,IVD label,Pfirrman grade\n1,1,3\n")
    return data


#: ULS23 novel-data VOIs fabricated: (set folder, file stem)
ULS23_VOIS = (
    ("ULS23_DeepLesion3D", "000010_02_02_100_lesion_01"),
    ("ULS23_DeepLesion3D", "000010_03_01_058_lesion_01"),
    ("ULS23_Radboudumc_Bone", "bone_00002_lesion_01"),
    ("ULS23_Radboudumc_Bone", "bone_00002_lesion_02"),
    ("ULS23_Radboudumc_Pancreas", "pancreas_00007_lesion_01"),
)


def make_uls23(root: Path, annotations: Path, *, seed: int = 0,
               shape: tuple[int, int, int] = (16, 16, 8)) -> Path:
    """Zenodo's ``ULS23/novel_data/<set>/images/<stem>.nii.gz`` under ``root`` and the
    repository's ``ULS23/novel_data/<set>/labels/<stem>.nii.gz`` (+ the ``.nii.gz.zip`` copy the
    repository also holds) under ``annotations``, for :data:`ULS23_VOIS`; returns ``root``."""
    import zipfile

    rng = np.random.default_rng(seed)
    for k, (folder, stem) in enumerate(ULS23_VOIS):
        affine = lps_affine((0.7, 0.7, 1.25), (120.0, 100.0, -200.0 - 11 * k))
        image = ct_phantom(shape, rng)
        mask = ellipsoid(shape, (0.5, 0.5, 0.5), rng.uniform(0.15, 0.3, 3)).astype(np.uint8)
        image[mask > 0] = 70
        write_nifti(Path(root) / "ULS23" / "novel_data" / folder / "images" / f"{stem}.nii.gz",
                    image, affine)
        label = write_nifti(Path(annotations) / "ULS23" / "novel_data" / folder / "labels" /
                            f"{stem}.nii.gz", mask, affine)
        with zipfile.ZipFile(f"{label}.zip", "w") as archive:
            archive.write(label, label.name)
    return Path(root)


#: LiQA case folders fabricated: (vendor folder, case folder, has a liver mask)
LIQA_CASES = (("Vendor_A", "0001-A-S1", True), ("Vendor_B1", "1194-B1-S4", True),
              ("Vendor_B2", "1200-B2-S0", False))
LIQA_SEQUENCES = ("T2", "T1", "DWI_800", "GED1", "GED2", "GED3", "GED4")


def make_liqa(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (14, 12, 6)) -> Path:
    """``LiQA/train/<vendor>/<case>/`` with the seven sequences (only GED4 on the mask's grid;
    T2 and DWI on other grids) and mask_GED4.nii.gz (uint8 0/1) where :data:`LIQA_CASES` says;
    returns ``LiQA``."""
    data = Path(root) / "LiQA"
    rng = np.random.default_rng(seed)
    for vendor, case, labelled in LIQA_CASES:
        folder = data / "train" / vendor / case
        affine = lps_affine((1.4, 1.4, 3.0), (180.0, 170.0, -90.0))
        liver = ellipsoid(shape, (0.35, 0.5, 0.5), (0.3, 0.35, 0.4))
        for sequence in LIQA_SEQUENCES:
            grid = shape if sequence.startswith(("GED", "T1")) else (10, 9, 5)
            image = rng.integers(20, 200, size=grid).astype(np.int16)
            if grid == shape:
                image[liver] += 150
            write_nifti(folder / f"{sequence}.nii.gz", image, affine if grid == shape
                        else lps_affine((1.9, 1.9, 5.0), (180.0, 170.0, -90.0)))
        if labelled:
            write_nifti(folder / "mask_GED4.nii.gz", liver.astype(np.uint8), affine)
    return data


#: HNTS-MRG patients fabricated; 21 has an empty mid-RT mask (complete response, as released)
HNTS_PATIENTS = ("2", "21")


def make_hnts_mrg(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (14, 14, 8)) -> Path:
    """``HNTSMRG24_train/<patient>/{preRT,midRT}/`` with <patient>_<tp>_T2.nii.gz (float32) and
    _mask.nii.gz (uint8 0/1/2), plus the registered pre-RT image and mask in midRT/ (not cases);
    returns ``HNTSMRG24_train``."""
    data = Path(root) / "HNTSMRG24_train"
    rng = np.random.default_rng(seed)
    for patient in HNTS_PATIENTS:
        for k, timepoint in enumerate(("preRT", "midRT")):
            folder = data / patient / timepoint
            affine = lps_affine((0.5, 0.5, 2.0), (60.0, 80.0, -120.0 + 3 * k))
            image = rng.normal(300, 40, size=shape).astype(np.float32)
            mask = np.zeros(shape, np.uint8)
            if not (patient == "21" and timepoint == "midRT"):
                mask[ellipsoid(shape, (0.4, 0.5, 0.5), (0.2 - 0.08 * k, 0.2, 0.3))] = 1
                mask[ellipsoid(shape, (0.75, 0.3, 0.5), (0.1, 0.1, 0.2))] = 2
            image[mask > 0] += 200
            write_nifti(folder / f"{patient}_{timepoint}_T2.nii.gz", image, affine)
            write_nifti(folder / f"{patient}_{timepoint}_mask.nii.gz", mask, affine)
            if timepoint == "midRT":
                write_nifti(folder / f"{patient}_preRT_T2_registered.nii.gz", image, affine)
                write_nifti(folder / f"{patient}_preRT_mask_registered.nii.gz", mask, affine)
    return data
