"""Classes of a label map as regions and connected components (lesion counts).

A class is the set of mask values the record maps to one name (``kidney = {1, 2, 3}``), so its
region is the union of those values. :func:`value_boxes` finds every value's voxel count and
bounding box in one pass (SimpleITK's label shape statistics), so each class is then examined
inside its own bounding box only. Components are face-connected (6-neighbourhood in 3D, as
``scipy.ndimage.label``'s default structure), found with SimpleITK's ``ConnectedComponent``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Region:
    """One class in one case: its voxels inside its bounding box ``box`` of the full mask."""

    box: Box
    voxels: np.ndarray  # bool, the shape of the box

    @property
    def count(self) -> int:
        return int(self.voxels.sum())


@dataclass(frozen=True)
class Components:
    """Face-connected components of a region, largest first."""

    labels: np.ndarray  # int32 over the region's box, 0 outside, 1 = largest component
    sizes: list[int]  # voxels per component, descending

    def to_dict(self, voxel_mm3: float) -> dict[str, float | int]:
        """``count`` and the largest/smallest component's voxels and volume in mm^3."""
        if not self.sizes:
            return {"count": 0}
        return {"count": len(self.sizes), "largest_voxels": self.sizes[0],
                "largest_mm3": round(self.sizes[0] * voxel_mm3, 3),
                "smallest_voxels": self.sizes[-1],
                "smallest_mm3": round(self.sizes[-1] * voxel_mm3, 3)}


def value_boxes(mask: np.ndarray) -> dict[int, Box]:
    """Bounding box (numpy slices of ``mask``) of every non-zero value present."""
    import SimpleITK as sitk

    data = mask if mask.dtype.kind == "u" and mask.itemsize <= 4 else mask.astype(np.uint32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data))  # sitk index order = numpy reversed
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.SetComputePerimeter(False)
    stats.Execute(image)
    boxes: dict[int, Box] = {}
    for value in stats.GetLabels():
        box = stats.GetBoundingBox(value)  # (start..., size...) in sitk index order
        n = data.ndim
        start, size = box[:n][::-1], box[n:][::-1]
        boxes[int(value)] = tuple(slice(int(a), int(a + s)) for a, s in zip(start, size))  # type: ignore[assignment]
    return boxes


def class_region(mask: np.ndarray, values: Iterable[int], boxes: Mapping[int, Box]
                 ) -> Region | None:
    """The voxels of the class made of ``values`` (``None`` when none of them is present)."""
    present = [int(v) for v in values if int(v) in boxes]
    if not present:
        return None
    lo = [min(boxes[v][a].start for v in present) for a in range(3)]
    hi = [max(boxes[v][a].stop for v in present) for a in range(3)]
    box: Box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    return Region(box, np.isin(mask[box], present))


def components(region: Region) -> Components:
    """Face-connected components of ``region``, relabelled so 1 is the largest."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(region.voxels.astype(np.uint8)))
    labelled = sitk.GetArrayFromImage(sitk.ConnectedComponent(image, False)).astype(np.int32)
    counts = np.bincount(labelled.ravel())
    counts[0] = 0
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0]
    relabel = np.zeros(len(counts), dtype=np.int32)
    relabel[order] = np.arange(1, len(order) + 1, dtype=np.int32)
    return Components(relabel[labelled], [int(counts[i]) for i in order])


def largest_component_slices(region: Region, comps: Components) -> tuple[int, int, int]:
    """Per axis, the index (in the full mask) of the slice holding the most voxels of the
    largest component (the middle one of ties): a cut through it in every plane, whatever its
    shape."""
    largest = comps.labels == 1
    out = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        counts = largest.sum(axis=others)
        best = np.flatnonzero(counts == counts.max())
        out.append(int(region.box[axis].start + int(best[len(best) // 2])))
    return out[0], out[1], out[2]
