"""Limits checked against a volume's *declared* size before any voxel is allocated.

A header is untrusted input: a 3 MB ``.nii.gz`` may declare 1600 x 1000 x 1000 voxels and inflate
to gigabytes. Readers call :func:`check_declared_size` with the header's shape before allocating.
The default, :data:`DEFAULT_MAX_VOXELS` (2^30, about 1.07 billion voxels: a 512 x 512 x 4096 CT),
is above every volume of the public segmentation datasets; ``HARMONIZE_MAX_VOXELS`` raises or
lowers it for a run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from harmonize.errors import ReadError

MAX_VOXELS_ENV = "HARMONIZE_MAX_VOXELS"
DEFAULT_MAX_VOXELS = 1 << 30


def max_voxels() -> int:
    """The voxel limit in force (``HARMONIZE_MAX_VOXELS`` or :data:`DEFAULT_MAX_VOXELS`)."""
    raw = os.environ.get(MAX_VOXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_VOXELS
    try:
        value = int(raw)
    except ValueError:
        raise ReadError(f"{MAX_VOXELS_ENV}={raw!r} is not an integer",
                        hint=f"set {MAX_VOXELS_ENV} to a voxel count, e.g. {DEFAULT_MAX_VOXELS}"
                        ) from None
    return value


def check_declared_size(shape: Sequence[int], itemsize: int, *, file: Path) -> None:
    """Raise :class:`ReadError` naming ``file`` when ``shape`` (voxels x channels) declares more
    voxels than :func:`max_voxels` or a negative extent; do nothing otherwise."""
    if any(int(s) < 0 for s in shape):
        raise ReadError(f"header declares a negative size {list(shape)}", file=file,
                        hint="the file is damaged; re-download or re-export it")
    voxels = math.prod(int(s) for s in shape)
    limit = max_voxels()
    if voxels > limit:
        raise ReadError(
            f"header declares shape {list(shape)} = {voxels:,} voxels "
            f"({voxels * itemsize / 2**30:.1f} GiB), above the limit of {limit:,} voxels; "
            "nothing was allocated",
            file=file,
            hint=f"a damaged or hostile file, or a volume larger than any public dataset's: if it "
                 f"is real, raise the limit with {MAX_VOXELS_ENV}={voxels}",
        )
