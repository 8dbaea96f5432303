"""Assembling a sample's arrays: image channels in the requested order, multi-hot class masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harmonize.loader.cache import CaseArrays


def crop_channels(case: CaseArrays, start: np.ndarray, size: Sequence[int], pad_value: float,
                  positions: Sequence[int], out: np.ndarray) -> np.ndarray:
    """Crop the case's image into ``out`` (C, *size): record channel ``k`` goes to
    ``out[positions[k]]`` (left out when -1); channels no record channel fills are zero."""
    used = [p for p in positions if p >= 0]
    if used and len(used) == len(positions) and used == list(range(used[0], used[0] + len(used))):
        case.crop_image(start, size, pad_value, out=out[used[0]:used[0] + len(used)])  # in place
    else:
        patch = case.crop_image(start, size, pad_value)
        for k, p in enumerate(positions):
            if p >= 0:
                out[p] = patch[k]
    out[[c for c in range(out.shape[0]) if c not in used]] = 0
    return out


def mask_values(label: np.ndarray, values: Sequence[Sequence[int]], *, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (K, *label.shape) with 1 where ``label`` holds one of ``values[k]``."""
    high = int(label.max()) if label.size else 0
    for k, vals in enumerate(values):
        vals = [v for v in vals if v <= high]
        if not vals:
            continue
        target = out[k].view(bool)
        if len(vals) <= 8:  # comparisons are ~20x faster than a lookup table on uint8 maps
            np.equal(label, vals[0], out=target)
            for v in vals[1:]:
                target |= label == v
        else:
            lut = np.zeros(high + 1, dtype=np.uint8)
            lut[list(vals)] = 1
            np.take(lut, label, out=out[k], mode="clip")  # label <= high: clip never changes it
    return out
