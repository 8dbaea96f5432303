"""Label files in odd encodings (descriptor keys ``value_ranges`` and ``label_encoding``).

* ``value_ranges: {1: [55, 70], 2: [110, 135]}``: grey-value ranges (inclusive) that stand for a
  label value (CHAOS-like masks saved as images). A non-zero voxel in no range is a
  :class:`~harmonize.errors.LabelError` listing the values, never silently dropped.
* ``label_encoding: one-hot`` (or ``one-hot-with-background``: channel 0 is background and is
  dropped): a 4D label whose channel ``k`` is the ``k``-th class in value order (values 1..N, as
  for one file per structure), combined with
  :func:`~harmonize.labels.overlap.combine_structures` so overlapping channels are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from harmonize.errors import LabelError
from harmonize.labels.overlap import combine_structures
from harmonize.plugin.descriptor import Descriptor
from harmonize.read.volume import Volume, read_volume

ONE_HOT = ("one-hot", "one-hot-with-background")


def read_encoded_label(desc: Descriptor, path: Path) -> Volume | None:
    """The label at ``path`` decoded by the descriptor's rule, or ``None`` (a plain label)."""
    if desc.label_encoding in ONE_HOT:
        return _one_hot(desc, path)
    if desc.value_ranges:
        raw = read_volume(path, kind="label")
        return Volume(map_ranges(raw.data, desc.value_ranges, path), raw.affine, "label")
    return None


def map_ranges(raw: np.ndarray, ranges: Mapping[int, tuple[float, float]], path: Path
               ) -> np.ndarray:
    """Each voxel in ``ranges[value]`` (inclusive) becomes ``value``; zero stays zero."""
    out = np.zeros(raw.shape, dtype=np.uint16 if max(ranges) > 255 else np.uint8)
    covered = raw == 0
    for value, (low, high) in ranges.items():
        inside = (raw >= low) & (raw <= high)
        out[inside] = value
        covered |= inside
    if not covered.all():
        stray = np.unique(raw[~covered])
        raise LabelError(f"{stray.size} grey value(s) in no value range: "
                         f"{[float(v) if stray.dtype.kind == 'f' else int(v) for v in stray[:8]]}"
                         + (" ..." if stray.size > 8 else ""), file=path,
                         hint="widen value_ranges in the descriptor, or check the file")
    return out


def _one_hot(desc: Descriptor, path: Path) -> Volume:
    volume = read_volume(path, kind="image", allow_channels=True)  # 4D: channels last
    data = volume.data if volume.data.ndim == 4 else volume.data[..., None]
    if desc.label_encoding == "one-hot-with-background":
        data = data[..., 1:]
    names = [name for name, _ in sorted(desc.classes.items(), key=lambda item: item[1][0])]
    if data.shape[3] != len(names):
        raise LabelError(f"one-hot label has {data.shape[3]} structure channel(s), the "
                         f"descriptor {len(names)} classes", file=path,
                         hint="list one class per channel (values 1..N in channel order) or "
                         "set label_encoding: one-hot-with-background if channel 0 is background")
    masks = {name: data[..., k] for k, name in enumerate(names)}
    return combine_structures(names, masks, volume.affine)
