"""The CT readiness checklist behind ``harmonize validate-dicom``.

Geometry items (``sortable``, ``uniform_spacing``, ``geometry``, ``single_series``) come from the
one DICOM verdict, :func:`harmonize.read.dicom.grid_problems`, that every reader refuses on, so
``validate-dicom`` and ``harmonize run`` agree on every folder. CT-only items are added on top:
modality, rescale tags, BitsStored, pixel spacing and thickness tags, slice count and PHI (a
single slice is a valid one-slice grid for reading and for ``uniform_spacing``; ``slice_count``
fails it for CT readiness). RTSTRUCT files get their own items
(:mod:`harmonize.qa.rtstruct_checklist`); a DICOM-SEG series gets the SEG items of
:mod:`harmonize.qa.dicom_seg_checks` instead (checked against the series it references).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmonize.errors import ReadError
from harmonize.plugin.case import Skipped
from harmonize.qa.dicom_seg_checks import check_seg_series, is_seg_series
from harmonize.read.dicom import (
    GEOMETRY_CODES,
    SORT_CODES,
    SPACING_CODES,
    Z_GAP_ATOL_MM,
    Z_GAP_RTOL,
    Series,
    grid_problems,
    present,
)
from harmonize.read.dicom_scan import walk_series

__all__ = ["CHECKS", "MIN_BITS_STORED", "MIN_SLICES", "PHI_TAGS", "Check", "SeriesReport",
           "ValidationReport", "check_series", "validate_dicom"]

#: The readiness checklist's minimum number of slices and BitsStored.
MIN_SLICES = 50
MIN_BITS_STORED = 12
#: Patient-identifying tags that must be empty in shareable data.
PHI_TAGS = ("PatientName", "PatientBirthDate", "OtherPatientNames", "PatientAddress",
            "PatientTelephoneNumbers")
#: Names of the checklist items, in report order.
CHECKS = ("modality", "rescale", "bits_stored", "pixel_spacing", "slice_thickness",
          "slice_count", "sortable", "uniform_spacing", "geometry", "single_series", "phi")


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
                "description": self.description, "modality": self.modality, "slices": self.slices,
                "status": "PASS" if self.passed else "FAIL",
                "checks": [c.to_dict() for c in self.checks]}


def _every(series: Series, keyword: str) -> tuple[bool, str]:
    missing = sum(not present(h, keyword) for h in series.headers)
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
    problems = grid_problems(series)

    def messages(codes: tuple[str, ...]) -> list[str]:
        return [p.message for p in problems if p.code in codes]

    sort_failures = messages(SORT_CODES)
    if sort_failures:
        checks.append(Check("sortable", False, "; ".join(sort_failures)))
    else:
        sort_detail = ("by ImagePositionPatient along the slice normal"
                       if series.sorted_by == "position" else "by InstanceNumber only")
        checks.append(Check("sortable", True, f"sorted {sort_detail}"))
    spacing_failures = messages(SPACING_CODES)
    if series.sorted_by is None:
        spacing_failures.append("slice positions unknown, so the spacing cannot be checked")
    gaps = series.gaps
    spacing_detail = (f"gaps {gaps.min():.4g}-{gaps.max():.4g} mm (tolerance "
                      f"max({Z_GAP_ATOL_MM} mm, {Z_GAP_RTOL:.0%} of the median))" if gaps.size
                      else "one slice position: no gap to check (slice_count judges the count)")
    checks.append(Check("uniform_spacing", not spacing_failures,
                        "; ".join(spacing_failures) or spacing_detail))
    geometry = messages(GEOMETRY_CODES)
    checks.append(Check("geometry", not geometry, "; ".join(geometry) or
                        "one grid: same size, orientation and pixel spacing; no gantry tilt"))
    checks.append(Check("single_series", series_in_folder == 1,
                        f"{series_in_folder} series in {series.folder}"
                        + ("" if series_in_folder == 1 else "; move each series to its own folder")))
    phi = [k for k in PHI_TAGS if any(present(h, k) for h in series.headers)]
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
    found: list[tuple[Series, int]] = []
    for scan in walk_series(path):
        skipped.extend(scan.skipped)
        found.extend((series, len(scan.series)) for series in scan.series)
    everything = [series for series, _ in found]
    for series, in_folder in found:
        if is_seg_series(series):  # a DICOM-SEG: checked against the series it segments
            reports.append(check_seg_series(series, everything))
        else:
            reports.append(check_series(series, series_in_folder=in_folder))
    from harmonize.qa.rtstruct_checklist import check_rtstruct
    from harmonize.read.rtstruct import is_rtstruct

    structures = [item for item in skipped if is_rtstruct(item.path)]
    reports += [check_rtstruct(item.path, everything) for item in structures]
    skipped = [item for item in skipped if item not in structures]
    return ValidationReport(path, reports, skipped)
