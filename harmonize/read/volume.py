"""Volumes and reading them: :class:`Volume`, :func:`read_volume`, :func:`read_header`.

NIfTI is streamed by :mod:`harmonize.read.nifti_reader` (written by
:mod:`harmonize.read.nifti_writer`); NRRD and MHA are read with SimpleITK; a DICOM series (a folder) through
the one DICOM series model (:mod:`harmonize.read.dicom`, :mod:`harmonize.read.dicom_volume`). A
:class:`Volume` carries its ``kind`` ("image" or "label") so a label map is never treated as an
image (never interpolated, never intensity-scaled).

Every problem with a file (missing, corrupt gzip, truncated, NaN/inf voxels, 4D where 3D is
expected, zero or negative spacing, singular affine, two DICOM series in one folder, an irregular
DICOM series) is a
:class:`~harmonize.errors.ReadError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes

from harmonize._moved import moved_names
from harmonize.errors import ReadError
from harmonize.read.limits import check_declared_size
from harmonize.read.nifti_reader import (
    Kind,
    _check_geometry,
    _nifti_affine,
    _nifti_header,
    _open_read,
    _read_nifti,
    is_nifti,
)


@dataclass
class Volume:
    """Voxel array (X, Y, Z[, C]) with its voxel-to-world (RAS mm) affine and its kind.

    Channels, when present, are the last axis (4 for a four-sequence MR, 2 for T2 + ADC). ``operations``
    lists what reading did beyond decoding (e.g. an opt-in DICOM slice resampling), for the
    manifest's operations.
    """

    data: np.ndarray
    affine: np.ndarray
    kind: Kind = "image"
    operations: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)
    #: a label's own class table (name -> values), when its reader built the values (structure
    #: masks combined by :func:`harmonize.labels.overlap.combine_structures`); it replaces the
    #: descriptor's classes for this case. ``None``: the values mean what the descriptor says.
    classes: dict[str, list[int]] | None = field(default=None, repr=False, compare=False)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in voxel_sizes(self.affine))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        return "".join(nib.aff2axcodes(self.affine))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (X, Y, Z), without the channel axis."""
        return tuple(int(s) for s in self.data.shape[:3])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return int(self.data.shape[3]) if self.data.ndim == 4 else 1


class ScaledVolume(Volume):
    """An image kept as integers plus a linear map, as NIfTI stores it with scl_slope/scl_inter.

    ``stored`` holds integers ``q``; the real values are ``q * slope + inter`` computed in
    float32 with float32 ``slope``/``inter`` (exactly what a float32 reader of the written file
    gets). ``data`` decodes on first access, so code that only writes the volume never makes a
    float copy, and code that reads ``data`` sees real values like for any :class:`Volume`.
    Assigning ``data`` turns it into a plain float volume.
    """

    def __init__(self, stored: np.ndarray, affine: np.ndarray, slope: float, inter: float,
                 kind: Kind = "image") -> None:
        self.stored: np.ndarray | None = stored
        self.slope = float(np.float32(slope))
        self.inter = float(np.float32(inter))
        self._data: np.ndarray | None = None
        self.affine = affine
        self.kind = kind
        self.operations: list[dict[str, Any]] = []

    @property
    def data(self) -> np.ndarray:
        if self._data is None:
            assert self.stored is not None
            out = self.stored.astype(np.float32, order="K")
            out *= np.float32(self.slope)
            out += np.float32(self.inter)
            self._data = out
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._data = value
        self.stored = None

    @property
    def shape(self) -> tuple[int, int, int]:
        source = self.stored if self.stored is not None else self.data
        return tuple(int(s) for s in source.shape[:3])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        source = self.stored if self.stored is not None else self.data
        return int(source.shape[3]) if source.ndim == 4 else 1

    def __repr__(self) -> str:
        return (f"ScaledVolume(shape={self.shape}, slope={self.slope}, inter={self.inter}, "
                f"kind={self.kind!r})")


@dataclass(frozen=True)
class Header:
    """Geometry of a volume without reading its voxels."""

    shape: tuple[int, ...]
    spacing: tuple[float, float, float]
    orientation: str
    affine: np.ndarray


def read_header(path: Path, *, irregular_dicom: str = "refuse") -> Header:
    """Shape, spacing, orientation code and affine of a volume (header only; DICOM: a folder,
    judged and laid out exactly as :func:`read_volume` reads it, see ``irregular_dicom`` there)."""
    path = Path(path)
    if not path.exists():
        raise ReadError("file does not exist", file=path, hint="check the dataset is complete")
    if is_nifti(path):
        try:
            with _open_read(path) as fh:
                header = _nifti_header(fh, path)
            affine = _nifti_affine(header, path)
            shape = tuple(int(s) for s in header.get_data_shape())
        except ReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - gzip/EOF/header errors have many types
            raise ReadError(
                f"cannot read NIfTI header: {type(exc).__name__}: {exc}", file=path,
                hint="re-download the file; it may be truncated or not NIfTI",
            ) from exc
    elif path.is_dir():
        from harmonize.read.dicom_volume import dicom_header

        shape, affine = dicom_header(path, irregular=irregular_dicom)
        _check_geometry(affine, path)
    else:
        try:
            reader = _sitk_info(str(path))
            affine = sitk_affine(reader.GetOrigin(), reader.GetSpacing(), reader.GetDirection())
            shape = tuple(int(s) for s in reader.GetSize())
        except RuntimeError as exc:
            raise ReadError(f"cannot read header: {exc}", file=path) from exc
        _check_geometry(affine, path)
    zooms = voxel_sizes(affine)  # three columns: three spacings
    spacing = cast(tuple[float, float, float], tuple(float(v) for v in zooms))
    return Header(
        shape=shape,
        spacing=spacing,
        orientation="".join(nib.aff2axcodes(affine)),
        affine=affine,
    )


def _sitk_info(name: str):
    """A SimpleITK reader that has read ``name``'s header only."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    reader.ReadImageInformation()
    return reader


def header_fields(path: Path) -> dict[str, str]:
    """The key/value fields of an NRRD/MHA header (e.g. a Slicer segmentation's
    ``Segment0_Name``), without reading voxels; a :class:`ReadError` names the file."""
    try:
        reader = _sitk_info(str(path))
    except RuntimeError as exc:
        raise ReadError(f"cannot read the header: {exc}", file=path,
                        hint="check the file is a readable NRRD/MHA") from exc
    return {key: reader.GetMetaData(key) for key in reader.GetMetaDataKeys()}


def sitk_affine(
    origin: tuple[float, ...], spacing: tuple[float, ...], direction: tuple[float, ...]
) -> np.ndarray:
    """RAS voxel-to-world affine from SimpleITK's LPS origin, spacing and direction."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) * np.asarray(spacing, dtype=float)
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


# --------------------------------------------------------------------------------- reading


def read_volume(path: Path, kind: Kind = "image", *, allow_channels: bool = True,
                irregular_dicom: str = "refuse") -> Volume:
    """Read a NIfTI file, an NRRD/MHA file or a DICOM series folder.

    A folder is read by :func:`harmonize.read.dicom_volume.read_dicom`: one series, refused with
    a :class:`ReadError` when it is not one regular grid, unless ``irregular_dicom="resample"``
    (irregular gaps interpolated, duplicated files dropped; recorded in ``operations``).

    Arrays are indexed (X, Y, Z[, C]) with the RAS affine; a 4D image keeps its channels on the
    last axis (a NIfTI 5D vector image (X, Y, Z, 1, C) too). A label, or an image read with
    ``allow_channels=False``, must be 3D (a trailing axis of length 1 is dropped). Integer voxels
    keep their dtype; NIfTI scl_slope/scl_inter are applied (integer results stay integer).
    Raises :class:`ReadError` naming the file for anything unusable.
    """
    path = Path(path)
    if not path.exists():
        raise ReadError(f"{kind} file does not exist", file=path,
                        hint="check the dataset is complete")
    operations: list[dict[str, Any]] = []
    if is_nifti(path):
        data, affine = _read_nifti(path, kind)
    elif path.is_dir():
        from harmonize.read.dicom_volume import read_dicom

        volume = read_dicom(path, kind, irregular=irregular_dicom)
        data, affine, operations = volume.data, volume.affine, volume.operations
        _check_geometry(affine, path)
    else:
        data, affine = _read_with_sitk(path, kind)
    data = check_voxels(data, path, kind, allow_channels)
    return Volume(data=data, affine=affine, kind=kind, operations=operations)


def check_voxels(data: np.ndarray, path: Path, kind: Kind, allow_channels: bool) -> np.ndarray:
    """``data`` as a 3-D volume (4-D with channels last when ``allow_channels`` and ``kind`` is
    "image"; trailing axes of length 1 dropped, a 2-D array given a third axis), or a
    :class:`ReadError` naming ``path``: more axes, NaN/inf voxels, a non-numeric type. Every
    reader of voxels (volumes, ``.npy`` arrays) ends with this check."""
    if data.ndim == 5 and data.shape[3] == 1:  # NIfTI vector image (X, Y, Z, 1, C)
        data = data[:, :, :, 0, :]
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim < 3:
        data = data.reshape(data.shape + (1,) * (3 - data.ndim))
    if data.ndim > 4 or (data.ndim == 4 and (kind == "label" or not allow_channels)):
        what = "label map" if kind == "label" else "single-channel image"
        raise ReadError(
            f"{data.ndim}D array of shape {data.shape} where a 3D {what} was expected",
            file=path,
            hint="give channels as separate files or declare the dataset's channels in its "
            "descriptor; a label must be one 3D map",
        )
    if data.dtype.kind == "f" and not np.isfinite(data.sum(dtype=np.float64)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise ReadError(
            f"{bad} NaN or infinite voxel(s) in {kind}", file=path,
            hint="the file is damaged or was exported wrongly; re-export it or exclude the case",
        )
    if data.dtype.kind not in "biuf":
        raise ReadError(f"unsupported voxel type {data.dtype}", file=path,
                        hint="convert the file to a numeric NIfTI")
    return data


#: SimpleITK formats that hold header and voxels in one file (the size ratio applies to them).
SINGLE_FILE_SUFFIXES = (".nrrd", ".mha")


def _read_with_sitk(path: Path, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    try:
        info = _sitk_info(str(path))
        one = sitk.GetArrayFromImage(sitk.Image([1] * info.GetDimension(), info.GetPixelID()))
        # detached headers (.mhd, .nhdr) keep their voxels in another file: no ratio for them
        stored = path.stat().st_size if path.suffix.lower() in SINGLE_FILE_SUFFIXES else None
        check_declared_size((*info.GetSize(), info.GetNumberOfComponents()),
                            one.dtype.itemsize, file=path, stored_bytes=stored)
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ReadError(f"cannot read {kind}: {exc}", file=path,
                        hint="check the file is a readable NRRD/MHA") from exc
    if image.GetDimension() != 3:
        if image.GetDimension() == 4:
            raise ReadError(
                f"4D {kind} of size {image.GetSize()}", file=path,
                hint="store channels as a vector image or as separate files",
            )
        image = sitk.JoinSeries(image) if image.GetDimension() == 2 else image
    affine = sitk_affine(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    _check_geometry(affine, path, np.asarray(image.GetSpacing(), dtype=float))
    array = sitk.GetArrayFromImage(image)  # (Z, Y, X[, C]) C order == (X, Y, Z[, C]) F order
    data = np.transpose(array, (2, 1, 0, 3) if array.ndim == 4 else (2, 1, 0))
    return data, affine


#: names 0.2 moved to :mod:`harmonize.read.nifti_writer`
__getattr__ = moved_names("harmonize.read.volume", {
    name: "harmonize.read.nifti_writer"
    for name in ("GZIP_LEVEL", "output_dtype", "nifti_header_bytes", "write_volume")
})
