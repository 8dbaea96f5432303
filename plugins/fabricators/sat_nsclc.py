"""Fabricate TCIA PleThora next to an NSCLC-Radiomics NBIA download (see plugins/nsclc_plethora.py).

::

    Thoracic_Cavities/LUNG1-001/LUNG1-001_thor_cav_primary_reviewer.nii.gz
    Effusions/LUNG1-001/LUNG1-001_effusion_{first,second}_reviewer.nii.gz
    manifest-1586193031612/NSCLC-Radiomics/LUNG1-001/<study>/0.000000-NA-<n>/1-001.dcm ...
    manifest-1586193031612/NSCLC-Radiomics/LUNG1-001/<study>/1.000000-NA-<n>/1-001.dcm

The structures are analytic shapes in LPS mm (:func:`cavity_at`, :func:`effusion_at`) also drawn
into the CT's pixels (:data:`BODY_HU` outside the cavity, :data:`EFFUSION_HU` in an effusion), so
a test reads where they are from the image the core reads, independently of the label reader.
Masks are stored as the release stores them (module doc of the plugin): voxel (i, j, k) = DICOM
column i, row ``rows - 1 - j``, k-th slice in ascending position; their header is a bare scaling
(what "RPI" files that ITK-SNAP misplaces may carry), so a reader trusting it would misplace them.
Quirks: case 1's files run from the top slice down (instance 1 = highest), the others bottom-up;
case 2 has no effusion file (not annotated); each patient has a non-CT series folder (the
collection's RTSTRUCT/SEG; here a one-slice MR stand-in); the second
effusion reviewer's file is present and unused; a stray ``README.txt`` sits in Thoracic_Cavities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmonize.testing import SeriesGeometry, SliceFile, uid, write_nifti, write_series

MANIFEST = "manifest-1586193031612"
#: (rows, columns, slices)
SHAPE = (24, 20, 9)
SPACING = (0.977, 0.977, 3.0)
NO_EFFUSION = 2
#: CT values: outside the cavity, in an effusion (the aerated cavity is -800 +- 30 HU)
BODY_HU, EFFUSION_HU = 300.0, 15.0


def geometry(n: int) -> SeriesGeometry:
    """Case ``n``'s axial series; case 1 is stored top-down (negative step)."""
    top_down = n == 1
    z0 = -300.0 + 2 * n + (SHAPE[2] - 1) * SPACING[2] * top_down
    return SeriesGeometry(rows=SHAPE[0], columns=SHAPE[1], pixel_spacing=SPACING[:2],
                          origin=(-10.0 + n, -12.0, z0),
                          step=-SPACING[2] if top_down else SPACING[2])


def _box(n: int) -> tuple[np.ndarray, np.ndarray]:
    """LPS extent (low corner, size) of case ``n``'s series."""
    g = geometry(n)
    lo = np.array([g.origin[0], g.origin[1], -300.0 + 2 * n])
    size = np.array([(SHAPE[1] - 1) * SPACING[1], (SHAPE[0] - 1) * SPACING[0],
                     (SHAPE[2] - 1) * SPACING[2]])
    return lo, size


def cavity_at(n: int, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The thoracic cavity of case ``n`` at LPS points: two ellipsoids, the right one larger and
    more anterior."""
    lo, size = _box(n)
    inside = np.zeros(np.shape(x), dtype=bool)
    # x grows towards the patient's left, y posteriorly: no mirror symmetry in any axis
    for cx, cy, rx in ((0.28, 0.45, 0.2), (0.72, 0.55, 0.16)):
        c = lo + np.array([cx, cy, 0.55]) * size
        r = np.array([rx, 0.3, 0.45]) * size
        inside |= ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1
    return inside


def effusion_at(n: int, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Case ``n``'s effusion: posterior (large y) and inferior part of the right cavity."""
    lo, size = _box(n)
    return (cavity_at(n, x, y, z) & (x < lo[0] + 0.5 * size[0])
            & (y > lo[1] + 0.55 * size[1]) & (z < lo[2] + 0.5 * size[2]))


def _release_mask(n: int, shape_fn: object, slices: list[int]) -> np.ndarray:
    """A mask in the release's voxel order from an LPS shape function, ``slices`` = geometry
    indices in ascending position."""
    g = geometry(n)
    out = np.zeros((SHAPE[1], SHAPE[0], SHAPE[2]), dtype=np.uint8)
    for p, k in enumerate(slices):
        plane = shape_fn(n, *g.world(k))  # type: ignore[operator]  # (rows, columns)
        out[:, :, p] = plane[::-1, :].T
    return out


def make_plethora(root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
    """Write PleThora masks and ``n_cases`` NSCLC-Radiomics CTs (LUNG1-001 ...) under ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    naive = np.diag([*SPACING, 1.0])
    (root / "Thoracic_Cavities").mkdir(parents=True, exist_ok=True)
    (root / "Thoracic_Cavities" / "README.txt").write_text("PleThora thoracic cavities\n")
    for n in range(1, n_cases + 1):
        patient = f"LUNG1-{n:03d}"
        g = geometry(n)
        ascending = list(range(SHAPE[2]))[::-1 if g.step < 0 else 1]
        slices = []
        for k in range(SHAPE[2]):
            x, y, z = g.world(k)
            hu = np.full(SHAPE[:2], BODY_HU)
            hu[cavity_at(n, x, y, z)] = rng.normal(-800, 30, SHAPE[:2])[cavity_at(n, x, y, z)]
            hu[effusion_at(n, x, y, z)] = EFFUSION_HU
            slices.append(SliceFile(name=f"1-{k + 1:03d}.dcm", pixels=np.rint(hu), k=k,
                                    instance=k + 1))
        study = (root / MANIFEST / "NSCLC-Radiomics" / patient
                 / f"0{n % 9 + 1}-18-2008-StudyID-NA-{69331 + n}")
        study_uid = uid("plethora", seed, n)
        write_series(study / f"0.000000-NA-{82046 + n}", slices, g, modality="CT",
                     series_uid=uid("plethora", seed, n, "ct"), study_uid=study_uid,
                     patient_id=patient, rescale=(1.0, -1024.0))
        write_series(study / f"1.000000-NA-{5000 + n}", slices[:1], g, modality="MR",
                     series_uid=uid("plethora", seed, n, "other"), study_uid=study_uid,
                     patient_id=patient)
        write_nifti(root / "Thoracic_Cavities" / patient / f"{patient}_thor_cav_primary_reviewer"
                    ".nii.gz", _release_mask(n, cavity_at, ascending), naive)
        if n != NO_EFFUSION:
            effusion = _release_mask(n, effusion_at, ascending)
            for reviewer in ("first", "second"):
                write_nifti(root / "Effusions" / patient / f"{patient}_effusion_{reviewer}_"
                            "reviewer.nii.gz", effusion, naive)
    return root
