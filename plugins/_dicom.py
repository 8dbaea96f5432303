"""Slice tables of DICOM series, shared by the DICOM-based plugins (CHAOS, Pancreas-CT, LIDC-IDRI).

The core reads a DICOM folder with SimpleITK (:func:`harmonize.read.volume.read_volume`): the one series in
the folder, slices in GDCM's order (ascending along the slice normal), voxels indexed (X, Y, Z) with
X = DICOM column, Y = DICOM row and Z = that order. Labels released as one 2D item per slice (a PNG
per slice, a NIfTI slice per instance, an XML contour per SOP instance) must land on the same Z.
:func:`read_series` reads every file's header once and gives each file its Z index in the volume
the core reads (from the very GDCM call the core makes) and the series affine the core computes,
so a label reader only says *which file* a 2D label belongs to and :meth:`DicomSeries.paste` does
the rest. Headers only: no pixel data is read here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmonize.plugin import (
    LabelError,
    ReadError,
    Volume,
    dicom_series_files,
    sitk_affine,
)

# DICOM tags as SimpleITK names them
MODALITY = "0008|0060"
SERIES_UID = "0020|000e"
SOP_UID = "0008|0018"
INSTANCE = "0020|0013"
POSITION = "0020|0032"
ORIENTATION = "0020|0037"
PIXEL_SPACING = "0028|0030"
ROWS = "0028|0010"
COLUMNS = "0028|0011"


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

    @property
    def shape(self) -> tuple[int, int, int]:
        """(X, Y, Z) = (columns, rows, slices), the shape of the volume the core reads."""
        first = self.slices[0]
        return (first.columns, first.rows, len(self.slices))

    @property
    def affine(self) -> np.ndarray:
        """RAS voxel-to-world affine of the volume, computed as ITK's series reader does: origin
        at the first slice, in-plane axes from ImageOrientationPatient, the third axis along the
        slice normal with the mean distance between the first and last slice."""
        first, last = self.slices[0], self.slices[-1]
        row_dir = np.asarray(first.orientation[:3], dtype=float)
        col_dir = np.asarray(first.orientation[3:], dtype=float)
        normal = np.cross(row_dir, col_dir)
        n = len(self.slices)
        step = abs(float(np.dot(np.subtract(last.position, first.position), normal))) / (n - 1) if n > 1 else 1.0
        direction = np.column_stack([row_dir, col_dir, normal]).ravel()
        spacing = (first.pixel_spacing[1], first.pixel_spacing[0], step or 1.0)
        return sitk_affine(first.position, spacing, tuple(direction))

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


def _floats(text: str, count: int, tag: str, path: Path) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split("\\") if v != "")
    except ValueError:
        values = ()
    if len(values) != count or not all(np.isfinite(values)):
        raise ReadError(f"DICOM tag {tag} is missing or malformed ({text!r})", file=path,
                        hint="the file is not a usable image slice; re-download the series")
    return values


def read_tags(path: Path, tags: Iterable[str]) -> dict[str, str]:
    """The requested tags of one DICOM file (header only); absent tags are left out."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOff()
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ReadError(f"cannot read DICOM header: {exc}", file=path,
                        hint="re-download the file") from exc
    return {t: reader.GetMetaData(t).strip() for t in tags if reader.HasMetaDataKey(t)}


def read_series(folder: Path) -> DicomSeries:
    """Headers of the one series in ``folder``, in the core's Z order."""
    folder = Path(folder)
    names = dicom_series_files(folder)  # the order the core stacks them in
    wanted = (MODALITY, SERIES_UID, SOP_UID, INSTANCE, POSITION, ORIENTATION, PIXEL_SPACING,
              ROWS, COLUMNS)
    slices = []
    modality = series_uid = ""
    for index, name in enumerate(names):
        path = Path(name)
        tags = read_tags(path, wanted)
        instance = tags.get(INSTANCE, "")
        try:
            number: int | None = int(float(instance)) if instance else None
        except ValueError:
            number = None
        slices.append(DicomSlice(
            path=path,
            index=index,
            position=_floats(tags.get(POSITION, ""), 3, "ImagePositionPatient", path),  # type: ignore[arg-type]
            orientation=_floats(tags.get(ORIENTATION, ""), 6, "ImageOrientationPatient", path),
            instance=number,
            sop_uid=tags.get(SOP_UID, ""),
            rows=int(tags.get(ROWS, "0") or 0),
            columns=int(tags.get(COLUMNS, "0") or 0),
            pixel_spacing=_floats(tags.get(PIXEL_SPACING, ""), 2, "PixelSpacing", path),  # type: ignore[arg-type]
        ))
        modality = modality or tags.get(MODALITY, "")
        series_uid = series_uid or tags.get(SERIES_UID, "")
    return DicomSeries(folder=folder, slices=tuple(slices), series_uid=series_uid, modality=modality)


def dicom_files(folder: Path) -> list[Path]:
    """``*.dcm`` files directly in ``folder`` (hidden and AppleDouble files excluded), sorted."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() == ".dcm" and not p.name.startswith((".", "_")))
