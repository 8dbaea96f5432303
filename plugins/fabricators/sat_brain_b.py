"""Fabricate ATLAS R2.0, ISLES 2022, WMH, FeTA 2022, ATLAS 2023 (liver), BrainPTM and the
Hammers atlas (SAT-DS Brain_Atlas) in their released layouts.

Folders, file names and values as SAT-DS ``processor.py`` (``preprocess_<Name>``, its docstring
trees) and ``data/jsonl/<Name>.jsonl`` walk them (registry/datasets/{atlasr2,isles2022,wmh,
feta2022,atlas2023,brainptm,brain-atlas}.yaml). Each ``make_*`` returns the folder to give as
``--root``; each case's arrays are small (X, Y, Z) volumes with the release's voxel spacing.
The release quirks are written too: side files that are not data, a FLAIR on another grid
(ISLES), a folder name with a space (WMH), value 2 "other pathology" (WMH), three
reconstruction names (FeTA), overlapping and missing tract files (BrainPTM).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from harmonize.plugins.fabricators.abdomen import lps_affine

from harmonize.testing import ellipsoid, write_nifti


def _ras(spacing: tuple[float, float, float], origin: tuple[float, float, float]) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


def _head(shape: tuple[int, int, int], rng: np.random.Generator, lesion: np.ndarray,
          brain: float = 300.0, bright: float = 700.0) -> np.ndarray:
    """An int16 head-like MR volume: a brain ellipsoid, ``lesion`` voxels ``bright``."""
    image = np.where(ellipsoid(shape, (0.5, 0.5, 0.5), (0.42, 0.45, 0.42)), brain, 20.0)
    image[lesion] = bright
    image += rng.normal(0.0, 10.0, size=shape)
    return np.clip(np.rint(image), 0, None).astype(np.int16)


def _lesion(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    centre = (0.35, 0.5, 0.5) + rng.uniform(-0.05, 0.05, 3)
    return ellipsoid(shape, centre, (0.12, 0.1, 0.15))


#: ATLAS R2.0: site folder -> subjects (SAT-DS data/jsonl/ATLASR2.jsonl: R001 ... R052)
ATLASR2_SUBJECTS = {"R001": ("sub-r001s001", "sub-r001s002"), "R052": ("sub-r052s032",)}
ATLASR2_STEM = "{0}_ses-1_space-MNI152NLin2009aSym_"


def make_atlasr2(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (20, 24, 18)) -> Path:
    """``ATLAS_2/Training/<site>/<subject>/ses-1/anat/`` T1w + lesion mask (1 mm MNI152), and
    each site's ``dataset_description.json``; returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    affine = _ras((1.0, 1.0, 1.0), (-98.0, -134.0, -72.0))
    for site, subjects in ATLASR2_SUBJECTS.items():
        folder = root / "ATLAS_2" / "Training" / site
        for subject in subjects:
            lesion = _lesion(shape, rng)
            anat = folder / subject / "ses-1" / "anat"
            stem = ATLASR2_STEM.format(subject)
            write_nifti(anat / f"{stem}T1w.nii.gz", _head(shape, rng, lesion, bright=120.0), affine)
            write_nifti(anat / f"{stem}label-L_desc-T1lesion_mask.nii.gz",
                        lesion.astype(np.uint8), affine)
        (folder / "dataset_description.json").write_text(
            json.dumps({"Name": f"ATLAS R2.0 {site}", "BIDSVersion": "1.6.0"}))
    return root


ISLES_CASES = ("sub-strokecase0001", "sub-strokecase0106")


def make_isles2022(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (16, 18, 10)) -> Path:
    """``rawdata/<case>/ses-0001/<case>_ses-0001_{dwi,adc,flair}.nii.gz`` and
    ``derivatives/<case>/ses-0001/<case>_ses-0001_msk.nii.gz``; the FLAIR is on its own, finer
    grid (not the masks'). Returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    affine = lps_affine((2.0, 2.0, 4.0), (100.0, 110.0, -40.0))
    flair_affine = lps_affine((1.0, 1.0, 2.0), (100.0, 110.0, -40.0))
    for case in ISLES_CASES:
        lesion = _lesion(shape, rng)
        stem = f"{case}_ses-0001_"
        raw = root / "rawdata" / case / "ses-0001"
        write_nifti(raw / f"{stem}dwi.nii.gz", _head(shape, rng, lesion, 200.0, 600.0), affine)
        write_nifti(raw / f"{stem}adc.nii.gz", _head(shape, rng, lesion, 800.0, 350.0), affine)
        fine = tuple(2 * n for n in shape)
        write_nifti(raw / f"{stem}flair.nii.gz",
                    _head(fine, rng, _lesion(fine, rng)), flair_affine)  # type: ignore[arg-type]
        write_nifti(root / "derivatives" / case / "ses-0001" / f"{stem}msk.nii.gz",
                    lesion.astype(np.uint8), affine)
    return root


#: WMH: (split folder, site path) -> case numbers (SAT-DS data/jsonl: unique over sites)
WMH_CASES = {("training", "Utrecht"): ("0",), ("training", "Singapore"): ("50",),
             ("training", "Amsterdam/GE3T"): ("100",),
             ("test", "Amsterdam/Philips_VU .PETMR_01."): ("165",)}


def make_wmh(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (20, 20, 8)) -> Path:
    """``dataverse_files/{training,test}/<site>[/<scanner>]/<n>/orig/FLAIR.nii.gz`` +
    ``<n>/wmh.nii.gz`` (1 WMH, 2 other pathology); returns ``dataverse_files``."""
    data = Path(root) / "dataverse_files"
    rng = np.random.default_rng(seed)
    affine = lps_affine((0.96, 0.96, 3.0), (115.0, 120.0, -20.0))
    for (split, site), cases in WMH_CASES.items():
        for case in cases:
            label = np.zeros(shape, np.uint8)
            label[ellipsoid(shape, (0.4, 0.5, 0.5) + rng.uniform(-0.05, 0.05, 3),
                            (0.08, 0.2, 0.3))] = 1
            label[ellipsoid(shape, (0.7, 0.5, 0.5), (0.08, 0.08, 0.3))] = 2
            folder = data / split / site / case
            write_nifti(folder / "orig" / "FLAIR.nii.gz", _head(shape, rng, label == 1), affine)
            write_nifti(folder / "wmh.nii.gz", label, affine)
    return data


#: FeTA: folder -> (subject, reconstruction) (SAT-DS jsonl: rec-mial, rec-nmic; FeTA 2.1 docs
#: name rec-irtk for Zurich's second half)
FETA_CASES = {"feta_2.2": (("sub-001", "mial"), ("sub-041", "irtk")),
              "feta22_Vienna": (("sub-101", "nmic"),)}


def make_feta2022(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (18, 18, 16)) -> Path:
    """``feta_2.2/sub-001/anat/sub-001_rec-mial_{T2w,dseg}.nii.gz`` (0.5 mm, values 1...7) and
    ``feta22_Vienna/``, each with a ``participants.tsv``; returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    affine = _ras((0.5, 0.5, 0.5), (-4.5, -4.5, -4.0))
    shells = ((1, 0.45), (2, 0.4), (3, 0.34), (4, 0.12))  # eCSF, GM, WM, ventricles
    for folder, cases in FETA_CASES.items():
        rows = ["participant_id\tGestational age\tPathology"]
        for subject, rec in cases:
            label = np.zeros(shape, np.uint8)
            for value, radius in shells:
                label[ellipsoid(shape, (0.5, 0.5, 0.55), (radius, radius * 1.1, radius))] = value
            label[ellipsoid(shape, (0.5, 0.5, 0.2), (0.15, 0.12, 0.08))] = 5  # cerebellum
            label[ellipsoid(shape, (0.38, 0.5, 0.55), (0.06, 0.08, 0.08))] = 6  # deep GM
            label[ellipsoid(shape, (0.5, 0.6, 0.3), (0.06, 0.06, 0.12))] = 7  # brainstem
            grey = np.array([0, 900, 500, 300, 1000, 450, 380, 420], np.float32)[label]
            image = np.rint(grey + rng.normal(0.0, 15.0, shape)).astype(np.int16)
            anat = root / folder / subject / "anat"
            write_nifti(anat / f"{subject}_rec-{rec}_T2w.nii.gz", image, affine)
            write_nifti(anat / f"{subject}_rec-{rec}_dseg.nii.gz", label, affine)
            rows.append(f"{subject}\t{26.0 + rng.integers(0, 8)}\tNeurotypical")
        (root / folder / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


def make_atlas2023(root: Path, *, n_cases: int = 2, seed: int = 0,
                   shape: tuple[int, int, int] = (20, 18, 10)) -> Path:
    """``atlas-train-dataset-1.0.1/train/imagesTr/im<n>.nii.gz`` + ``labelsTr/lb<n>.nii.gz``
    (1 liver, 2 tumour), n from 0; returns ``root``."""
    root = Path(root)
    data = root / "atlas-train-dataset-1.0.1" / "train"
    rng = np.random.default_rng(seed)
    affine = lps_affine((1.4, 1.4, 3.0), (200.0, 180.0, -100.0))
    for n in range(n_cases):
        label = np.zeros(shape, np.uint8)
        label[ellipsoid(shape, (0.35, 0.45, 0.5), (0.25, 0.25, 0.35))] = 1
        label[ellipsoid(shape, (0.3 + rng.uniform(0, 0.05), 0.45, 0.5), (0.07, 0.07, 0.15))] = 2
        image = np.array([60, 400, 250], np.float32)[label] + rng.normal(0.0, 10.0, shape)
        write_nifti(data / "imagesTr" / f"im{n}.nii.gz", np.rint(image).astype(np.int16), affine)
        write_nifti(data / "labelsTr" / f"lb{n}.nii.gz", label, affine)
    return root


#: BrainPTM tract files and where each sits (tracts overlap: OR and CST share voxels)
TRACTS = {"OR_left": ((0.65, 0.3, 0.5), (0.08, 0.25, 0.08)),
          "OR_right": ((0.35, 0.3, 0.5), (0.08, 0.25, 0.08)),
          "CST_left": ((0.62, 0.5, 0.5), (0.06, 0.06, 0.4)),
          "CST_right": ((0.38, 0.5, 0.5), (0.06, 0.06, 0.4))}
#: case -> tract files it lacks (the BrainPTM docs: not every case has all tracts)
BRAINPTM_TRAIN = {"case_1": (), "case_2": ("CST_right",)}
BRAINPTM_TEST = ("case_61",)


def make_brainptm(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (16, 18, 16)
                  ) -> Path:
    """``sheba75_data/sheba75_data_train/<case>/{T1,brain_mask,Diffusion}.nii.gz``,
    ``sheba75_tracts_train/<case>/<tract>.nii.gz`` (binary, overlapping) and
    ``sheba75_data_test/<case>/`` without tracts; returns ``sheba75_data``."""
    data = Path(root) / "sheba75_data"
    rng = np.random.default_rng(seed)
    affine = _ras((1.75, 1.75, 1.75), (-112.0, -126.0, -112.0))
    for split, cases in (("train", tuple(BRAINPTM_TRAIN)), ("test", BRAINPTM_TEST)):
        for case in cases:
            brain = ellipsoid(shape, (0.5, 0.5, 0.5), (0.42, 0.45, 0.42))
            folder = data / f"sheba75_data_{split}" / case
            write_nifti(folder / "T1.nii.gz", _head(shape, rng, np.zeros(shape, bool)), affine)
            write_nifti(folder / "brain_mask.nii.gz", brain[::-1].astype(np.uint8), affine)
            write_nifti(folder / "Diffusion.nii.gz",
                        rng.integers(0, 500, (*shape, 3)).astype(np.int16), affine)
            if split == "test":
                continue
            for tract, (centre, radii) in TRACTS.items():
                if tract in BRAINPTM_TRAIN[case]:
                    continue
                jitter = rng.uniform(-0.02, 0.02, 3)
                mask = ellipsoid(shape, np.add(centre, jitter), radii)
                write_nifti(data / "sheba75_tracts_train" / case / f"{tract}.nii.gz",
                            mask.astype(np.uint8), affine)
    return data


def make_brain_atlas(root: Path, *, n_cases: int = 2, seed: int = 0,
                     shape: tuple[int, int, int] = (12, 10, 8)) -> Path:
    """``Hammers_data/a01.nii.gz`` + ``a01-seg.nii.gz`` (all 95 regions present, as blocks in a
    shuffled order); returns ``Hammers_data``."""
    data = Path(root) / "Hammers_data"
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    affine = _ras((0.9375, 0.9375, 1.5), (-120.0, -120.0, -90.0))
    for n in range(1, n_cases + 1):
        flat = np.zeros(int(np.prod(shape)), np.uint8)
        order = rng.permutation(np.arange(1, 96)).astype(np.uint8)
        flat[100:100 + 8 * 95] = np.repeat(order, 8)
        label = flat.reshape(shape)
        image = np.rint(label * 5.0 + rng.normal(100.0, 5.0, shape)).astype(np.int16)
        write_nifti(data / f"a{n:02d}.nii.gz", image, affine)
        write_nifti(data / f"a{n:02d}-seg.nii.gz", label, affine)
    return data
