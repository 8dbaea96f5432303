"""Crop to the image's foreground box: MONAI ``CropForeground`` with its defaults.

SAT-DS (and the CLIP-Driven Universal Model) crop every case to the bounding box of the voxels
``> 0`` in any channel (MONAI ``CropForegroundd(source_key="image")``: ``select_fn`` =
``is_positive``, margin 0) after resampling and before the intensity z-score, so their mean and
std are those of that box. :func:`crop_to_foreground` does the same on a RAS volume and its label,
moving the affine's origin to the box's first voxel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harmonize.read.volume import Volume

__all__ = ["crop_to_foreground", "foreground_box"]


def foreground_box(data: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(start, stop)`` of the voxels ``> 0`` in any channel of a (X, Y, Z[, C]) array (the box
    MONAI's ``generate_spatial_bounding_box`` gives), or ``None`` when no voxel is ``> 0``."""
    positive = np.asarray(data > 0)
    if positive.ndim == 4:
        positive = np.asarray(positive.any(axis=3))
    start, stop = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(positive.any(axis=others))
        if hit.size == 0:
            return None
        start.append(int(hit[0]))
        stop.append(int(hit[-1]) + 1)
    return tuple(start), tuple(stop)


def crop_to_foreground(image: Volume, label: Volume | None
                       ) -> tuple[Volume, Volume | None, dict[str, Any]]:
    """``image`` and ``label`` cut to the image's foreground box (views of their arrays), and the
    operation to record. An image without a voxel ``> 0`` is left whole (MONAI would return an
    empty volume)."""
    box = foreground_box(image.data)
    if box is None:
        return image, label, {"op": "crop_foreground",
                              "params": {"cropped": False, "reason": "no voxel > 0"}}
    start, stop = box
    cut = tuple(slice(a, b) for a, b in zip(start, stop))
    affine = np.array(image.affine, dtype=np.float64)
    affine[:3, 3] = affine[:3, :3] @ np.asarray(start, dtype=np.float64) + affine[:3, 3]
    # Views, not copies: the intensity step that follows writes a new array anyway, and a
    # copy in C order of a Fortran-ordered volume costs a full transposition.
    cropped = Volume(image.data[cut], affine, "image")
    cropped_label = None
    if label is not None:
        cropped_label = Volume(label.data[cut], affine.copy(), "label", classes=label.classes)
    op = {"op": "crop_foreground",
          "params": {"cropped": True, "start": list(start),
                     "shape": [b - a for a, b in zip(start, stop)]}}
    return cropped, cropped_label, op
