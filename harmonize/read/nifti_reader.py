"""Streaming NIfTI reading: nibabel's header classes, voxels read straight into one array.

gzip goes through ISA-L when ``isal`` is installed (faster than zlib: README, Performance). The header is
parsed reading forward only, its declared size is checked against the limit before allocating
(:mod:`harmonize.read.limits`), and every problem (empty, truncated, corrupt gzip, bad affine) is a
:class:`~harmonize.errors.ReadError` naming the file.
"""

from __future__ import annotations

import gzip
import io
import types
from pathlib import Path
from typing import IO, Literal

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes

from harmonize.errors import ReadError
from harmonize.read.limits import check_declared_size

_gzip_impl: types.ModuleType
try:  # ISA-L gzip: the same deflate streams as zlib, faster
    from isal import igzip as _gzip_impl
except ImportError:  # pragma: no cover - isal is a dependency; fall back to the stdlib
    _gzip_impl = gzip

Kind = Literal["image", "label"]
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_CHUNK = 1 << 24  # 16 MiB: streaming block for reading and writing voxels


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
            check_declared_size(shape, dtype.itemsize, file=path,
                                stored_bytes=path.stat().st_size)
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
