"""Geometry: reorientation to RAS+ and resampling to a target spacing.

Reorientation is the closest canonical orientation (``nibabel.as_closest_canonical``): axes are
permuted and flipped, never interpolated, so the result is a view of the input voxels.

Resampling uses SimpleITK's multi-threaded ``ResampleImageFilter`` in voxel-index space. The output
grid follows TorchIO's ``Resample`` convention:

* the new size per axis is ``floor(n * spacing / target)`` (at least 1; singleton axes stay 1),
* the new grid is centred on the old one (same centre of the field of view), so its extent is
  the same or slightly smaller and nothing is extrapolated,
* the axes keep their directions (an oblique RAS-ish affine stays oblique).

Images are interpolated linearly or with a cubic B-spline (into float32); label maps always with
nearest neighbour (values and dtype kept). The ``Volume.kind`` decides, not the caller.
"""

from __future__ import annotations

from typing import Any, Literal

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes
from nibabel.orientations import inv_ornt_aff, io_orientation

from harmonize.read.grid import in_voxel_order_of
from harmonize.read.volume import Volume

_RAS = np.eye(4)

Interpolation = Literal["linear", "bspline"]


def ras_transform(affine: np.ndarray) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """The axis permutation and flips that bring ``affine`` closest to RAS+.

    Returns ``(source_axis_of_output_axis, flip_output_axis)``. Same decision as nibabel's
    ``io_orientation`` (oblique affines: the closest orthogonal axes).
    """
    ornt = io_orientation(affine)
    source = [0, 0, 0]
    flips = [False, False, False]
    for in_axis, (out_axis, direction) in enumerate(ornt):
        source[int(out_axis)] = in_axis
        flips[int(out_axis)] = direction < 0
    return tuple(source), tuple(flips)  # type: ignore[return-value]


def reorient_to_ras(volume: Volume) -> tuple[Volume, dict[str, Any] | None]:
    """``volume`` in the closest canonical (RAS+) orientation, and the operation record.

    No interpolation: the data is a permuted/flipped view of the input
    (:func:`harmonize.read.grid.in_voxel_order_of`). Returns the input itself and ``None`` when it
    already is RAS+ (closest).
    """
    data, affine = in_voxel_order_of(volume.data, volume.affine, _RAS)
    if data is volume.data:
        return volume, None
    out = Volume(data=data, affine=affine, kind=volume.kind)
    return out, {"op": "reorient", "from": volume.orientation, "to": out.orientation}


def from_ras(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Inverse of :func:`reorient_to_ras`: RAS-ordered ``data`` in the axis order of ``affine``.

    ``reorient_to_ras(Volume(from_ras(d, A), A)).data`` equals ``d`` (a view, no copy).
    """
    return in_voxel_order_of(data, _RAS, affine)[0]


def target_grid(
    shape: tuple[int, ...], spacing: tuple[float, ...], target: tuple[float, ...]
) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """New shape, per-axis step (in old voxels) and start (old continuous index) of the grid.

    TorchIO convention (see module doc): ``floor(n * s / t)`` voxels centred on the old grid.
    """
    n = np.asarray(shape[:3], dtype=float)
    s = np.asarray(spacing, dtype=float)
    t = np.asarray(target, dtype=float)
    new = np.floor(n * s / t + 1e-6)
    new = np.maximum(new, 1)
    new[n == 1] = 1
    step = t / s
    start = (n - 1) / 2 - (new - 1) / 2 * step
    return tuple(int(v) for v in new), step, start  # type: ignore[return-value]


def needs_resampling(volume: Volume, target: tuple[float, float, float] | None,
                     rtol: float = 1e-5) -> bool:
    """True when ``target`` is set and differs from the volume's spacing."""
    return target is not None and not np.allclose(volume.spacing, target, rtol=rtol, atol=0)


def _sitk_resample(
    volume: Volume,
    new_shape: tuple[int, int, int],
    origin: np.ndarray,
    step: np.ndarray,
    direction: np.ndarray,
    interpolation: Interpolation,
) -> np.ndarray:
    """Sample ``volume.data`` (index space: unit spacing, origin 0, identity direction) on the
    grid ``origin + direction @ (step * j)``; returns the (X, Y, Z[, C]) array of the new grid."""
    import SimpleITK as sitk

    is_label = volume.kind == "label"
    if is_label:
        interpolator = sitk.sitkNearestNeighbor
    elif interpolation == "bspline":
        interpolator = sitk.sitkBSpline
    elif interpolation == "linear":
        interpolator = sitk.sitkLinear
    else:
        raise ValueError(f"unknown interpolation {interpolation!r}; use 'linear' or 'bspline'")
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(v) for v in new_shape])
    resampler.SetOutputSpacing([float(v) for v in step])
    resampler.SetOutputOrigin([float(v) for v in origin])
    resampler.SetOutputDirection([float(v) for v in np.asarray(direction, dtype=float).ravel()])
    resampler.SetInterpolator(interpolator)
    resampler.SetDefaultPixelValue(0.0)
    if not is_label:
        resampler.SetOutputPixelType(sitk.sitkFloat32)  # interpolation runs in double
    data = volume.data
    channels = [data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])]
    outputs = []
    for channel in channels:
        if channel.dtype == np.bool_:
            channel = channel.astype(np.uint8)
        # sitk axis i == array axis i: (z, y, x) C order is (x, y, z) F order. A Fortran array
        # is passed without a copy here (SimpleITK copies it once into its own buffer).
        image = sitk.GetImageFromArray(np.ascontiguousarray(channel.transpose(2, 1, 0)))
        resampled = resampler.Execute(image)
        del image  # free SimpleITK's input copy before the output is copied out
        outputs.append(sitk.GetArrayFromImage(resampled).transpose(2, 1, 0))  # (x, y, z)
        del resampled
    result = outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=-1)
    if is_label and result.dtype != data.dtype:
        result = result.astype(data.dtype)
    return result


def _resample_op(volume: Volume, spacing, target, shape, new_shape, interpolation) -> dict:
    return {
        "op": "resample",
        "kind": volume.kind,
        "from_spacing": [round(float(v), 6) for v in spacing],
        "to_spacing": [round(float(v), 6) for v in target],
        "from_shape": [int(v) for v in shape],
        "to_shape": [int(v) for v in new_shape],
        "interpolation": "nearest" if volume.kind == "label" else interpolation,
        "grid": "centred, floor(n*s/t) (TorchIO Resample convention)",
    }


def resample(
    volume: Volume,
    target: tuple[float, float, float],
    interpolation: Interpolation = "linear",
) -> tuple[Volume, dict[str, Any]]:
    """Resample ``volume`` to ``target`` spacing (mm, in its own axis order).

    Images: linear or B-spline (order 3) into float32. Labels: nearest neighbour, dtype kept.
    Returns the new volume and the operation record.
    """
    shape = volume.shape
    new_shape, step, start = target_grid(shape, volume.spacing, target)
    data = _sitk_resample(volume, new_shape, start, step, np.eye(3), interpolation)
    index_to_old = np.eye(4)
    index_to_old[:3, :3] = np.diag(step)
    index_to_old[:3, 3] = start
    out = Volume(data=data, affine=volume.affine @ index_to_old, kind=volume.kind)
    return out, _resample_op(volume, volume.spacing, target, shape, new_shape, interpolation)


def resample_to_ras(
    volume: Volume,
    target: tuple[float, float, float],
    interpolation: Interpolation = "linear",
) -> tuple[Volume, list[dict[str, Any]]]:
    """``resample(reorient_to_ras(volume)[0], target)`` in one step, reading the stored array.

    The RAS grid is mapped back to the stored axes (a signed permutation, SimpleITK's output
    direction), so a flipped or transposed input is never copied into RAS order first. Returns
    the volume and the operation records (reorient, when needed, then resample).
    """
    ornt = io_orientation(volume.affine)
    to_source = inv_ornt_aff(ornt, volume.shape)  # RAS voxel index -> stored voxel index
    ras_affine = volume.affine @ to_source
    source, _ = ras_transform(volume.affine)
    ras_shape = tuple(volume.shape[source[k]] for k in range(3))
    ras_spacing = voxel_sizes(ras_affine)
    new_shape, step, start = target_grid(ras_shape, tuple(ras_spacing), target)
    permutation, offset = to_source[:3, :3], to_source[:3, 3]
    data = _sitk_resample(volume, new_shape, permutation @ start + offset, step, permutation,
                          interpolation)
    index_to_ras = np.eye(4)
    index_to_ras[:3, :3] = np.diag(step)
    index_to_ras[:3, 3] = start
    out = Volume(data=data, affine=ras_affine @ index_to_ras, kind=volume.kind)
    ops = []
    if not np.array_equal(to_source, np.eye(4)):
        ops.append({"op": "reorient", "from": volume.orientation, "to": out.orientation})
    ops.append(_resample_op(volume, ras_spacing, target, ras_shape, new_shape, interpolation))
    return out, ops


def orientation_code(affine: np.ndarray) -> str:
    return "".join(nib.aff2axcodes(affine))
