"""DICOM series: find them in folders, sort their slices, read them as volumes, check CT readiness.

* :func:`scan_dicom` reads the headers (no pixels) of every file in one folder with pydicom and
  groups the images by ``SeriesInstanceUID``; files that are not DICOM images are listed as
  :class:`~harmonize.manifest.records.Skipped` with the reason. :func:`group_series` returns only the
  series, :func:`walk_series` does the same for every folder under a root.
* A :class:`Series` has its slices sorted by ``ImagePositionPatient`` projected on the slice
  normal (the cross product of the two ``ImageOrientationPatient`` vectors), or by
  ``InstanceNumber`` when positions are missing.
* :func:`read_series` decodes the slices with SimpleITK (GDCM: every transfer syntax it knows,
  ``RescaleSlope``/``RescaleIntercept`` of each slice applied) and builds the RAS affine from the
  DICOM geometry itself (origin = first slice's position, in-plane axes from
  ``ImageOrientationPatient`` and ``PixelSpacing``, slice step = median gap along the normal).
* :func:`check_series` is the CT readiness checklist (``harmonize validate-dicom``).

Slice gaps count as uniform when every gap is within ``max(Z_GAP_ATOL_MM, Z_GAP_RTOL * median)``
of the median gap: 0.01 mm or 1 %, which passes coordinate round-off and catches a missing slice
(a 100 % gap error) or two interleaved reconstructions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.errors import ReadError
from harmonize.manifest.records import Skipped
from harmonize.read.volume import Volume

#: Absolute and relative tolerance of the slice-gap uniformity check (see the module doc).
Z_GAP_ATOL_MM = 0.01
Z_GAP_RTOL = 0.01
#: Largest angle between the slice stacking direction and the slice normal (gantry tilt).
TILT_TOLERANCE_DEG = 0.5
#: ImageOrientationPatient and PixelSpacing of all slices must agree to this tolerance.
GEOMETRY_ATOL = 1e-4
#: The readiness checklist's minimum number of slices and BitsStored.
MIN_SLICES = 50
MIN_BITS_STORED = 12
#: Patient-identifying tags that must be empty in shareable data.
PHI_TAGS = ("PatientName", "PatientBirthDate", "OtherPatientNames", "PatientAddress",
            "PatientTelephoneNumbers")
#: Names of the checklist items, in report order.
CHECKS = ("modality", "rescale", "bits_stored", "pixel_spacing", "slice_thickness",
          "slice_count", "sortable", "uniform_spacing", "geometry", "single_series", "phi")

_HEADER_ONLY_NAMES = {"DICOMDIR"}


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    """``value`` as ``n`` floats, or ``None`` when it is missing or malformed."""
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _present(header: Any, keyword: str) -> bool:
    """True when ``keyword`` is in ``header`` with a non-empty value."""
    value = header.get(keyword)
    return value is not None and str(value).strip() != ""


@dataclass
class Series:
    """One DICOM series: its slice files in reading order and their headers (no pixel data).

    ``sorted_by`` is ``"position"`` (``ImagePositionPatient`` projected on the slice normal,
    ascending), ``"instance"`` (``InstanceNumber``) or ``None`` (not sortable: ``sort_problem``
    says why; files then keep name order). ``positions`` are the projected positions in mm, in
    reading order, when every slice has a position and they share one orientation.
    """

    uid: str | None
    folder: Path
    files: tuple[Path, ...]
    headers: tuple[Any, ...] = field(repr=False)
    sorted_by: str | None = None
    sort_problem: str | None = None
    positions: tuple[float, ...] | None = None

    @property
    def n_slices(self) -> int:
        return len(self.files)

    @property
    def modality(self) -> str | None:
        value = self.headers[0].get("Modality") if self.headers else None
        return str(value) if value else None

    @property
    def description(self) -> str:
        return str(self.headers[0].get("SeriesDescription", "") or "") if self.headers else ""

    @property
    def gaps(self) -> np.ndarray:
        """Distances (mm) between consecutive slices along the normal (empty if unknown)."""
        if self.positions is None or len(self.positions) < 2:
            return np.zeros(0)
        return np.diff(np.asarray(self.positions, dtype=float))

    def geometry_problems(self) -> list[str]:
        """Reasons why the slices do not form one regular grid (empty list = they do)."""
        problems = []
        frames = [int(h.get("NumberOfFrames", 1) or 1) for h in self.headers]
        if max(frames) > 1:
            problems.append(f"multi-frame image ({max(frames)} frames in one file) is not supported")
        sizes = {(int(h.get("Rows", 0) or 0), int(h.get("Columns", 0) or 0)) for h in self.headers}
        if len(sizes) > 1:
            problems.append(f"slices have different Rows x Columns: {sorted(sizes)}")
        orients = [_floats(h.get("ImageOrientationPatient"), 6) for h in self.headers]
        known_orients = [o for o in orients if o is not None]
        if len(known_orients) < len(orients):
            missing = len(orients) - len(known_orients)
            problems.append(f"{missing} slice(s) lack ImageOrientationPatient")
        elif not np.allclose(known_orients, known_orients[0], atol=GEOMETRY_ATOL):
            problems.append("slices have different ImageOrientationPatient")
        spacings = [_floats(h.get("PixelSpacing"), 2) for h in self.headers]
        known_spacings = [s for s in spacings if s is not None]
        if len(known_spacings) == len(spacings) and not np.allclose(
            known_spacings, known_spacings[0], atol=GEOMETRY_ATOL
        ):
            problems.append("slices have different PixelSpacing")
        tilt = self.tilt_degrees()
        if tilt is not None and tilt > TILT_TOLERANCE_DEG:
            problems.append(f"slices are stacked {tilt:.2f} degrees off their normal "
                            "(gantry tilt)")
        return problems

    def tilt_degrees(self) -> float | None:
        """Angle between the first-to-last slice offset and the slice normal, if known."""
        if self.sorted_by != "position" or self.n_slices < 2:
            return None
        first = _floats(self.headers[0].get("ImagePositionPatient"), 3)
        last = _floats(self.headers[-1].get("ImagePositionPatient"), 3)
        normal = _normal(self.headers[0])
        if first is None or last is None or normal is None:
            return None
        offset = np.subtract(last, first)
        length = float(np.linalg.norm(offset))
        if length == 0:
            return None
        cos = min(1.0, abs(float(offset @ normal)) / length)
        return float(np.degrees(np.arccos(cos)))

    def gap_problem(self) -> str | None:
        """Why the slice gaps are not uniform, or ``None`` when they are (see module doc)."""
        if self.positions is None:
            return "slice positions unknown (ImagePositionPatient/ImageOrientationPatient missing)"
        gaps = self.gaps
        if gaps.size == 0:
            return "a single slice has no slice spacing"
        median = float(np.median(gaps))
        tolerance = max(Z_GAP_ATOL_MM, Z_GAP_RTOL * median)
        worst = int(np.argmax(np.abs(gaps - median)))
        if abs(float(gaps[worst]) - median) > tolerance:
            return (f"gap {gaps[worst]:.4g} mm between slices {worst} and {worst + 1} differs from "
                    f"the median {median:.4g} mm by more than {tolerance:.3g} mm "
                    f"(gaps range {gaps.min():.4g}-{gaps.max():.4g} mm)")
        return None

    def affine(self) -> np.ndarray:
        """RAS voxel-to-world affine of the (X = columns, Y = rows, Z = slices) array.

        Raises :class:`ReadError` when the slices do not define one regular grid.
        """
        problems = [p for p in (self.sort_problem,) if p] + self.geometry_problems()
        if self.sorted_by != "position":
            problems.append("slices have no ImagePositionPatient/ImageOrientationPatient, so "
                            "their place in space is unknown")
        gap_problem = self.gap_problem() if self.n_slices > 1 else None
        if gap_problem:
            problems.append(gap_problem)
        if problems:
            raise ReadError(
                "DICOM series is not one regular 3D grid: " + "; ".join(problems),
                file=self.folder,
                hint="run `harmonize validate-dicom` on the folder; re-export the series or "
                "convert it with dcm2niix (it corrects gantry tilt and reports missing slices)",
            )
        first = self.headers[0]
        iop = _floats(first.get("ImageOrientationPatient"), 6)
        spacing = _floats(first.get("PixelSpacing"), 2)
        origin = _floats(first.get("ImagePositionPatient"), 3)
        assert iop is not None and origin is not None
        if spacing is None:
            raise ReadError("DICOM slices lack PixelSpacing", file=self.files[0],
                            hint="the in-plane voxel size is unknown; fix the export")
        row_dir, col_dir = np.asarray(iop[:3]), np.asarray(iop[3:])
        normal = np.cross(row_dir, col_dir)
        if self.n_slices > 1:
            step = float(np.median(self.gaps))
        else:
            thickness = first.get("SpacingBetweenSlices") or first.get("SliceThickness")
            step = float(thickness) if thickness else 1.0
        lps = np.eye(4)
        lps[:3, 0] = row_dir * spacing[1]  # along a row: column index grows
        lps[:3, 1] = col_dir * spacing[0]  # along a column: row index grows
        lps[:3, 2] = normal * step
        lps[:3, 3] = origin
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps

    def read(self, kind: str = "image") -> Volume:
        """The series as a :class:`Volume` (see :func:`read_series`)."""
        return read_series(self, kind=kind)


def _normal(header: Any) -> np.ndarray | None:
    iop = _floats(header.get("ImageOrientationPatient"), 6)
    if iop is None:
        return None
    normal = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
    norm = float(np.linalg.norm(normal))
    return normal / norm if norm > 0 else None


def sort_slices(folder: Path, uid: str | None, items: Sequence[tuple[Path, Any]]) -> Series:
    """A :class:`Series` of ``items`` (path, header) in reading order (see :class:`Series`)."""
    items = sorted(items, key=lambda item: item[0].name)
    headers = [h for _, h in items]
    normal = _normal(headers[0])
    positions = [_floats(h.get("ImagePositionPatient"), 3) for h in headers]
    orients = [_floats(h.get("ImageOrientationPatient"), 6) for h in headers]
    known_positions = [p for p in positions if p is not None]
    first_orient = orients[0]
    problem = None
    if normal is not None and len(known_positions) == len(positions) and all(
        o is not None and first_orient is not None
        and np.allclose(o, first_orient, atol=GEOMETRY_ATOL) for o in orients
    ):
        projected = [float(np.dot(p, normal)) for p in known_positions]
        order = sorted(range(len(items)), key=lambda i: (projected[i], items[i][0].name))
        ordered = [projected[i] for i in order]
        dupes = int(np.count_nonzero(np.diff(ordered) <= GEOMETRY_ATOL)) if len(ordered) > 1 else 0
        if not dupes:
            return Series(uid, folder, tuple(items[i][0] for i in order),
                          tuple(headers[i] for i in order), "position", None, tuple(ordered))
        problem = (f"{dupes} slice(s) share a position with another slice "
                   "(duplicates, or several phases/reconstructions in one series)")
    instances = [h.get("InstanceNumber") for h in headers]
    if problem is None and all(v is not None and str(v).strip() != "" for v in instances):
        numbers = [int(v) for v in instances]
        if len(set(numbers)) == len(numbers):
            order = sorted(range(len(items)), key=lambda i: numbers[i])
            return Series(uid, folder, tuple(items[i][0] for i in order),
                          tuple(headers[i] for i in order), "instance", None, None)
        problem = "InstanceNumber values repeat and positions are missing"
    elif problem is None:
        problem = "neither ImagePositionPatient + ImageOrientationPatient nor InstanceNumber " \
                  "on every slice"
    return Series(uid, folder, tuple(p for p, _ in items), tuple(headers), None, problem, None)


@dataclass
class DicomScan:
    """What :func:`scan_dicom` found in one folder: the series and the files it did not take."""

    folder: Path
    series: list[Series]
    skipped: list[Skipped]


def _read_header(path: Path) -> tuple[Any | None, str | None]:
    """(pydicom dataset without pixels, None) or (None, reason it is not a DICOM image)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if path.name.upper() in _HEADER_ONLY_NAMES:
        return None, "DICOMDIR index file (not an image)"
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        try:  # old files without the 128-byte preamble and "DICM" marker
            header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - any parse failure means "not DICOM"
            return None, "not a DICOM file"
        if "SOPClassUID" not in header and "SeriesInstanceUID" not in header:
            return None, "not a DICOM file"
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt files raise many types
        return None, f"unreadable DICOM file: {type(exc).__name__}: {exc}"
    if "Rows" not in header or "Columns" not in header:
        modality = header.get("Modality", "unknown modality")
        return None, f"DICOM object without an image (Modality {modality})"
    return header, None


def scan_dicom(folder: Path) -> DicomScan:
    """Read every file in ``folder`` (not its subfolders) and group the images by series.

    Series come ordered by ``SeriesNumber`` then UID; a file without ``SeriesInstanceUID`` joins
    the series with ``uid=None``. Raises :class:`ReadError` when ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReadError("not a folder", file=folder,
                        hint="give the folder that holds the series' .dcm files")
    groups: dict[str | None, list[tuple[Path, Any]]] = {}
    skipped: list[Skipped] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        header, reason = _read_header(path)
        if header is None:
            skipped.append(Skipped(path, reason or "not a DICOM image",
                                   hint="remove the file from the series folder if it is not needed"))
            continue
        uid = str(header.SeriesInstanceUID) if _present(header, "SeriesInstanceUID") else None
        groups.setdefault(uid, []).append((path, header))
    series = [sort_slices(folder, uid, items) for uid, items in groups.items()]

    def order(s: Series) -> tuple[int, str]:
        number = s.headers[0].get("SeriesNumber")
        try:
            return (int(number), s.uid or "")
        except (TypeError, ValueError):
            return (1 << 30, s.uid or "")

    return DicomScan(folder, sorted(series, key=order), skipped)


def group_series(folder: Path) -> list[Series]:
    """The DICOM image series in ``folder``, each with its slices in reading order.

    Non-DICOM files are left out; use :func:`scan_dicom` to see them with the reason.
    """
    return scan_dicom(folder).series


def walk_series(root: Path) -> Iterator[DicomScan]:
    """:func:`scan_dicom` of ``root`` and every folder below it that holds at least one file."""
    root = Path(root)
    if root.is_file():
        header, reason = _read_header(root)
        if header is None:
            yield DicomScan(root.parent, [], [Skipped(root, reason or "not a DICOM image")])
        else:
            uid = str(header.SeriesInstanceUID) if _present(header, "SeriesInstanceUID") else None
            yield DicomScan(root.parent, [sort_slices(root.parent, uid, [(root, header)])], [])
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if filenames:
            yield scan_dicom(Path(dirpath))


def read_series(series: Series, kind: str = "image") -> Volume:
    """Decode ``series`` into a :class:`Volume` (X = columns, Y = rows, Z = slices in order).

    Each slice's RescaleSlope/RescaleIntercept is applied (GDCM); integer results stay integer,
    others become float32. Raises :class:`ReadError` naming the folder when the slices do not form
    one regular grid (unsortable, mixed geometry, non-uniform gaps, gantry tilt, multi-frame).
    """
    import SimpleITK as sitk

    affine = series.affine()
    rows, cols = int(series.headers[0].Rows), int(series.headers[0].Columns)
    data: np.ndarray | None = None
    for k, path in enumerate(series.files):
        try:
            plane = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        except RuntimeError as exc:
            raise ReadError(f"cannot decode DICOM slice: {exc}", file=path,
                            hint="the file may be truncated or use an unsupported compression") from exc
        plane = plane.reshape(plane.shape[-2:]) if plane.ndim == 3 and plane.shape[0] == 1 else plane
        if plane.shape != (rows, cols):
            raise ReadError(f"slice has shape {plane.shape}, expected {(rows, cols)}", file=path,
                            hint="colour or multi-frame slices cannot be stacked into a volume")
        if plane.dtype.kind == "f":
            plane = plane.astype(np.float32)
        if data is None:
            data = np.empty((cols, rows, series.n_slices), dtype=plane.dtype, order="F")
        elif plane.dtype != data.dtype:  # slices rescaled differently: widen once
            wider = (np.dtype(np.float32) if "f" in (plane.dtype.kind, data.dtype.kind)
                     else np.result_type(data.dtype, plane.dtype))
            if wider != data.dtype:
                data = data.astype(wider, order="F")
        data[:, :, k] = plane.T
    assert data is not None
    return Volume(data=data, affine=affine, kind="label" if kind == "label" else "image")


# --------------------------------------------------------------------------- readiness checklist


@dataclass(frozen=True)
class Check:
    """One checklist item for one series."""

    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "status": "PASS" if self.passed else "FAIL",
                "detail": self.detail}


@dataclass
class SeriesReport:
    """The readiness checklist of one series."""

    folder: Path
    uid: str | None
    modality: str | None
    slices: int
    checks: list[Check]
    number: str | None = None
    description: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "series_uid": self.uid, "series_number": self.number,
                "description": self.description, "modality": self.modality, "slices": self.slices, "status": "PASS" if self.passed else "FAIL",
                "checks": [c.to_dict() for c in self.checks]}


def _every(series: Series, keyword: str) -> tuple[bool, str]:
    missing = sum(not _present(h, keyword) for h in series.headers)
    if missing:
        return False, f"{keyword} missing in {missing} of {series.n_slices} slice(s)"
    return True, f"{keyword} present in every slice"


def check_series(series: Series, *, series_in_folder: int = 1) -> SeriesReport:
    """Run the CT readiness checklist (:data:`CHECKS`) on one series.

    ``series_in_folder`` is how many series share its folder (more than one fails
    ``single_series``). PHI values are never echoed, only the tag names.
    """
    checks: list[Check] = []
    modality = series.modality
    found = sorted({str(h.get("Modality") or "missing") for h in series.headers})
    checks.append(Check("modality", found == ["CT"], f"Modality is {' / '.join(found) or 'missing'}"
                        + ("" if found == ["CT"] else "; the checklist is for CT (every slice)")))
    ok_slope, d_slope = _every(series, "RescaleSlope")
    ok_inter, d_inter = _every(series, "RescaleIntercept")
    checks.append(Check("rescale", ok_slope and ok_inter, f"{d_slope}; {d_inter}"
                        + ("" if ok_slope and ok_inter else "; HU cannot be recovered")))
    bits = sorted({int(h.get("BitsStored") or 0) for h in series.headers})
    checks.append(Check("bits_stored", bits[0] >= MIN_BITS_STORED,
                        f"BitsStored {', '.join(map(str, bits))} (needs >= {MIN_BITS_STORED}; "
                        "0 = missing)"))
    for name, keyword in (("pixel_spacing", "PixelSpacing"), ("slice_thickness", "SliceThickness")):
        ok, detail = _every(series, keyword)
        checks.append(Check(name, ok, detail))
    checks.append(Check("slice_count", series.n_slices >= MIN_SLICES,
                        f"{series.n_slices} slice(s) (needs >= {MIN_SLICES})"))
    if series.sorted_by:
        sort_detail = ("by ImagePositionPatient along the slice normal"
                       if series.sorted_by == "position" else "by InstanceNumber only")
        checks.append(Check("sortable", True, f"sorted {sort_detail}"))
    else:
        checks.append(Check("sortable", False, series.sort_problem or "not sortable"))
    gap_problem = series.gap_problem()
    gaps = series.gaps
    checks.append(Check(
        "uniform_spacing", gap_problem is None,
        gap_problem or f"gaps {gaps.min():.4g}-{gaps.max():.4g} mm (tolerance "
        f"max({Z_GAP_ATOL_MM} mm, {Z_GAP_RTOL:.0%} of the median))",
    ))
    geometry = series.geometry_problems()
    checks.append(Check("geometry", not geometry, "; ".join(geometry) or
                        "one grid: same size, orientation and pixel spacing; no gantry tilt"))
    checks.append(Check("single_series", series_in_folder == 1,
                        f"{series_in_folder} series in {series.folder}"
                        + ("" if series_in_folder == 1 else "; move each series to its own folder")))
    phi = [k for k in PHI_TAGS if any(_present(h, k) for h in series.headers)]
    checks.append(Check(
        "phi", not phi,
        f"non-empty {', '.join(phi)} (values not shown): de-identify the series, or blank the "
        "tags if they hold pseudonyms" if phi else f"{', '.join(PHI_TAGS)} empty or absent",
    ))
    number = series.headers[0].get("SeriesNumber") if series.headers else None
    return SeriesReport(series.folder, series.uid, modality, series.n_slices, checks,
                        None if number in (None, "") else str(number), series.description)


@dataclass
class ValidationReport:
    """Every series found under a path, with its checklist, and every file left out."""

    path: Path
    series: list[SeriesReport]
    skipped: list[Skipped]

    @property
    def passed(self) -> bool:
        return bool(self.series) and all(s.passed for s in self.series)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "status": "PASS" if self.passed else "FAIL",
                "series": [s.to_dict() for s in self.series],
                "skipped": [s.to_dict() for s in self.skipped]}


def validate_dicom(path: Path) -> ValidationReport:
    """The readiness checklist for every series in ``path`` and the folders below it."""
    path = Path(path)
    if not path.exists():
        raise ReadError("path does not exist", file=path, hint="check the DICOM folder's path")
    reports: list[SeriesReport] = []
    skipped: list[Skipped] = []
    for scan in walk_series(path):
        skipped.extend(scan.skipped)
        for series in scan.series:
            reports.append(check_series(series, series_in_folder=len(scan.series)))
    return ValidationReport(path, reports, skipped)
