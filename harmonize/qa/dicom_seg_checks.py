"""``harmonize validate-dicom`` items for a DICOM Segmentation (SEG) series.

A SEG found under the validated path is checked against the series it segments (looked up among
the series found under the same path, by the SEG's ReferencedSeriesSequence):

* ``referenced_series``: the referenced series is present and holds every SOP instance the
  SEG's frames were derived from;
* ``frame_of_reference``: the SEG's FrameOfReferenceUID is the series';
* ``segments_non_empty``: every segment has at least one voxel (frames decoded by pydicom);
* ``frames_inside``: every frame has the series' Rows x Columns and lies on the plane of the
  instance it was derived from (ImagePositionPatient within 0.01 mm).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from harmonize.read.dicom import Series, floats
from harmonize.read.dicom_seg import SEG_SOP_CLASS

__all__ = ["SEG_CHECKS", "check_seg_series", "is_seg_series"]

SEG_CHECKS = ("referenced_series", "frame_of_reference", "segments_non_empty", "frames_inside")
POSITION_ATOL_MM = 0.01


def is_seg_series(series: Series) -> bool:
    return bool(series.headers) and str(series.headers[0].get("SOPClassUID", "")) == SEG_SOP_CLASS


def _frame_sources(ds: Any) -> list[tuple[str | None, tuple[float, ...] | None]]:
    """(source SOP Instance UID, ImagePositionPatient) of every frame."""
    out = []
    for item in ds.get("PerFrameFunctionalGroupsSequence", ()):
        sop = None
        for derivation in item.get("DerivationImageSequence", ()):
            for source in derivation.get("SourceImageSequence", ()):
                sop = str(source.ReferencedSOPInstanceUID)
        plane = item.get("PlanePositionSequence")
        position = floats(plane[0].get("ImagePositionPatient"), 3) if plane else None
        out.append((sop, position))
    return out


def check_seg_series(series: Series, others: Iterable[Series]) -> Any:
    """The SEG checklist (:data:`SEG_CHECKS`) of the SEG ``series`` (its first file), with the
    series it references looked up in ``others``; a
    :class:`~harmonize.qa.dicom_checklist.SeriesReport`. A SEG whose frames or functional
    groups cannot be decoded gets one failed ``readable`` item with the reason."""
    from harmonize.qa.dicom_checklist import Check, SeriesReport

    try:
        return _check_seg(series, list(others))
    except Exception as exc:  # noqa: BLE001 - a malformed SEG is a finding, not a crash
        return SeriesReport(series.folder, series.uid, "SEG", series.n_slices, [Check(
            "readable", False, f"cannot decode the SEG {series.files[0].name}: "
            f"{type(exc).__name__}: {exc}")])


def _check_seg(series: Series, others: list[Series]) -> Any:
    import pydicom

    from harmonize.qa.dicom_checklist import Check, SeriesReport

    path = series.files[0]
    ds = pydicom.dcmread(path)
    checks: list[Check] = []
    refs = ds.get("ReferencedSeriesSequence") or []
    ref_uid = str(refs[0].SeriesInstanceUID) if refs else None
    source = next((s for s in others if s.uid == ref_uid and not is_seg_series(s)), None)
    frames = _frame_sources(ds)
    if source is None:
        checks.append(Check("referenced_series", False, f"referenced series {ref_uid or '(none)'}"
                            " not found under the validated path; download it next to the SEG"))
    else:
        uids = {str(h.get("SOPInstanceUID", "")): h for h in source.headers}
        missing = sorted({sop for sop, _ in frames if sop is not None} - set(uids))
        checks.append(Check("referenced_series", not missing,
                            f"{len(missing)} referenced instance(s) missing from {source.folder}"
                            if missing else f"series {ref_uid} in {source.folder}"))
    seg_for = str(ds.get("FrameOfReferenceUID", "") or "")
    source_for = (str(source.headers[0].get("FrameOfReferenceUID", "") or "")
                  if source is not None else None)
    checks.append(Check("frame_of_reference", source_for is not None and seg_for == source_for,
                        f"SEG {seg_for or '(none)'} vs series {source_for or '(unknown)'}"))
    pixels = ds.pixel_array.reshape(len(frames), int(ds.Rows), int(ds.Columns))
    numbers = [int(item.SegmentNumber) for item in ds.get("SegmentSequence", ())]
    frame_segment = [int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
                     for item in ds.PerFrameFunctionalGroupsSequence]
    empty = [n for n in numbers
             if not any(pixels[i].any() for i, m in enumerate(frame_segment) if m == n)]
    checks.append(Check("segments_non_empty", not empty,
                        f"empty segment(s) {empty}" if empty else
                        f"{len(numbers)} segment(s), each with voxels"))
    problems = []
    if source is not None:
        rows, cols = int(source.headers[0].Rows), int(source.headers[0].Columns)
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            problems.append(f"frames are {ds.Rows} x {ds.Columns}, the series {rows} x {cols}")
        for k, (sop, position) in enumerate(frames, start=1):
            header = uids.get(sop or "")
            if header is None:
                problems.append(f"frame {k} derives from no instance of the series")
                continue
            expected = floats(header.get("ImagePositionPatient"), 3)
            if position is not None and expected is not None and not np.allclose(
                    position, expected, atol=POSITION_ATOL_MM):
                problems.append(f"frame {k} at {position} is off its instance's plane {expected}")
    else:
        problems.append("no referenced series to place the frames in")
    checks.append(Check("frames_inside", not problems, "; ".join(problems[:3]) if problems
                        else f"{len(frames)} frame(s) on the series' slices"))
    number = ds.get("SeriesNumber")
    return SeriesReport(series.folder, series.uid, "SEG", int(ds.get("NumberOfFrames", 1) or 1),
                        checks, None if number in (None, "") else str(number),
                        str(ds.get("SeriesDescription", "") or ""))
