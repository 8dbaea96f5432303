"""Read a DICOM series (:mod:`harmonize.read.dicom`) as a :class:`~harmonize.read.volume.Volume`.

Voxels are decoded slice by slice with pydicom (``pixel_array``: stored values), then the modality
transform is applied once, here: ``RescaleSlope``/``RescaleIntercept`` (integer slope and
intercept keep integers exact), or a Modality LUT Sequence through pydicom. Measured on a real
20-slice 512 x 512 CT (median of 9 interleaved runs, values and dtypes identical): uncompressed
0.054 s (pydicom) vs 0.126 s (SimpleITK per file); JPEG 2000 lossless about even, 0.72 s vs
0.86 s (best runs 0.66 s vs 0.62 s). A transfer syntax pydicom has
no decoder for (e.g. lossless JPEG without pylibjpeg) falls back to SimpleITK/GDCM, which applies
the rescale itself (so it is not applied again). Geometry comes from the series model, never from
the decoder.

``irregular``: ``"refuse"`` (default) raises a :class:`ReadError` on any problem of
:func:`~harmonize.read.dicom.grid_problems`. ``"resample"`` repairs only irregular gaps and
byte-identical duplicated slices: one copy of a duplicate is kept, and the slices are linearly
interpolated along the slice normal onto a regular grid from the first to the last position
with the median gap as target step (adjusted so that the last slice falls on the grid; labels:
nearest slice). The volume's ``operations`` records it for the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from harmonize.errors import ReadError
from harmonize.read.dicom import REPAIRABLE, Problem, Series, grid_problems
from harmonize.read.dicom_scan import select_series
from harmonize.read.limits import check_declared_size
from harmonize.read.nifti_reader import Kind, apply_scaling
from harmonize.read.volume import Volume

__all__ = ["IRREGULAR_MODES", "read_series", "read_dicom", "dicom_header", "refuse",
           "regular_series", "resample_slices"]

Irregular = Literal["refuse", "resample"]
IRREGULAR_MODES = ("refuse", "resample")


def refuse(series: Series, problems: list[Problem], irregular: str = "refuse") -> None:
    """Raise the :class:`ReadError` for ``problems`` that ``irregular`` does not repair."""
    if irregular not in IRREGULAR_MODES:
        raise ValueError(f"irregular must be one of {IRREGULAR_MODES}, got {irregular!r}")
    left = [p for p in problems if not (irregular == "resample" and p.code in REPAIRABLE)]
    if not left:
        return
    repairable = all(p.code in REPAIRABLE for p in left)
    hint = ("run `harmonize validate-dicom` on the folder; "
            + ("to interpolate it onto a regular grid instead, rerun with "
               "--resample-irregular-dicom (settings: irregular_dicom: resample)" if repairable
               else "re-export the series or convert it with dcm2niix"))
    raise ReadError("DICOM series is not one regular 3D grid: "
                    + "; ".join(p.message for p in left), file=series.folder, hint=hint)


def _decode(path: Path, rows: int, cols: int) -> np.ndarray:
    """One slice as (rows, cols) modality values (HU for CT); float results are float32."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(path)
        stored = ds.pixel_array
    except (NotImplementedError, RuntimeError):  # no usable pydicom decoder: GDCM decides
        return _decode_sitk(path, rows, cols)
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt: never zero-filled
        raise ReadError(f"cannot decode DICOM slice: {type(exc).__name__}: {exc}", file=path,
                        hint="the file is truncated or damaged; re-export or re-download the "
                        "series") from exc
    if stored.shape != (rows, cols):
        raise ReadError(f"slice has shape {stored.shape}, expected {(rows, cols)}", file=path,
                        hint="colour or multi-frame slices cannot be stacked into a volume")
    if "ModalityLUTSequence" in ds:
        values = apply_modality_lut(stored, ds)
    else:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        inter = float(ds.get("RescaleIntercept", 0) or 0)
        values = apply_scaling(stored, slope, inter)
    return values.astype(np.float32) if values.dtype.kind == "f" else values


def _decode_sitk(path: Path, rows: int, cols: int) -> np.ndarray:
    """One slice decoded by SimpleITK/GDCM, which applies RescaleSlope/Intercept itself."""
    import SimpleITK as sitk

    try:
        plane = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError as exc:
        raise ReadError(f"cannot decode DICOM slice: {exc}", file=path,
                        hint="the file may be truncated or use an unsupported compression") from exc
    if plane.ndim == 3 and plane.shape[0] == 1:
        plane = plane[0]
    if plane.shape != (rows, cols):
        raise ReadError(f"slice has shape {plane.shape}, expected {(rows, cols)}", file=path,
                        hint="colour or multi-frame slices cannot be stacked into a volume")
    return plane.astype(np.float32) if plane.dtype.kind == "f" else plane


def _stack(series: Series, indices: list[int]) -> np.ndarray:
    """Decoded slices ``indices`` as an (X = columns, Y = rows, Z) array; slices rescaled to
    different dtypes widen the whole array once (integer stays integer when all are)."""
    rows, cols = int(series.headers[0].Rows), int(series.headers[0].Columns)
    # no size ratio here: 4 bytes a voxel is an upper bound, not the stored type, and slices are
    # decoded one file at a time
    check_declared_size((cols, rows, len(indices)), 4, file=series.folder)
    data: np.ndarray | None = None
    for z, k in enumerate(indices):
        plane = _decode(series.files[k], rows, cols)
        if data is None:
            data = np.empty((cols, rows, len(indices)), dtype=plane.dtype, order="F")
        elif plane.dtype != data.dtype:
            wider = (np.dtype(np.float32) if "f" in (plane.dtype.kind, data.dtype.kind)
                     else np.result_type(data.dtype, plane.dtype))
            if wider != data.dtype:
                data = data.astype(wider, order="F")
        data[:, :, z] = plane.T
    assert data is not None
    return data


def regular_grid(z: np.ndarray) -> np.ndarray:
    """The resampling grid of ascending positions ``z``: first to last position, median gap as
    target step, ``n = round(span / median gap) + 1`` slices."""
    n = int(round((z[-1] - z[0]) / float(np.median(np.diff(z))))) + 1
    return np.linspace(z[0], z[-1], n)


def resample_slices(data: np.ndarray, z: np.ndarray, kind: Kind = "image"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Slices at ascending positions ``z`` (mm) onto a regular grid; returns (data, grid z).

    Grid: first to last position, ``n = round(span / median gap) + 1`` slices. Images are linearly
    interpolated between the two nearest slices (float32), labels take the nearest slice.
    """
    grid = regular_grid(z)
    n = grid.size
    upper = np.clip(np.searchsorted(z, grid, side="right"), 1, len(z) - 1)
    lower = upper - 1
    weight = (grid - z[lower]) / (z[upper] - z[lower])
    if kind == "label":
        nearest = np.where(weight > 0.5, upper, lower)
        return np.asarray(data[:, :, nearest], order="F"), grid
    out = np.empty(data.shape[:2] + (n,), dtype=np.float32, order="F")
    for j in range(n):
        w = np.float32(weight[j])
        out[:, :, j] = data[:, :, lower[j]] * (np.float32(1) - w) + data[:, :, upper[j]] * w
    return out, grid


def read_series(series: Series, kind: Kind = "image", *, irregular: str = "refuse") -> Volume:
    """Decode ``series`` into a :class:`Volume` (X = columns, Y = rows, Z = slices in order).

    Integer modality values stay integer, others become float32. Raises :class:`ReadError`
    naming the folder and the problem (gap, duplicate, conflict, tilt, mixed geometry,
    multi-frame, unsortable) unless ``irregular="resample"`` repairs it (see the module doc).
    """
    problems = grid_problems(series)
    refuse(series, problems, irregular)
    keep = series.unique()
    data = _stack(series, keep)
    operations: list[dict[str, Any]] = []
    if any(p.code == "duplicate" for p in problems):
        operations.append({"op": "dicom_drop_duplicates", "slices_in": series.n_slices,
                           "slices_kept": len(keep)})
    if any(p.code == "gap" for p in problems):
        assert series.positions is not None
        z = np.asarray([series.positions[k] for k in keep])
        check_declared_size(data.shape[:2] + (regular_grid(z).size,), 4, file=series.folder)
        data, grid = resample_slices(data, z, kind)
        step = float(grid[1] - grid[0])
        operations.append({
            "op": "dicom_resample_slices", "interpolation": "nearest" if kind == "label"
            else "linear", "slices_in": len(keep), "slices_out": int(grid.size),
            "step_mm": round(step, 6), "gaps_in_mm": [round(float(g), 4) for g in np.diff(z)],
        })
        affine = series.affine(step)
    else:
        affine = series.affine()
    return Volume(data=data, affine=affine, kind=kind, operations=operations)


def regular_series(folder: Path, series_uid: str | None = None) -> Series:
    """The one series in ``folder`` (or ``series_uid``), refused like every reader refuses it
    (mixed series, gaps, duplicates, tilt, ...): for plugins that place 2D labels per slice."""
    series = select_series(Path(folder), series_uid)
    refuse(series, grid_problems(series))
    return series


def read_dicom(folder: Path, kind: Kind = "image", *, irregular: str = "refuse",
               series_uid: str | None = None) -> Volume:
    """The one series in ``folder`` (or the one with ``series_uid``) as a :class:`Volume`."""
    return read_series(select_series(Path(folder), series_uid), kind, irregular=irregular)


def dicom_header(folder: Path, *, irregular: str = "refuse", series_uid: str | None = None
                 ) -> tuple[tuple[int, int, int], np.ndarray]:
    """(shape, affine) :func:`read_dicom` gives, from the headers alone (same verdict)."""
    series = select_series(Path(folder), series_uid)
    problems = grid_problems(series)
    refuse(series, problems, irregular)
    first = series.headers[0]
    keep = series.unique()
    n, step = len(keep), None
    if any(p.code == "gap" for p in problems):
        assert series.positions is not None
        grid = regular_grid(np.asarray([series.positions[k] for k in keep]))
        n, step = grid.size, float(grid[1] - grid[0])
    return (int(first.Columns), int(first.Rows), n), series.affine(step)
