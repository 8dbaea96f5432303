"""RT Structure Sets in ``harmonize validate-dicom``: one report per RTSTRUCT file.

Checks (same rules as reading, :mod:`harmonize.read.rtstruct`): ``referenced_series`` (the
series it references is under the validated path, with every referenced slice),
``frame_of_reference`` (its ROIs and that series share one Frame of Reference UID),
``contours_inside`` (every closed contour lies on a slice of the series, within
:data:`~harmonize.read.rtstruct.SLICE_TOLERANCE` of the slice step, and inside the image in
plane) and ``no_empty_roi`` (every ROI has at least one contour).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harmonize.errors import ReadError
from harmonize.qa.dicom_checklist import Check, SeriesReport
from harmonize.read.dicom import Series
from harmonize.read.rtstruct import SLICE_TOLERANCE, contour_voxels, read_structure_set

__all__ = ["RTSTRUCT_CHECKS", "check_rtstruct"]

#: the image covers voxel indices -0.5 .. n - 0.5 (voxel edges), plus round-off of the points
EDGE = 0.5 + 1e-3
RTSTRUCT_CHECKS = ("referenced_series", "frame_of_reference", "contours_inside", "no_empty_roi")


def _outside(series: Series, rois) -> list[str]:
    """ROI names with a contour off the slices or outside the image, with the first reason."""
    first = series.headers[0]
    nx, ny, nz = int(first.Columns), int(first.Rows), len(series.unique())
    affine = series.affine()
    bad = []
    for roi in rois:
        for points in roi.closed:
            vox = contour_voxels(points, affine)
            k = np.round(vox[:, 2])
            reason = None
            if np.abs(vox[:, 2] - k).max() > SLICE_TOLERANCE:
                reason = f"off the slices at z = {points[0][2]:.4g} mm"
            elif k.min() < 0 or k.max() >= nz:
                reason = f"on a slice outside the {nz} slices"
            elif (vox[:, 0].min() < -EDGE or vox[:, 0].max() > nx - 1 + EDGE
                  or vox[:, 1].min() < -EDGE or vox[:, 1].max() > ny - 1 + EDGE):
                reason = "partly outside the image in plane (clipped when read)"
            if reason:
                bad.append(f"{roi.name!r} {reason}")
                break
    return bad


def check_rtstruct(path: Path, series: Sequence[Series]) -> SeriesReport:
    """The RTSTRUCT checklist (:data:`RTSTRUCT_CHECKS`) of ``path`` against ``series`` (every
    image series found under the validated path)."""
    path = Path(path)
    try:
        structure = read_structure_set(path)
    except ReadError as exc:
        return SeriesReport(path, None, "RTSTRUCT", 1, [Check("referenced_series", False,
                                                              exc.message)])
    checks = []
    found = next((s for s in series if s.uid and s.uid == structure.series_uid), None)
    if found is None:
        checks.append(Check("referenced_series", False, f"series {structure.series_uid} is not "
                            "under the validated path; download the series it was drawn on"))
        checks.append(Check("frame_of_reference", False, "referenced series not found"))
        checks.append(Check("contours_inside", False, "referenced series not found"))
    else:
        present = {str(h.get("SOPInstanceUID")) for h in found.headers}
        missing = structure.referenced_sops - present
        checks.append(Check("referenced_series", not missing,
                            f"series {found.uid} in {found.folder}"
                            + (f"; {len(missing)} referenced slice(s) missing" if missing else "")))
        frames = {str(h.get("FrameOfReferenceUID", "") or "") for h in found.headers}
        wanted = {r.frame_of_reference for r in structure.rois if r.frame_of_reference}
        wanted |= {structure.frame_of_reference} if structure.frame_of_reference else set()
        checks.append(Check("frame_of_reference", not wanted or frames == wanted,
                            f"RTSTRUCT {', '.join(sorted(wanted)) or 'none'}; series "
                            f"{', '.join(sorted(frames))}"))
        try:
            bad = _outside(found, structure.rois)
        except ReadError as exc:  # the series has no geometry
            bad = [exc.message]
        checks.append(Check("contours_inside", not bad, "; ".join(bad) or
                            "every contour on a slice and inside the image"))
    empty = [roi.name for roi in structure.rois if not roi.contours]
    checks.append(Check("no_empty_roi", not empty,
                        f"ROI(s) without contours: {', '.join(repr(n) for n in empty)}" if empty
                        else f"{len(structure.rois)} ROI(s), each with contours"))
    return SeriesReport(path, structure.series_uid, "RTSTRUCT", 1, checks,
                        description=f"{len(structure.rois)} ROIs")
