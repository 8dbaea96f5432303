"""NumPy ``.npy`` arrays (releases that store volumes and masks as bare NumPy arrays).

An ``.npy`` file has no geometry: :func:`read_npy` returns the bare 3-D array, indexed as the file
stores it, and the dataset's plugin states which voxel of the patient each element is (its spacing
and axis directions, in the affine of the :class:`~harmonize.read.volume.Volume` it builds).

The header is read and judged before any voxel is allocated (:func:`npy_header`): the file is a
version 1.0 or 2.0 ``.npy`` file (``np.lib.format.read_magic`` + ``read_array_header_1_0/2_0``);
its header is at most :data:`MAX_HEADER_BYTES` long (numpy's own ``max_header_size`` default); it
declares a plain numeric dtype (bool, integer, float: object arrays, which only unpickling can
read, and structured, string or complex arrays are refused; nothing is unpickled); its shape is
within the reading limits (:func:`harmonize.read.limits.check_declared_size`, the check every
reader makes); the file holds all the bytes the header declares (a truncated file is refused, not
half-read). Then the voxels are read in one allocation (``allow_pickle=False``), Fortran order and
either byte order as ``np.load`` reads them (returned in native byte order), and checked like any
volume's (:func:`harmonize.read.volume.check_voxels`: 3-D, no NaN/inf). Every problem is a
:class:`ReadError` naming the file with a next step; the reading layer adds dataset and case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from harmonize.errors import ReadError
from harmonize.read.limits import check_declared_size
from harmonize.read.nifti_reader import Kind
from harmonize.read.volume import check_voxels

__all__ = ["MAX_HEADER_BYTES", "NpyHeader", "npy_header", "read_npy"]

#: The longest header read: numpy's ``max_header_size`` default (``np.load`` refuses longer ones
#: unless ``allow_pickle=True``); a plain array's header is under 200 bytes.
MAX_HEADER_BYTES = 10_000
_REDOWNLOAD = "re-download the file; it may be truncated or not a NumPy .npy file"


@dataclass(frozen=True)
class NpyHeader:
    """What an ``.npy`` header declares: shape, dtype, memory order, and where the data start."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int


def npy_header(path: Path) -> NpyHeader:
    """The checked header of the ``.npy`` file ``path`` (module doc); no voxel is read."""
    path = Path(path)
    if not path.is_file():
        raise ReadError("file does not exist", file=path, hint="check the dataset is complete")
    with open(path, "rb") as fh:
        header = _parse(fh, path)
    if header.dtype.hasobject:
        raise ReadError(f"object array ({header.dtype}): only unpickling Python objects reads "
                        "it, which harmonize never does (allow_pickle=False)", file=path,
                        hint="re-save the volume as a numeric array (np.save(path, "
                             "np.asarray(volume, dtype=np.int16)))")
    if header.dtype.kind not in "biuf" or header.dtype.fields is not None:
        raise ReadError(f"unsupported voxel type {header.dtype} (bool, integer or float "
                        "arrays only)", file=path, hint="re-save the volume as a numeric array")
    check_declared_size(header.shape, header.dtype.itemsize, file=path)
    declared = int(np.prod(header.shape, dtype=np.int64)) * header.dtype.itemsize
    stored = path.stat().st_size - header.data_offset
    if stored < declared:
        raise ReadError(f"truncated: the header declares shape {list(header.shape)} of "
                        f"{header.dtype} = {declared:,} bytes, the file holds {stored:,}",
                        file=path, hint=_REDOWNLOAD)
    return header


def read_npy(path: Path, kind: Kind = "image") -> np.ndarray:
    """The 3-D array stored in the ``.npy`` file ``path`` (header checked first, module doc), in
    the file's index order and dtype (native byte order; ``bool`` stays ``bool``)."""
    path = Path(path)
    header = npy_header(path)
    try:
        with open(path, "rb") as fh:
            data = np.lib.format.read_array(fh, allow_pickle=False,
                                            max_header_size=MAX_HEADER_BYTES)
    except (ValueError, OSError) as exc:
        raise ReadError(f"cannot read the array: {exc}", file=path, hint=_REDOWNLOAD) from None
    if data.shape != header.shape:  # the file changed between the two reads
        raise ReadError(f"array shape {list(data.shape)} is not the header's "
                        f"{list(header.shape)}", file=path, hint=_REDOWNLOAD)
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    return check_voxels(data, path, kind, allow_channels=False)


def _parse(fh: BinaryIO, path: Path) -> NpyHeader:
    try:
        version = np.lib.format.read_magic(fh)
    except ValueError as exc:
        raise ReadError(f"not a NumPy .npy file ({exc})", file=path, hint=_REDOWNLOAD) from None
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ReadError(f".npy format version {version[0]}.{version[1]}: only versions 1.0 and "
                        "2.0 hold plain numeric arrays", file=path,
                        hint="re-save the array with np.save")
    try:
        shape, fortran_order, dtype = readers[version](fh, max_header_size=MAX_HEADER_BYTES)
    except ValueError as exc:
        too_long = "max_header_size" in str(exc) or "large" in str(exc)
        raise ReadError(f"header longer than {MAX_HEADER_BYTES:,} bytes, refused (a plain "
                        "array's header is under 200)" if too_long else
                        f"damaged .npy header ({exc})", file=path, hint=_REDOWNLOAD) from None
    return NpyHeader(tuple(int(s) for s in shape), np.dtype(dtype), bool(fortran_order),
                     fh.tell())
