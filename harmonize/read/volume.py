"""Reading and writing volumes and their headers (files in general: :mod:`harmonize.files`).

NIfTI (``.nii``, ``.nii.gz``) is parsed with nibabel's header classes and its voxels are streamed
straight into one array (gzip through ISA-L when ``isal`` is installed, which decompresses several
times faster than zlib); NRRD and MHA are read with SimpleITK; a DICOM series (a folder) through
the one DICOM series model (:mod:`harmonize.read.dicom`, :mod:`harmonize.read.dicom_volume`). A
:class:`Volume` carries its ``kind`` ("image" or "label") so a label map is never treated as an
image (never interpolated, never intensity-scaled).

Every problem with a file (missing, corrupt gzip, truncated, NaN/inf voxels, 4D where 3D is
expected, zero or negative spacing, singular affine, two DICOM series in one folder, an irregular
DICOM series) is a
:class:`~harmonize.errors.ReadError` naming the file.
"""

from __future__ import annotations

import gzip
import io
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, cast

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes

from harmonize._moved import moved_names
from harmonize.errors import ReadError
from harmonize.read.limits import check_declared_size

_gzip_impl: types.ModuleType
try:  # ISA-L gzip: same deflate streams, 2-4x faster than zlib
    from isal import igzip as _gzip_impl
except ImportError:  # pragma: no cover - isal is a dependency; fall back to the stdlib
    _gzip_impl = gzip

Kind = Literal["image", "label"]
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_CHUNK = 1 << 24  # 16 MiB: streaming block for reading and writing voxels


@dataclass
class Volume:
    """Voxel array (X, Y, Z[, C]) with its voxel-to-world (RAS mm) affine and its kind.

    Channels, when present, are the last axis (MSD BrainTumour: 4, Prostate: 2). ``operations``
    lists what reading did beyond decoding (e.g. an opt-in DICOM slice resampling), for the
    manifest's operations.
    """

    data: np.ndarray
    affine: np.ndarray
    kind: Kind = "image"
    operations: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)

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


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _is_gz(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _open_read(path: Path) -> IO[bytes]:
    if _is_gz(path):
        return _gzip_impl.open(path, "rb")
    return open(path, "rb")


def _nifti_header(fh: IO[bytes], path: Path) -> nib.Nifti1Header:
    """Parse a NIfTI-1 or NIfTI-2 single-file header (either byte order) from the start of
    ``fh``, reading forward only (no seek), so any stream works."""
    first = fh.read(4)
    if len(first) < 4:
        raise ReadError("file is empty or truncated before the NIfTI header", file=path,
                        hint="re-download the file")
    sizes = {int.from_bytes(first, "little"), int.from_bytes(first, "big")}
    klass: type[nib.Nifti1Header]
    if 348 in sizes:
        klass, size = nib.Nifti1Header, 348
    elif 540 in sizes:
        klass, size = nib.Nifti2Header, 540
    else:
        raise ReadError("not a NIfTI file (sizeof_hdr is neither 348 nor 540)", file=path,
                        hint="check the file type; NRRD/MHA need their own suffix")
    block = first + fh.read(size - 4)
    if len(block) < size:
        raise ReadError("file is truncated inside the NIfTI header", file=path,
                        hint="re-download the file")
    # our own checks follow; nibabel's check=True would silently "fix" e.g. pixdim 0
    return klass.from_fileobj(io.BytesIO(block), check=False)


def _check_geometry(affine: np.ndarray, path: Path, pixdim: np.ndarray | None = None) -> None:
    """Raise ReadError for non-finite, zero/negative-spacing or singular affines."""
    if pixdim is not None and np.any(pixdim <= 0):
        raise ReadError(
            f"zero or negative voxel spacing in header (pixdim {pixdim.tolist()})", file=path,
            hint="fix the header (pixdim) or re-export the file",
        )
    if not np.all(np.isfinite(affine)):
        raise ReadError("affine has NaN or infinite entries", file=path,
                        hint="fix the header (qform/sform) or re-export the file")
    zooms = voxel_sizes(affine)
    if np.any(zooms <= 1e-6):
        raise ReadError(f"zero voxel spacing in affine ({zooms.tolist()})", file=path,
                        hint="fix the header (pixdim/sform) or re-export the file")
    if abs(np.linalg.det(affine[:3, :3])) <= 1e-6 * float(np.prod(zooms)):
        raise ReadError("singular affine: voxel axes are not independent", file=path,
                        hint="fix the header (qform/sform) or re-export the file")


def _nifti_affine(header: nib.Nifti1Header, path: Path) -> np.ndarray:
    """nibabel's best affine (sform, else qform, else pixdim) after checking the spacing."""
    ndim = min(int(header["dim"][0]), 3)
    pixdim = None
    if int(header["sform_code"]) == 0:  # qform or pixdim-only affine: pixdim is the spacing
        pixdim = np.asarray(header["pixdim"][1 : 1 + max(ndim, 1)], dtype=float)
    try:
        affine = np.asarray(header.get_best_affine(), dtype=float)
    except Exception as exc:  # noqa: BLE001 - nibabel raises HeaderDataError and others
        _check_geometry(np.eye(4), path, pixdim)
        raise ReadError(f"unusable affine in header: {exc}", file=path,
                        hint="fix the header (qform/sform) or re-export the file") from exc
    _check_geometry(affine, path, pixdim)
    return affine


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
    data = _check_data(data, path, kind, allow_channels)
    return Volume(data=data, affine=affine, kind=kind, operations=operations)


def _check_data(data: np.ndarray, path: Path, kind: Kind, allow_channels: bool) -> np.ndarray:
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


def _read_nifti(path: Path, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
    try:
        with _open_read(path) as fh:
            header = _nifti_header(fh, path)
            affine = _nifti_affine(header, path)
            shape = tuple(int(s) for s in header.get_data_shape())
            dtype = header.get_data_dtype()
            # vox_offset below the header + extension flag (e.g. 0) means "right after it",
            # as nibabel's header check sets it
            offset = max(int(header.get_data_offset()), int(header.sizeof_hdr) + 4)
            check_declared_size(shape, dtype.itemsize, file=path)
            _skip(fh, offset - int(header.sizeof_hdr), path)  # extension block, padding
            raw = np.empty(shape, dtype=dtype, order="F")
            _read_into(fh, raw, path)
    except ReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - gzip/zlib/EOF/OS errors have many types
        raise ReadError(
            f"cannot read NIfTI {kind}: {type(exc).__name__}: {exc}", file=path,
            hint="re-download the file; it may be truncated or corrupt",
        ) from exc
    if not raw.dtype.isnative:
        raw = raw.byteswap().view(raw.dtype.newbyteorder("="))
    slope, inter = header.get_slope_inter()
    return apply_scaling(raw, slope, inter), affine


def _skip(fh: IO[bytes], n: int, path: Path) -> None:
    while n > 0:
        block = fh.read(min(n, _CHUNK))
        if not block:
            raise ReadError("file is truncated before its voxel data", file=path,
                            hint="re-download the file")
        n -= len(block)


def _read_into(fh: IO[bytes], array: np.ndarray, path: Path) -> None:
    """Fill ``array`` (Fortran order) from ``fh`` in blocks, so no second full copy is made."""
    # numpy's stubs declare ndarray.__buffer__ only for Python >= 3.12
    view = memoryview(array.reshape(-1, order="A").view(np.uint8))  # type: ignore[arg-type]
    pos, total = 0, view.nbytes
    while pos < total:
        n = fh.readinto(view[pos : min(pos + _CHUNK, total)])  # type: ignore[attr-defined]
        if not n:
            raise ReadError(
                f"file is truncated: {pos} of {total} voxel bytes present", file=path,
                hint="re-download the file",
            )
        pos += n


def apply_scaling(raw: np.ndarray, slope: float | None, inter: float | None) -> np.ndarray:
    """Apply a linear scaling (NIfTI scl_slope/scl_inter, DICOM RescaleSlope/RescaleIntercept);
    integer slope and intercept keep integer voxels exact (smallest of int16/int32/int64)."""
    slope = 1.0 if slope is None else float(slope)
    inter = 0.0 if inter is None else float(inter)
    if slope == 1.0 and inter == 0.0:
        return raw
    if raw.dtype.kind in "iub" and slope.is_integer() and inter.is_integer():
        lo = float(raw.min()) * slope + inter
        hi = float(raw.max()) * slope + inter
        lo, hi = min(lo, hi), max(lo, hi)
        for out in (np.int16, np.int32, np.int64):
            info = np.iinfo(out)
            if info.min <= lo and hi <= info.max:
                break
        wide: np.ndarray = raw.astype(np.int64 if out == np.int64 else np.int32)
        if slope != 1.0:
            wide *= int(slope)
        wide += int(inter)
        return wide.astype(out, copy=False)
    ftype = np.float64 if raw.dtype in (np.float64, np.int32, np.uint32, np.int64) else np.float32
    scaled: np.ndarray = raw.astype(ftype)
    scaled *= ftype(slope)
    scaled += ftype(inter)
    return scaled


def _read_with_sitk(path: Path, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    try:
        info = _sitk_info(str(path))
        one = sitk.GetArrayFromImage(sitk.Image([1] * info.GetDimension(), info.GetPixelID()))
        check_declared_size((*info.GetSize(), info.GetNumberOfComponents()),
                            one.dtype.itemsize, file=path)
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
