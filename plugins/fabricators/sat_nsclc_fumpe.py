"""Fabricate FUMPE in its Kaggle layout (see plugins/fumpe.py).

::

    CT_scans/PAT001/<n>.dcm ...      (DICOM file names unverified here: the plugin reads the folder)
    GroundTruth/PAT001.mat           variable Mask, (rows, columns, slices)

The embolus is an analytic ellipsoid in LPS mm (:func:`embolus_at`) also drawn into the CT's pixels
(:data:`EMBOLUS_HU` inside, contrast-filled vessel and lung elsewhere), so a test finds it in the
image the core reads, independently of the ``.mat`` reader. ``Mask`` is stored as SAT-DS reads it:
``Mask[r, c, k]`` = DICOM row r, column c of the k-th slice in ascending position. Quirks: PAT002
is stored top-down (instance 1 = highest slice); PAT003's mask is a MATLAB double array (the
others logical); GroundTruth also holds a ``readme.txt``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmonize.testing import SeriesGeometry, SliceFile, uid, write_series

#: (rows, columns, slices)
SHAPE = (22, 18, 8)
SPACING = (0.68, 0.68, 1.0)
EMBOLUS_HU = 45.0
VESSEL_HU = 380.0


def geometry(n: int) -> SeriesGeometry:
    top_down = n == 2
    z0 = -150.0 + n + (SHAPE[2] - 1) * SPACING[2] * top_down
    return SeriesGeometry(rows=SHAPE[0], columns=SHAPE[1], pixel_spacing=SPACING[:2],
                          origin=(-6.0, -8.0 + n, z0), step=-SPACING[2] if top_down else SPACING[2])


def embolus_at(n: int, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Case ``n``'s embolus at LPS points: an ellipsoid off the series' centre (left, low)."""
    c = np.array([-6.0 + 0.65 * 17 * 0.68, -8.0 + n + 0.4 * 21 * 0.68, -150.0 + n + 2.5])
    r = np.array([2.2, 3.0, 2.6])
    return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1


def make_fumpe(root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
    """Write ``n_cases`` patients PAT001 ... under ``root``; return ``root``."""
    import scipy.io

    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "GroundTruth").mkdir(parents=True, exist_ok=True)
    (root / "GroundTruth" / "readme.txt").write_text("FUMPE ground truth\n")
    for n in range(1, n_cases + 1):
        patient = f"PAT{n:03d}"
        g = geometry(n)
        ascending = list(range(SHAPE[2]))[::-1 if g.step < 0 else 1]
        slices, planes = [], {}
        for k in range(SHAPE[2]):
            inside = embolus_at(n, *g.world(k))
            hu = np.where(rng.random(SHAPE[:2]) < 0.5, VESSEL_HU, -850.0)
            hu[inside] = EMBOLUS_HU
            planes[k] = inside
            slices.append(SliceFile(name=f"{k + 1}.dcm", pixels=hu, k=k, instance=k + 1))
        write_series(root / "CT_scans" / patient, slices, g, modality="CT",
                     series_uid=uid("fumpe", seed, n, "ct"), study_uid=uid("fumpe", seed, n),
                     patient_id=patient, rescale=(1.0, -1024.0))
        mask = np.stack([planes[k] for k in ascending], axis=2)
        scipy.io.savemat(root / "GroundTruth" / f"{patient}.mat",
                         {"Mask": mask.astype(np.float64 if n == 3 else bool)})
    return root
