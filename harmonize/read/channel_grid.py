"""Channels released on different grids (a PET beside its CT): the descriptor's ``channel_grid``.

:func:`onto_first_grid` checks that every channel file of a case shares the first channel's
grid (``channel_grid: same``, the default: a channel on another grid is a :class:`ReadError`
naming its file) or resamples it linearly onto that grid (``first``), returning the operation
records the manifest keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harmonize.errors import ReadError
from harmonize.read.grid import describe_grid, same_grid
from harmonize.read.volume import Volume

__all__ = ["onto_first_grid"]


def onto_first_grid(paths: Sequence[Path], parts: list[Volume], channel_grid: str = "same"
                    ) -> list[dict[str, Any]]:
    """Put every channel of ``parts`` (read from ``paths``) on the first one's grid, in place;
    returns a ``resample_channel`` operation per resampled channel."""
    operations: list[dict[str, Any]] = []
    for k, (path, part) in enumerate(zip(paths[1:], parts[1:]), start=1):
        if part.shape == parts[0].shape and same_grid(part.affine, parts[0].affine):
            continue
        if channel_grid != "first":
            raise ReadError(
                f"channel grid ({describe_grid(part)}) differs from the first channel's "
                f"({describe_grid(parts[0])})", file=path,
                hint="the channels of a case must be 3D volumes on one grid (a descriptor may "
                     "say channel_grid: first to resample them onto the first channel's)",
            )
        from harmonize.engine.resample import resample_onto

        operations.append({"op": "resample_channel", "channel": k, "interpolation": "linear",
                           "from": describe_grid(part), "to": describe_grid(parts[0])})
        try:
            parts[k] = resample_onto(part, parts[0].shape, parts[0].affine)
        except ValueError as exc:
            raise ReadError(f"channel cannot be resampled onto the first channel's grid: {exc}",
                            file=path, hint="resample the channel files onto one grid first"
                            ) from None
    return operations
