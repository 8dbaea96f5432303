"""Label files in odd encodings (descriptor keys ``value_ranges`` and ``label_encoding``).

* ``value_ranges: {1: [55, 70], 2: [110, 135]}``: grey-value ranges (inclusive) that stand for a
  label value (masks saved as grey-value images). A non-zero voxel in no range is a
  :class:`~harmonize.errors.LabelError` listing the values, never silently dropped.
* ``label_encoding: one-hot`` (or ``one-hot-with-background``: channel 0 is background and is
  dropped): a 4D label whose channel ``k`` is the ``k``-th class in value order (values 1..N, as
  for one file per structure), combined with
  :func:`~harmonize.labels.overlap.combine_structures` so overlapping channels are kept.
* ``label_encoding: slicer-segments``: a 3D Slicer segmentation (``.seg.nrrd``): segment ``k`` is
  the voxels of layer ``Segment<k>_Layer`` equal to ``Segment<k>_LabelValue``, named
  ``Segment<k>_Name`` (mapped to a class by ``structure_files``, else the name itself);
  segments on separate layers may overlap and are combined the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from harmonize.errors import LabelError
from harmonize.labels.overlap import combine_structures
from harmonize.plugin.descriptor import Descriptor
from harmonize.read.volume import Volume, header_fields, read_volume

ONE_HOT = ("one-hot", "one-hot-with-background")
SEGMENT = re.compile(r"^Segment(\d+)_Name$")


def read_encoded_label(desc: Descriptor, path: Path) -> Volume | None:
    """The label at ``path`` decoded by the descriptor's rule, or ``None`` (a plain label)."""
    if desc.label_encoding in ONE_HOT:
        return _one_hot(desc, path)
    if desc.label_encoding == "slicer-segments":
        return _slicer_segments(desc, path)
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
    names = _names(desc)
    if data.shape[3] != len(names):
        raise LabelError(f"one-hot label has {data.shape[3]} structure channel(s), the "
                         f"descriptor {len(names)} classes", file=path,
                         hint="list one class per channel (values 1..N in channel order) or "
                         "set label_encoding: one-hot-with-background if channel 0 is background")
    masks = {name: data[..., k] for k, name in enumerate(names)}
    return combine_structures(names, masks, volume.affine)


def _names(desc: Descriptor) -> list[str]:
    return [name for name, _ in sorted(desc.classes.items(), key=lambda item: item[1][0])]


def _slicer_segments(desc: Descriptor, path: Path) -> Volume:
    fields = header_fields(path)
    segments = sorted(int(m.group(1)) for m in map(SEGMENT.match, fields) if m is not None)
    if not segments:
        raise LabelError("no Slicer segments (Segment<k>_Name) in the file's header", file=path,
                         hint="this is not a Slicer segmentation; drop label_encoding")
    volume = read_volume(path, kind="image", allow_channels=True)  # layers are channels
    data = volume.data if volume.data.ndim == 4 else volume.data[..., None]
    masks: dict[str, np.ndarray] = {}
    for k in segments:
        name = fields[f"Segment{k}_Name"]
        target = desc.structure_files.get(name, name)
        try:
            value = int(fields.get(f"Segment{k}_LabelValue", "1"))
            layer = int(fields.get(f"Segment{k}_Layer", "0"))
        except ValueError:
            raise LabelError(f"segment {name!r} has a non-integer label value or layer",
                             file=path, hint="re-save the segmentation in 3D Slicer") from None
        if target not in desc.classes:
            raise LabelError(f"segment {name!r} maps to no class", file=path,
                             hint="map it to a class with structure_files in the descriptor")
        if not 0 <= layer < data.shape[3]:
            raise LabelError(f"segment {name!r} is on layer {layer} of {data.shape[3]}",
                             file=path, hint="re-save the segmentation in 3D Slicer")
        mask = data[..., layer] == value
        masks[target] = masks[target] | mask if target in masks else mask
    return combine_structures(_names(desc), masks, volume.affine)
