"""Limits checked against a volume's *declared* size before any voxel is allocated or inflated.

A header is untrusted input: a 3 MB ``.nii.gz`` may declare 1600 x 1000 x 1000 voxels and inflate
to gigabytes. Readers call :func:`check_declared_size` with the header's shape (and the file's size)
before allocating. Two limits, each raised or lowered for a run by an environment variable:

* ``HARMONIZE_MAX_VOXELS`` (default :data:`DEFAULT_MAX_VOXELS`, 2^30, about 1.07 billion voxels: a
  512 x 512 x 4096 CT), above every volume of the public segmentation datasets;
* ``HARMONIZE_MAX_RATIO`` (default :data:`DEFAULT_MAX_RATIO`, 2000): declared (uncompressed) bytes
  per byte of file, for single-file volumes (NIfTI, NRRD, MHA). Their compression is deflate (gzip,
  zlib), which cannot exceed 1032:1; the most compressible real file, an all-zero
  512 x 512 x 600 uint8 mask, measures 1029:1 (zlib level 9) and 1024:1 (harmonize's writer), a
  two-kidney mask 689-864:1. A file declaring more than the limit is truncated or lying.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from harmonize.errors import ReadError

MAX_VOXELS_ENV = "HARMONIZE_MAX_VOXELS"
DEFAULT_MAX_VOXELS = 1 << 30
MAX_RATIO_ENV = "HARMONIZE_MAX_RATIO"
DEFAULT_MAX_RATIO = 2000


def _limit(env: str, default: int) -> int:
    raw = os.environ.get(env)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ReadError(f"{env}={raw!r} is not an integer",
                        hint=f"set {env} to a whole number, e.g. {default}") from None
    return value


def max_voxels() -> int:
    """The voxel limit in force (``HARMONIZE_MAX_VOXELS`` or :data:`DEFAULT_MAX_VOXELS`)."""
    return _limit(MAX_VOXELS_ENV, DEFAULT_MAX_VOXELS)


def max_ratio() -> int:
    """The declared-to-file size limit in force (``HARMONIZE_MAX_RATIO`` or
    :data:`DEFAULT_MAX_RATIO`)."""
    return _limit(MAX_RATIO_ENV, DEFAULT_MAX_RATIO)


def check_declared_size(shape: Sequence[int], itemsize: int, *, file: Path,
                        stored_bytes: int | None = None) -> None:
    """Raise :class:`ReadError` naming ``file`` when ``shape`` (voxels x channels) declares a
    negative extent, more voxels than :func:`max_voxels`, or (given ``stored_bytes``, the size of
    the file holding the voxels) more than :func:`max_ratio` bytes per stored byte; do nothing
    otherwise. Nothing has been allocated or decompressed when it raises."""
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
    if stored_bytes is None:
        return
    declared = voxels * itemsize
    ratio = declared / max(int(stored_bytes), 1)
    limit = max_ratio()
    if ratio > limit:
        raise ReadError(
            f"header declares shape {list(shape)} = {declared:,} bytes, {ratio:,.0f} times the "
            f"file's {stored_bytes:,} bytes, above the limit of {limit:,}:1 (deflate cannot "
            "compress more than 1032:1); nothing was decompressed",
            file=file,
            hint=f"the file is truncated, damaged or hostile: re-download it; if it is real, "
                 f"raise the limit with {MAX_RATIO_ENV}={math.ceil(ratio)}",
        )
