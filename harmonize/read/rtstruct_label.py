"""An RTSTRUCT file as a case's label map: ROI names matched, contours rasterized, combined.

The reading layer (:mod:`harmonize.read.case`) calls :func:`read_rtstruct_label` for a case whose
label is an RTSTRUCT file (:func:`~harmonize.read.rtstruct.is_rtstruct`) and whose image is the
DICOM series folder it references, so a YAML-only descriptor reads it like a NIfTI label:

1. ROI names -> the descriptor's classes (:class:`~harmonize.labels.roi_names.RoiMatcher`:
   exact synonyms, then ``roi_patterns``); unmatched, ambiguous and second ROIs of one class are
   left out and listed;
2. every mapped ROI is rasterized on the referenced series (:func:`~harmonize.read.rtstruct.rasterize`);
   an ROI without closed contours (POINT markers, no contour at all) is left out and listed;
3. the masks become one label map with :func:`~harmonize.labels.overlap.combine_structures`, so
   overlapping ROIs (a GTV inside its lung) both come back exactly; its class table replaces the
   descriptor's for the case (the ROIs left out are not annotated in it).

The listing (:func:`roi_report`) is what ``harmonize discover`` shows and the label volume's
``operations`` carry (``{"op": "rtstruct_rois", "rois": [...]}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harmonize.labels.overlap import combine_structures
from harmonize.labels.roi_names import RoiMatch, RoiMatcher
from harmonize.plugin.descriptor import Descriptor
from harmonize.read.rtstruct import (
    StructureSet,
    is_rtstruct,
    rasterize,
    read_structure_set,
    referenced_series,
)
from harmonize.read.volume import Volume

__all__ = ["is_rtstruct", "read_rtstruct_label", "roi_report", "rtstruct_rois"]


def rtstruct_rois(path: Path, descriptor: Descriptor, *, matcher: RoiMatcher | None = None
                  ) -> list[dict[str, str | None]]:
    """How each ROI name of RTSTRUCT ``path`` maps onto ``descriptor``'s classes, from the
    header alone (ROI names, no contours): :meth:`RoiMatch.to_dict` rows in file order."""
    structure = read_structure_set(Path(path), contours=False)
    matcher = matcher or RoiMatcher.from_descriptor(descriptor)
    return [m.to_dict() for m in matcher.assign(structure.roi_names)[1]]


def roi_report(structure: StructureSet, matcher: RoiMatcher) -> tuple[dict[str, Any], list[dict]]:
    """``({class: Roi}, one row per ROI)`` for a structure set: each row is
    :meth:`RoiMatch.to_dict` (``roi``, ``name``, ``by``, ``detail``); a mapped ROI without
    closed contours gets ``by: "empty"`` and is not used."""
    mapping, matches = matcher.assign(structure.roi_names)
    by_name = {roi.name: roi for roi in structure.rois}
    used: dict[str, Any] = {}
    rows = []
    for found in matches:
        roi = by_name[found.roi]
        if found.name is not None and not any(len(p) >= 3 for p in roi.closed):
            kinds = sorted({kind for kind, _ in roi.contours}) or ["no contour"]
            found = RoiMatch(found.roi, None, "unmatched", f"would be {found.name!r} but has no "
                             f"closed contour ({', '.join(kinds)})")
            rows.append({**found.to_dict(), "by": "empty"})
            continue
        if found.name is not None:
            used[found.name] = roi
        rows.append(found.to_dict())
    return used, rows


def read_rtstruct_label(path: Path, image_folder: Path, descriptor: Descriptor, *,
                        matcher: RoiMatcher | None = None) -> Volume:
    """The label map of RTSTRUCT ``path`` on the series it references in ``image_folder``
    (see the module doc); :class:`~harmonize.errors.ReadError` naming ``path`` for a missing
    series, another frame of reference, missing slices or an off-slice contour."""
    structure = read_structure_set(Path(path))
    series = referenced_series(structure, Path(image_folder))
    affine = series.affine()
    first = series.headers[0]
    shape = (int(first.Columns), int(first.Rows), len(series.unique()))
    used, rows = roi_report(structure, matcher or RoiMatcher.from_descriptor(descriptor))
    masks: dict[str, np.ndarray] = {
        name: rasterize(roi, affine, shape, file=structure.path) for name, roi in used.items()}
    volume = combine_structures(list(descriptor.classes), masks, affine)
    volume.operations.append({"op": "rtstruct_rois", "rois": rows})
    return volume
