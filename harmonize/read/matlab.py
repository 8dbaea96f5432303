"""MATLAB ``.mat`` label arrays (releases that store masks as MATLAB variables, v4-v7.2 files).

A ``.mat`` file has no geometry: :func:`read_mat_label` returns the bare integer array, and the
dataset's plugin states which voxel of its image each element is (e.g. by pasting slices on a
DICOM series). Checks, each a :class:`ReadError` / :class:`LabelError` naming the file: the file
is a MATLAB file scipy reads (v7.3 files are HDF5: re-save them with ``save -v7``); the variable
exists (the error lists those present); its declared size is within the reading limits
(:mod:`harmonize.read.limits`, before loading); it is 3-D; its values are non-negative integers
(logical, integer or whole-number floating arrays).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmonize.errors import LabelError, ReadError
from harmonize.read.limits import check_declared_size

__all__ = ["read_mat_label"]


def read_mat_label(path: Path, variable: str) -> np.ndarray:
    """Variable ``variable`` of the MATLAB file ``path`` as a 3-D unsigned integer array,
    indexed as MATLAB indexes it (``A(i, j, k)`` is ``array[i - 1, j - 1, k - 1]``)."""
    import scipy.io

    path = Path(path)
    try:
        listing = scipy.io.whosmat(str(path))
    except NotImplementedError:
        raise ReadError("MATLAB v7.3 file (HDF5), which scipy does not read", file=path,
                        hint="re-save it in MATLAB with save(..., '-v7')") from None
    except Exception as exc:  # noqa: BLE001  scipy raises assorted types on damaged files
        raise ReadError(f"not a readable MATLAB file ({type(exc).__name__}: {exc})", file=path,
                        hint="re-download the file; it may be truncated") from None
    shapes = {name: shape for name, shape, _ in listing}
    if variable not in shapes:
        raise LabelError(f"no variable {variable!r} in the MATLAB file (it holds "
                         f"{sorted(shapes) or 'nothing'})", file=path,
                         hint="check the file is the release's mask file")
    check_declared_size(shapes[variable], 8, file=path)
    try:
        data = np.asarray(scipy.io.loadmat(str(path), variable_names=[variable])[variable])
    except Exception as exc:  # noqa: BLE001  as above
        raise ReadError(f"cannot read variable {variable!r}: {exc}", file=path,
                        hint="re-download the file; it may be truncated") from None
    if data.ndim != 3:
        raise LabelError(f"variable {variable!r} has shape {list(data.shape)}, expected 3-D",
                         file=path, hint="check the file is the release's 3-D mask")
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype.kind not in "uif":
        raise LabelError(f"variable {variable!r} holds {data.dtype} values, not numbers",
                         file=path, hint="check the file is the release's mask file")
    if data.size and (not np.all(np.isfinite(data)) or data.min() < 0
                      or not np.array_equal(data, np.round(data))):
        raise LabelError(f"variable {variable!r} holds negative, non-integer or non-finite "
                         "values", file=path, hint="a mask holds 0 and label values only")
    top = int(data.max()) if data.size else 0
    dtype = np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.uint32
    return data.astype(dtype)
