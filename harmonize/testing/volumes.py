"""Building blocks for fabricated datasets: CT-like phantoms, label shapes, NIfTI writing.

Everything is deterministic for a given seed so fabricated trees hash the same on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np


def grid(shape: Sequence[int]) -> list[np.ndarray]:
    """Open index grids normalised to [0, 1] along each axis."""
    return [
        (np.arange(n, dtype=np.float32) / max(n - 1, 1)).reshape(
            [n if i == axis else 1 for i in range(len(shape))]
        )
        for axis, n in enumerate(shape)
    ]


def ellipsoid(
    shape: Sequence[int], center: Sequence[float] | np.ndarray, radii: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Boolean ellipsoid; ``center`` and ``radii`` are fractions of each axis length."""
    coords = grid(shape)
    inside = sum(((c - m) / r) ** 2 for c, m, r in zip(coords, center, radii))
    return np.asarray(inside <= 1.0)


def ct_phantom(
    shape: Sequence[int],
    rng: np.random.Generator,
    *,
    axial_axes: tuple[int, int] = (0, 1),
) -> np.ndarray:
    """A compressible CT-like int16 volume in HU: air, a body ellipse, a spine, mild noise.

    ``axial_axes`` are the two array axes spanning the axial plane (the third is the slice axis).
    """
    coords = grid(shape)
    a, b = (coords[i] for i in axial_axes)
    body = ((a - 0.5) / 0.45) ** 2 + ((b - 0.5) / 0.35) ** 2 <= 1.0
    spine = ((a - 0.5) / 0.06) ** 2 + ((b - 0.72) / 0.06) ** 2 <= 1.0
    full = np.broadcast_to(body, shape)
    volume = np.where(full, 40.0, -1000.0).astype(np.float32)
    volume[np.broadcast_to(spine, shape)] = 700.0
    volume += rng.normal(0.0, 8.0, size=tuple(shape)).astype(np.float32) * full
    return np.rint(volume).astype(np.int16)


def slice_first_affine(spacing: tuple[float, float, float], origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Affine of arrays stored slice-first (slices, H, W), as some releases do: axis 0 -> z, axis 1 -> -y, axis 2 -> -x.

    ``spacing`` is (in-plane row, in-plane column, slice) in mm.
    """
    row, col, thick = spacing
    affine = np.array(
        [[0.0, 0.0, -col, 0.0], [0.0, -row, 0.0, 0.0], [-thick, 0.0, 0.0, 0.0], [0, 0, 0, 1.0]]
    )
    affine[:3, 3] = origin
    return affine


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``data`` with ``affine`` (qform and sform set, code 1 = scanner)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))
    return path
