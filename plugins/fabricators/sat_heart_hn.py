"""Fabricate head-and-neck datasets of SAT-DS's collection in their released layouts.

HaN-Seg (one ``.seg.nrrd`` per organ at risk) and PDDCA (``structures/<organ>.nrrd``):
YAML-only datasets (registry/datasets/{han-seg,pddca}.yaml); folders, file names and structure
names as SAT-DS's ``processor.py`` and ``data/jsonl`` read them (cited in each descriptor).
Volumes are NRRD written with SimpleITK in LPS with an identity direction, so the array of a
file is ``(Z, Y, X)`` and voxel ``(x, y, z)`` of :func:`organ_masks` is the same point in every
file of a case. Each maker returns the folder to pass as root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from harmonize.testing import ct_phantom, ellipsoid

Shape = tuple[int, int, int]

#: HaN-Seg's 30 organ-at-risk file names (processor.py preprocess_HAN_Seg ``labels``)
HANSEG_OARS = (
    "Arytenoid", "Brainstem", "BuccalMucosa", "A_Carotid_L", "A_Carotid_R", "Esophagus_S",
    "Cochlea_L", "Cochlea_R", "Cricopharyngeus", "Eye_AL", "Eye_AR", "Eye_PL", "Eye_PR",
    "Glnd_Lacrimal_L", "Glnd_Lacrimal_R", "Glottis", "Larynx_SG", "Lips", "Bone_Mandible",
    "OpticChiasm", "OpticNrv_L", "OpticNrv_R", "Cavity_Oral", "Parotid_L", "Parotid_R",
    "Pituitary", "SpinalCord", "Glnd_Submand_L", "Glnd_Submand_R", "Glnd_Thyroid",
)
#: PDDCA's nine structure files (processor.py preprocess_PDDCA)
PDDCA_OARS = ("BrainStem", "Chiasm", "Mandible", "OpticNerve_L", "OpticNerve_R", "Parotid_L",
              "Parotid_R", "Submandibular_L", "Submandibular_R")
#: HaN-Seg organs drawn wider so that they overlap their neighbour on the grid (independent
#: contours of adjacent organs overlap in real releases too)
HANSEG_WIDE = frozenset({"Glottis", "Larynx_SG", "Parotid_L", "Parotid_R"})


def organ_masks(names: Sequence[str], shape: Shape, rng: np.random.Generator,
                wide: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """One (X, Y, Z) boolean ellipsoid per name on a 6-wide grid; the ``wide`` ones overlap
    their neighbours in the row."""
    masks = {}
    columns = 6
    rows = (len(names) + columns - 1) // columns
    for k, name in enumerate(names):
        centre = ((k % columns + 0.5) / columns, (k // columns + 0.5) / rows, 0.5)
        centre = tuple(c + j for c, j in zip(centre, rng.uniform(-0.01, 0.01, size=3)))
        rx = 0.14 if name in wide else 0.06
        masks[name] = ellipsoid(shape, centre, (rx, 0.4 / rows, 0.3))
    return masks


def write_nrrd(path: Path, xyz: np.ndarray, spacing: Sequence[float], origin: Sequence[float],
               meta: Mapping[str, str] | None = None) -> None:
    """An (X, Y, Z) array as NRRD (LPS, identity direction) with optional header fields."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(xyz.transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    for key, value in (meta or {}).items():
        image.SetMetaData(key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), True)


def _ct(shape: Shape, masks: Mapping[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    image = ct_phantom(shape, rng).astype(np.int16)
    for k, mask in enumerate(masks.values()):
        image[mask] = 20 + 5 * k
    return image


def make_han_seg(root: Path, *, cases: Sequence[int] = (1, 2), seed: int = 0,
                 shape: Shape = (24, 20, 8), missing: Mapping[int, Sequence[str]] | None = None
                 ) -> Path:
    """HaN-Seg/set_1/case_<nn>/case_<nn>_IMG_CT.nrrd, case_<nn>_IMG_MR_T1.nrrd (another grid,
    not registered) and case_<nn>_OAR_<name>.seg.nrrd per organ (uint8 0/1, Slicer segment
    fields); ``missing`` maps a case number to organs whose file is left out (default: case 2
    has no Arytenoid and no Lips file)."""
    data = Path(root) / "HaN-Seg"
    rng = np.random.default_rng(seed)
    missing = {2: ("Arytenoid", "Lips")} if missing is None else missing
    for number in cases:
        case = f"case_{number:02d}"
        folder = data / "set_1" / case
        masks = organ_masks(HANSEG_OARS, shape, rng, HANSEG_WIDE)
        spacing, origin = (0.98, 0.98, 2.0), (-250.0, -230.0, -400.0 + number)
        write_nrrd(folder / f"{case}_IMG_CT.nrrd", _ct(shape, masks, rng), spacing, origin)
        mr = rng.integers(0, 400, size=(shape[0] // 2, shape[1] // 2, shape[2] + 4))
        write_nrrd(folder / f"{case}_IMG_MR_T1.nrrd", mr.astype(np.int16), (0.6, 0.6, 1.2),
                   (-120.0, -110.0, -90.0))
        for name, mask in masks.items():
            if name in missing.get(number, ()):
                continue
            meta = {"Segment0_Name": name, "Segment0_LabelValue": "1", "Segment0_Layer": "0"}
            write_nrrd(folder / f"{case}_OAR_{name}.seg.nrrd", mask.astype(np.uint8), spacing,
                       origin, meta)
    return data


def make_pddca(root: Path, *, cases: Sequence[str] = ("0522c0001", "0522c0002"), seed: int = 0,
               shape: Shape = (20, 20, 8), missing: Mapping[str, Sequence[str]] | None = None
               ) -> Path:
    """PDDCA/<case>/img.nrrd + <case>/structures/<organ>.nrrd (uint8 0/1); ``missing`` maps a
    case to organs without a file (default: 0522c0002 has no Submandibular_L); a README.txt
    beside the case folders is not a case."""
    data = Path(root) / "PDDCA"
    rng = np.random.default_rng(seed)
    missing = {"0522c0002": ("Submandibular_L",)} if missing is None else missing
    for case in cases:
        masks = organ_masks(PDDCA_OARS, shape, rng)
        spacing, origin = (0.98, 0.98, 2.5), (-250.0, -250.0, -200.0)
        write_nrrd(data / case / "img.nrrd", _ct(shape, masks, rng), spacing, origin)
        for name, mask in masks.items():
            if name not in missing.get(case, ()):
                write_nrrd(data / case / "structures" / f"{name}.nrrd", mask.astype(np.uint8),
                           spacing, origin)
    (data / "README.txt").write_text("PDDCA 1.4.1 (fabricated)\n", encoding="utf-8")
    return data


def make_segrap2023(root: Path, *, cases: Sequence[int] = (0, 1), seed: int = 0,
                    shape: Shape = (36, 30, 6)) -> Path:
    """SegRap2023/SegRap2023_Training_Set_120cases/segrap_<nnnn>/image.nii.gz +
    image_contrast.nii.gz (+ per-structure Brain.nii.gz, GTVp.nii.gz, not read) and the combined
    labels SegRap2023_Training_Set_120cases_OneHot_Labels/Task001/segrap_<nnnn>.nii.gz (3D,
    values 1-54, each present) and Task002/... (1 GTVp, 2 GTVnd); NIfTI, LPS-style affine."""
    from harmonize.plugins.fabricators.abdomen import lps_affine

    from harmonize.testing import write_nifti

    data = Path(root) / "SegRap2023"
    rng = np.random.default_rng(seed)
    images = data / "SegRap2023_Training_Set_120cases"
    labels = data / "SegRap2023_Training_Set_120cases_OneHot_Labels"
    for number in cases:
        case = f"segrap_{number:04d}"
        task1 = np.zeros(shape, np.uint8)
        for value, mask in enumerate(organ_masks([str(v) for v in range(1, 55)], shape, rng).values(),
                                     start=1):
            task1[mask] = value
        task2 = np.zeros(shape, np.uint8)
        task2[ellipsoid(shape, (0.5, 0.4, 0.5), (0.15, 0.1, 0.4))] = 1
        task2[ellipsoid(shape, (0.25, 0.7, 0.5), (0.08, 0.08, 0.3))] = 2
        affine = lps_affine((0.98, 0.98, 3.0), (-250.0, -230.0, -300.0 + number))
        plain = ct_phantom(shape, rng).astype(np.int16)
        contrast = plain + np.where(task1 > 0, 40, 0).astype(np.int16)
        write_nifti(images / case / "image.nii.gz", plain, affine)
        write_nifti(images / case / "image_contrast.nii.gz", contrast, affine)
        write_nifti(images / case / "Brain.nii.gz", np.isin(task1, range(1, 10)).astype(np.uint8),
                    affine)
        write_nifti(images / case / "GTVp.nii.gz", (task2 == 1).astype(np.uint8), affine)
        write_nifti(labels / "Task001" / f"{case}.nii.gz", task1, affine)
        write_nifti(labels / "Task002" / f"{case}.nii.gz", task2, affine)
    return data
