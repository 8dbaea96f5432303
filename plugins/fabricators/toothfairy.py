"""Fabricate ToothFairy in its release layout (see plugins/toothfairy.py).

::

    ToothFairy_Dataset/splits.json                {"train": [...], "val": [...], "test": [...]}
    ToothFairy_Dataset/Dataset/P1/data.npy        int16 (slices, rows, columns), grey 0..~3000
    ToothFairy_Dataset/Dataset/P1/gt_sparse.npy   uint8 polyline voxels (the canals' centre lines)
    ToothFairy_Dataset/Dataset/P1/gt_alpha.npy    uint8, 1 = both inferior alveolar canals

Each volume is a small CBCT-like block: air (0..150), a mandible-like bone slab (1100..1900) with
brighter teeth on top (2400..3000), and two tubes (the left and right canals) running front to back
through the bone, one on each side of the columns. The canal voxels hold exactly
:data:`CANAL_GREY` in the image, a value nothing else takes, so a test finds the canal in the image
the plugin reads, independently of the mask. Cases ``P1``..``Pn`` are dense (train, val, test,
train ...); one more case has only ``gt_sparse.npy`` (the release's sparse-only cases); ``Dataset``
also holds a macOS AppleDouble file ``._P1``. ``P2``'s ``data.npy`` is stored in Fortran order and
big-endian (``.npy`` variants the reader must take, not a claim about the release).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: (slices, rows, columns)
SHAPE = (10, 24, 30)
CANAL_GREY = 555
CANAL_RADIUS = 1.6


def canal_mask(n: int) -> np.ndarray:
    """Case ``n``'s two canals: tubes along the rows, one in each half of the columns, dipping
    one slice towards the back (the canal runs down and back in the mandible)."""
    k, r, c = np.indices(SHAPE, dtype=float)
    mask = np.zeros(SHAPE, bool)
    for centre_column in (7.0 + n % 2, SHAPE[2] - 8.0):
        centre_slice = 4.0 + (r - 4.0) / (SHAPE[1] - 8.0)  # 4 at the front, 5 at the back
        tube = (k - centre_slice) ** 2 + (c - centre_column) ** 2 <= CANAL_RADIUS ** 2
        mask |= tube & (r >= 3) & (r <= SHAPE[1] - 4)
    return mask


def centre_lines(mask: np.ndarray) -> np.ndarray:
    """The sparse annotation: per row, the voxel nearest each canal's centre."""
    sparse = np.zeros(mask.shape, np.uint8)
    half = mask.shape[2] // 2
    for r in range(mask.shape[1]):
        for side in (slice(0, half), slice(half, None)):
            points = np.argwhere(mask[:, r, side])
            if len(points):
                k, c = np.round(points.mean(axis=0)).astype(int)
                sparse[k, r, c + (side.start or 0)] = 1
    return sparse


def cbct(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """CBCT-like grey values (int16): air, bone slab, teeth, canal = :data:`CANAL_GREY`."""
    image = rng.integers(0, 151, SHAPE).astype(np.int16)
    bone = np.zeros(SHAPE, bool)
    bone[1:8, 2:SHAPE[1] - 2, 3:SHAPE[2] - 3] = True
    image[bone] = rng.integers(1100, 1901, int(bone.sum()))
    teeth = np.zeros(SHAPE, bool)
    teeth[8:, 3:SHAPE[1] - 6, 5:SHAPE[2] - 5] = True
    image[teeth] = rng.integers(2400, 3001, int(teeth.sum()))
    image[mask] = CANAL_GREY
    return image


def make_toothfairy(root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
    """Write ``n_cases`` dense cases and one sparse-only case under
    ``root/ToothFairy_Dataset``; return that folder (the dataset root)."""
    release = Path(root) / "ToothFairy_Dataset"
    cases = release / "Dataset"
    cases.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for n in range(1, n_cases + 2):
        name = f"P{n}"
        folder = cases / name
        folder.mkdir(exist_ok=True)
        mask = canal_mask(n)
        image = cbct(rng, mask)
        if n == 2:
            image = np.asfortranarray(image.astype(">i2"))
        np.save(folder / "data.npy", image)
        np.save(folder / "gt_sparse.npy", centre_lines(mask))
        if n <= n_cases:  # the last case is sparse-only
            np.save(folder / "gt_alpha.npy", mask.astype(np.uint8))
        splits[("train", "val", "test")[(n - 1) % 3] if n <= 3 else "train"].append(name)
    (cases / "._P1").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (release / "splits.json").write_text(json.dumps(splits))
    return release
