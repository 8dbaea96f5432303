"""Read DICOM RT Structure Sets: ROI contours rasterized onto the series they reference.

* :func:`read_structure_set` parses an RTSTRUCT file with pydicom (SOP Class UID
  :data:`RTSTRUCT_SOP_CLASS`): ROI numbers and names, their frame of reference, their contours
  (LPS mm), and the image series they reference (Series Instance UID and the SOP Instance UIDs of
  the contoured slices).
* :func:`referenced_series` finds exactly that series in a folder through the one DICOM series
  model (:mod:`harmonize.read.dicom_scan`); a missing series, another frame of reference or
  missing slices are a :class:`ReadError` naming the RTSTRUCT file.
* :func:`rasterize` fills one ROI on the series grid: points go world (LPS) -> RAS -> voxel with
  the series' affine; each CLOSED_PLANAR contour must lie on one slice (within
  :data:`SLICE_TOLERANCE` of the slice step, else refused); voxels whose centres lie inside the
  polygon or on its outline are set by :func:`harmonize.read.polygon.polygon_box` (the pixels
  ``skimage.draw.polygon`` gives, computed row by row), and the contours of one slice are
  combined by XOR (even-odd), so a contour inside another is a hole
  and separate contours add up, as the DICOM standard and dcmrtstruct2nii treat them. In-plane
  points outside the image are clipped (``harmonize validate-dicom`` reports them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.errors import ReadError
from harmonize.read.dicom import Series, grid_problems
from harmonize.read.dicom_scan import scan_dicom
from harmonize.read.polygon import polygon_box

__all__ = ["RTSTRUCT_SOP_CLASS", "SLICE_TOLERANCE", "Roi", "StructureSet", "contour_voxels",
           "is_rtstruct", "rasterize", "read_structure_set", "referenced_series"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
#: A contour is on slice k when every point is within this fraction of the slice step of it.
SLICE_TOLERANCE = 0.1


def _dcmread(path: Path, **kwargs: Any) -> Any:
    import pydicom

    try:
        return pydicom.dcmread(path, **kwargs)
    except pydicom.errors.InvalidDicomError:
        return pydicom.dcmread(path, force=True, **kwargs)


def is_rtstruct(path: Path) -> bool:
    """True when ``path`` is a file holding a DICOM RT Structure Set (header tags only)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:  # a Part 10 file has "DICM" at byte 128; older files without it must be named .dcm
        with path.open("rb") as fh:
            marked = fh.read(132)[128:] == b"DICM"
    except OSError:
        return False
    if not marked and path.suffix.lower() != ".dcm":
        return False
    try:
        ds = _dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
    except Exception:  # noqa: BLE001 - not DICOM at all
        return False
    return str(ds.get("SOPClassUID", "")) == RTSTRUCT_SOP_CLASS or ds.get("Modality") == "RTSTRUCT"


@dataclass(frozen=True)
class Roi:
    """One ROI: number, name, frame of reference and contours ``(kind, (N, 3) LPS mm points)``."""

    number: int
    name: str
    frame_of_reference: str | None
    contours: tuple[tuple[str, np.ndarray], ...] = field(repr=False)

    @property
    def closed(self) -> list[np.ndarray]:
        """Points of the CLOSED_PLANAR contours (the ones with an area)."""
        return [points for kind, points in self.contours if kind == "CLOSED_PLANAR"]


@dataclass(frozen=True)
class StructureSet:
    """An RTSTRUCT file: its ROIs in file order and the image series it references."""

    path: Path
    frame_of_reference: str | None
    series_uid: str | None
    referenced_sops: frozenset[str]
    rois: tuple[Roi, ...]

    @property
    def roi_names(self) -> list[str]:
        return [roi.name for roi in self.rois]


def _contour_data(contour: Any) -> np.ndarray:
    """ContourData as floats; the raw ``DS`` bytes are parsed by numpy when still unconverted
    (pydicom's per-value DS objects are ~10x slower on large structure sets)."""
    if "ContourData" not in contour:
        return np.zeros(0)
    raw = contour.get_item("ContourData").value
    if isinstance(raw, bytes):
        try:
            return np.array(raw.strip(b" \0").split(b"\\"), dtype="S").astype(float)
        except ValueError:
            pass
    return np.asarray([float(v) for v in contour.ContourData], dtype=float)


#: the attributes read by ``read_structure_set(..., contours=False)``
_HEADER_TAGS = ["SOPClassUID", "Modality", "StructureSetROISequence",
                "ReferencedFrameOfReferenceSequence"]


def read_structure_set(path: Path, *, contours: bool = True) -> StructureSet:
    """Parse ``path`` (see the module doc); :class:`ReadError` naming it when it is not an
    RTSTRUCT or cannot be read. ``contours=False`` reads the ROI names and references only
    (the ROIs then have no contours; for discovery)."""
    path = Path(path)
    try:
        ds = _dcmread(path, **({} if contours else {"specific_tags": _HEADER_TAGS}))
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt files raise many types
        raise ReadError(f"cannot read RTSTRUCT: {type(exc).__name__}: {exc}", file=path,
                        hint="re-download the file; it may be truncated") from exc
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_SOP_CLASS and ds.get("Modality") != "RTSTRUCT":
        raise ReadError(f"not a DICOM RT Structure Set (SOP Class {ds.get('SOPClassUID')}, "
                        f"Modality {ds.get('Modality')})", file=path,
                        hint="point the label at the RTSTRUCT file of the case")
    frames: dict[str, str | None] = {}
    for item in ds.get("StructureSetROISequence", []):
        frame = item.get("ReferencedFrameOfReferenceUID")
        frames[str(item.ROINumber)] = str(frame) if frame else None
    names = {str(i.ROINumber): str(i.get("ROIName", "") or "").strip()
             for i in ds.get("StructureSetROISequence", [])}
    rois = []
    for item in ds.get("ROIContourSequence", []):
        number = str(item.get("ReferencedROINumber"))
        items = []
        for contour in item.get("ContourSequence", []):
            data = _contour_data(contour)
            if data.size % 3:
                raise ReadError(f"ROI {names.get(number)!r}: ContourData holds {data.size} values, "
                                "not x, y, z triples", file=path, hint="the file is damaged")
            kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
            items.append((kind, data.reshape(-1, 3)))
        rois.append(Roi(int(number), names.get(number, f"ROI {number}"), frames.get(number),
                        tuple(items)))
    listed = {r.number for r in rois}
    rois += [Roi(int(n), name, frames.get(n), ()) for n, name in names.items()
             if int(n) not in listed]
    series_uid, sops = None, set()
    frame_uid = None
    for ref in ds.get("ReferencedFrameOfReferenceSequence", []):
        frame_uid = frame_uid or (str(ref.FrameOfReferenceUID)
                                  if ref.get("FrameOfReferenceUID") else None)
        for study in ref.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                series_uid = series_uid or str(series.get("SeriesInstanceUID", "") or "") or None
                sops |= {str(i.ReferencedSOPInstanceUID)
                         for i in series.get("ContourImageSequence", [])}
    for item in ds.get("ROIContourSequence", []):
        for contour in item.get("ContourSequence", []):
            sops |= {str(i.ReferencedSOPInstanceUID) for i in contour.get("ContourImageSequence", [])}
    frame_uid = frame_uid or next((f for f in frames.values() if f), None)
    return StructureSet(path, frame_uid, series_uid, frozenset(sops), tuple(rois))


def referenced_series(structure: StructureSet, folder: Path) -> Series:
    """The series of ``folder`` that ``structure`` references: by Series Instance UID (or, when
    the file names none, the series holding its referenced slices), in its frame of reference,
    with every referenced slice present and one regular grid. :class:`ReadError` naming the
    RTSTRUCT file otherwise."""
    scan = scan_dicom(Path(folder))
    found = [s for s in scan.series if structure.series_uid and s.uid == structure.series_uid]
    if not found and structure.series_uid is None and structure.referenced_sops:
        found = [s for s in scan.series
                 if structure.referenced_sops & {str(h.get("SOPInstanceUID")) for h in s.headers}]
    if not found:
        there = ", ".join(f"{s.uid} ({s.n_slices} slices)" for s in scan.series) or "none"
        raise ReadError(f"the RTSTRUCT references series {structure.series_uid} (frame of "
                        f"reference {structure.frame_of_reference}), which is not in {folder} "
                        f"(series there: {there})", file=structure.path,
                        hint="download the CT/MR series the structure set was drawn on, or "
                        "point the case's image at its folder")
    series = found[0]
    frames = {str(h.get("FrameOfReferenceUID", "") or "") for h in series.headers}
    wanted = {r.frame_of_reference for r in structure.rois if r.frame_of_reference}
    wanted |= {structure.frame_of_reference} if structure.frame_of_reference else set()
    if wanted and frames != wanted:
        raise ReadError(f"frame of reference differs: RTSTRUCT {sorted(wanted)}, series "
                        f"{series.uid} {sorted(frames)}", file=structure.path,
                        hint="the contours are not in the image's coordinate system; use the "
                        "series the structure set was drawn on")
    present = {str(h.get("SOPInstanceUID")) for h in series.headers}
    missing = structure.referenced_sops - present
    if missing:
        raise ReadError(f"{len(missing)} slice(s) the RTSTRUCT references are missing from "
                        f"series {series.uid} in {folder} (e.g. {sorted(missing)[0]})",
                        file=structure.path, hint="re-download the complete series")
    from harmonize.read.dicom_volume import refuse

    refuse(series, grid_problems(series))
    return series


def contour_voxels(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(N, 3) LPS mm points as (N, 3) continuous voxel indices of the grid ``affine`` (RAS)."""
    ras = np.asarray(points, dtype=float) * np.array([-1.0, -1.0, 1.0])
    homogeneous = np.c_[ras, np.ones(len(ras))]
    return (np.linalg.solve(affine, homogeneous.T).T)[:, :3]


def rasterize(roi: Roi, affine: np.ndarray, shape: Sequence[int], *, file: Path | None = None
              ) -> np.ndarray:
    """Boolean (X, Y, Z) mask of ``roi``'s closed contours on the grid (``affine``, ``shape``).

    A contour off every slice (by more than :data:`SLICE_TOLERANCE` of the slice step), or on a
    slice outside the grid, is a :class:`ReadError` naming ``file``, the ROI and the position.
    """
    nx, ny, nz = (int(s) for s in shape[:3])
    planes: dict[int, np.ndarray] = {}  # slice -> its (X, Y) plane, contiguous while filled
    for points in roi.closed:
        if len(points) < 3:
            continue
        vox = contour_voxels(points, affine)
        k = float(np.median(vox[:, 2]))
        slice_k = int(round(k))
        off = float(np.max(np.abs(vox[:, 2] - slice_k)))
        if off > SLICE_TOLERANCE or not 0 <= slice_k < nz:
            step = float(np.linalg.norm(affine[:3, 2]))
            where = ("is not on a slice of the image" if off > SLICE_TOLERANCE
                     else f"lies on slice {slice_k}, outside the image's {nz} slices")
            raise ReadError(f"ROI {roi.name!r}: a contour at z = {points[0][2]:.4g} mm {where} "
                            f"(off by {off * step:.3g} mm; tolerance {SLICE_TOLERANCE * step:.3g} "
                            "mm)", file=file, hint="the structure set was drawn on another "
                            "series or slices are missing; run `harmonize validate-dicom`")
        box = polygon_box(vox[:, 0], vox[:, 1], (nx, ny))
        if box is not None:
            (x0, y0), inside = box
            plane = planes.setdefault(slice_k, np.zeros((nx, ny), dtype=bool))
            plane[x0:x0 + inside.shape[0], y0:y0 + inside.shape[1]] ^= inside
    mask = np.zeros((nx, ny, nz), dtype=bool)
    for slice_k, plane in planes.items():
        mask[:, :, slice_k] = plane
    return mask
