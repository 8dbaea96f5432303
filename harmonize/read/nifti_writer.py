"""Writing volumes: single-file NIfTI-1, atomically, deterministically, streamed in slabs.

Labels are stored as the smallest unsigned type that holds them, with NIFTI_INTENT_LABEL; images
keep integer voxels in the smallest signed type that holds them (a :class:`ScaledVolume` keeps its
integers with scl_slope/scl_inter), floats become float32. gzip goes through ISA-L when available.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import nibabel as nib
import numpy as np

from harmonize.errors import ReadError
from harmonize.files import atomic_path
from harmonize.read.nifti_reader import _CHUNK, _gzip_impl, _is_gz, is_nifti
from harmonize.read.volume import ScaledVolume, Volume

#: gzip level for written volumes (ISA-L levels 0-3; 1 measured best speed/size, see README).
GZIP_LEVEL = 1


def output_dtype(volume: Volume) -> np.dtype:
    """The dtype :func:`write_volume` stores ``volume`` as.

    Labels: uint8, uint16 when a value exceeds 255, uint32 above 65535 (never a wrap-around).
    Images: integer voxels keep the smallest of int16/int32 (uint8 stays uint8) that holds them;
    floating voxels become float32.
    """
    data = volume.data
    if volume.kind == "label":
        top = int(data.max()) if data.size else 0
        for cand in (np.uint8, np.uint16):
            if top <= np.iinfo(cand).max:
                return np.dtype(cand)
        return np.dtype(np.uint32)
    if data.dtype.kind in "iub":
        if data.dtype in (np.uint8, np.int16, np.bool_):
            return np.dtype(np.uint8 if data.dtype == np.bool_ else data.dtype)
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        for itype in (np.int16, np.int32):
            if np.iinfo(itype).min <= lo and hi <= np.iinfo(itype).max:
                return np.dtype(itype)
        return np.dtype(np.int64)
    return np.dtype(np.float32)


def nifti_header_bytes(volume: Volume, dtype: np.dtype, shape: tuple[int, ...],
                       slope: float = 1.0, inter: float = 0.0) -> bytes:
    """The 352 bytes (header + empty extension block) of a single-file NIfTI-1 for ``volume``.

    qform and sform both hold the affine (code 1, scanner); units are mm; scl_slope/scl_inter
    are ``slope``/``inter``.
    """
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype)
    header.set_qform(volume.affine, code=1)
    header.set_sform(volume.affine, code=1)
    header.set_xyzt_units("mm")
    header["vox_offset"] = 352
    header.set_slope_inter(slope, inter)
    if volume.kind == "label":
        header["intent_code"] = 1002  # NIFTI_INTENT_LABEL
    block = header.binaryblock
    if header.endianness != "<":  # pragma: no cover - big-endian hosts
        block = header.as_byteswapped("<").binaryblock
    return block + b"\x00" * 4


def write_volume(volume: Volume, path: Path, *, compresslevel: int = GZIP_LEVEL) -> None:
    """Write ``volume`` to a NIfTI file (``.nii.gz`` or ``.nii``) atomically.

    The bytes depend only on the voxels, affine, kind and dtype: the gzip header has no name and
    mtime 0, so writing the same volume twice gives identical files. The dtype is
    :func:`output_dtype`; a :class:`ScaledVolume` is stored as its integers with
    scl_slope/scl_inter. Voxels stream out in 16 MiB slabs (no full-size copy). Labels are
    written with NIFTI_INTENT_LABEL.
    """
    path = Path(path)
    if not is_nifti(path):
        raise ReadError("output must be .nii or .nii.gz", file=path,
                        hint="name the output file with a NIfTI suffix")
    slope, inter = 1.0, 0.0
    if isinstance(volume, ScaledVolume) and volume.stored is not None:
        data = volume.stored
        dtype = np.dtype(np.int16) if data.dtype == np.int16 else output_dtype(
            Volume(data, volume.affine))
        slope, inter = volume.slope, volume.inter
    else:
        data = volume.data
        dtype = output_dtype(volume)
        if volume.kind == "label" and data.size and data.dtype.kind in "if" and data.min() < 0:
            raise ReadError(f"label map has negative values (min {data.min()})", file=path,
                            hint="label values must be non-negative integers")
    header = nifti_header_bytes(volume, dtype, data.shape, slope, inter)
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        if _is_gz(path):
            with _gzip_impl.GzipFile(filename="", mode="wb", fileobj=raw,
                                     compresslevel=compresslevel, mtime=0) as out:
                out.write(header)
                _write_voxels(out, data, dtype)
        else:
            raw.write(header)
            _write_voxels(raw, data, dtype)


def _write_voxels(out: IO[bytes], data: np.ndarray, dtype: np.dtype) -> None:
    """Write ``data`` in NIfTI (Fortran) order as little-endian ``dtype``, slab by slab."""
    target = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
    arrays = [data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])]
    for arr in arrays:
        plane = max(1, arr.shape[0] * arr.shape[1] * target.itemsize)
        step = max(1, _CHUNK // plane)
        for k in range(0, arr.shape[2], step):
            slab = arr[:, :, k : k + step]
            if slab.dtype != target:
                slab = slab.astype(target, order="F")
            if slab.flags.f_contiguous:  # its transpose is C-contiguous: no copy to bytes
                out.write(memoryview(slab.T).cast("B"))  # type: ignore[arg-type]
            else:
                out.write(slab.tobytes(order="F"))
