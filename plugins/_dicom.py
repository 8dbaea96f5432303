"""Slice tables of DICOM series, shared by the DICOM-based plugins (CHAOS, Pancreas-CT, LIDC-IDRI).

The core reads a DICOM folder through its one series model (:mod:`harmonize.read.dicom`): the one
series in the folder, slices ordered by position along the slice normal, voxels indexed (X, Y, Z)
with X = DICOM column, Y = DICOM row and Z = that order. Labels released as one 2D item per slice
(a PNG per slice, a NIfTI slice per instance, an XML contour per SOP instance) must land on the
same Z. :func:`read_series` takes the series from that same model (same order, same affine, same
verdict: an irregular series is refused here too, because a per-slice label cannot follow an
interpolated image) and gives each file its Z index, so a label reader only says *which file* a
2D label belongs to and :meth:`DicomSeries.paste` does the rest. Headers only: no pixel data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmonize.plugin import LabelError, ReadError, Volume, read_dicom_header, regular_series

# DICOM keywords of the tags plugins read with :func:`read_tags`
MODALITY = "Modality"
SERIES_UID = "SeriesInstanceUID"
SOP_UID = "SOPInstanceUID"
INSTANCE = "InstanceNumber"
POSITION = "ImagePositionPatient"
ORIENTATION = "ImageOrientationPatient"
PIXEL_SPACING = "PixelSpacing"
ROWS = "Rows"
COLUMNS = "Columns"


@dataclass(frozen=True)
class DicomSlice:
    """One file of a series: its Z index in the volume the core reads and its geometry (LPS mm)."""

    path: Path
    index: int
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    instance: int | None
    sop_uid: str
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]  # (between rows, between columns), as DICOM stores it


@dataclass(frozen=True)
class DicomSeries:
    """The one series in ``folder``, slices in the core's Z order."""

    folder: Path
    slices: tuple[DicomSlice, ...]
    series_uid: str
    modality: str
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))  # the model's RAS affine

    @property
    def shape(self) -> tuple[int, int, int]:
        """(X, Y, Z) = (columns, rows, slices), the shape of the volume the core reads."""
        first = self.slices[0]
        return (first.columns, first.rows, len(self.slices))

    def by_name(self) -> list[DicomSlice]:
        """Slices in file-name order (Python string order, as ``sorted(glob(...))`` gives)."""
        return sorted(self.slices, key=lambda s: s.path.name)

    def by_instance(self) -> list[DicomSlice]:
        """Slices in InstanceNumber order; a missing or repeated number is a :class:`ReadError`."""
        numbers = [s.instance for s in self.slices]
        if any(n is None for n in numbers) or len(set(numbers)) != len(numbers):
            raise ReadError(
                "InstanceNumber is missing or repeated in the series, so slices cannot be put "
                "in instance order", file=self.folder,
                hint="check the folder holds one complete series as downloaded",
            )
        return sorted(self.slices, key=lambda s: s.instance or 0)

    def by_position(self) -> list[DicomSlice]:
        """Slices in ascending order of the patient coordinate (LPS) that varies most across the
        series (z for axial scans): the order dicom2nifti gives, on which nnU-Net's conversions
        rely."""
        positions = np.asarray([s.position for s in self.slices], dtype=float)
        axis = int(np.argmax(np.ptp(positions, axis=0))) if len(self.slices) > 1 else 2
        return sorted(self.slices, key=lambda s: s.position[axis])

    def by_sop_uid(self) -> dict[str, DicomSlice]:
        return {s.sop_uid: s for s in self.slices}

    def paste(self, planes: Iterable[tuple[DicomSlice, np.ndarray]], *, dtype: type = np.uint8,
              file: Path | None = None) -> Volume:
        """A label :class:`Volume` on the series' grid from ``(slice, plane)`` pairs, each plane a
        (rows, columns) array as the DICOM pixel data is stored; unlisted slices stay 0."""
        data: np.ndarray = np.zeros(self.shape, dtype=dtype)
        for item, plane in planes:
            plane = np.asarray(plane)
            if plane.shape != (item.rows, item.columns):
                raise LabelError(
                    f"2D label of shape {plane.shape} for a slice of {item.rows} rows x "
                    f"{item.columns} columns ({item.path.name})", file=file,
                    hint="the label does not belong to this series",
                )
            data[:, :, item.index] = plane.T
        return Volume(data=data, affine=self.affine, kind="label")


def _tag(value: object, n: int, tag: str, path: Path) -> tuple[float, ...]:
    """``value`` (a pydicom multi-value) as ``n`` finite floats, or a :class:`ReadError`."""
    try:
        values: tuple[float, ...] | None = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        values = None
    if values is None or len(values) != n or not all(np.isfinite(values)):
        raise ReadError(f"DICOM tag {tag} is missing or malformed", file=path,
                        hint="the file is not a usable image slice; re-download the series")
    return values


def read_tags(path: Path, tags: Iterable[str]) -> dict[str, str]:
    """The requested tags (DICOM keywords) of one DICOM file as text, header only; absent tags
    are left out; multi-valued tags are joined with a backslash, as DICOM stores them."""
    header, reason = read_dicom_header(Path(path))
    if header is None:
        raise ReadError(f"cannot read DICOM header: {reason}", file=path, hint="re-download the file")
    out = {}
    for tag in tags:
        value = header.get(tag)
        if value is None or str(value).strip() == "":
            continue
        is_multi = isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"
        out[tag] = "\\".join(str(v) for v in value) if is_multi else str(value).strip()
    return out


def read_series(folder: Path) -> DicomSeries:
    """Headers of the one series in ``folder``, in the core's Z order (refused like the core
    refuses it: mixed series, irregular gaps, duplicates, tilt, ...)."""
    folder = Path(folder)
    series = regular_series(folder)
    slices = []
    for index, (path, header) in enumerate(zip(series.files, series.headers)):
        instance = header.get("InstanceNumber")
        try:
            number: int | None = int(float(instance)) if instance not in (None, "") else None
        except (TypeError, ValueError):
            number = None
        slices.append(DicomSlice(
            path=path,
            index=index,
            position=_tag(header.get(POSITION), 3, POSITION, path),  # type: ignore[arg-type]
            orientation=_tag(header.get(ORIENTATION), 6, ORIENTATION, path),
            instance=number,
            sop_uid=str(header.get(SOP_UID, "") or ""),
            rows=int(header.get(ROWS, 0) or 0),
            columns=int(header.get(COLUMNS, 0) or 0),
            pixel_spacing=_tag(header.get(PIXEL_SPACING), 2, PIXEL_SPACING, path),  # type: ignore[arg-type]
        ))
    return DicomSeries(folder=folder, slices=tuple(slices), series_uid=str(series.uid or ""),
                       modality=series.modality or "", affine=series.affine())


def dicom_files(folder: Path) -> list[Path]:
    """``*.dcm`` files directly in ``folder`` (hidden and AppleDouble files excluded), sorted."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() == ".dcm" and not p.name.startswith((".", "_")))
