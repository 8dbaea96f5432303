"""Fabricate SEG.A. 2023 (and further datasets of this module) in their released layouts
(YAML-only datasets, ``registry/datasets/<id>.yaml``; layouts cited in each descriptor).

Structures are ellipsoids painted with :func:`~harmonize.plugins.fabricators.sat_small_b.paint`,
so a test counts voxels per value from the written arrays itself. Arrays are (X, Y, Z); each
maker returns the folder to pass as ``--root`` and writes the release's quirks (see each
docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from harmonize.plugins.fabricators.sat_ct import Blob, Shape, ct_image
from harmonize.plugins.fabricators.sat_heart_hn import write_nrrd
from harmonize.plugins.fabricators.sat_small_b import paint

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
