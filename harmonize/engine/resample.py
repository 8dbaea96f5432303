"""Geometry: reorientation to RAS+ and resampling to a target spacing.

Reorientation is the closest canonical orientation (``nibabel.as_closest_canonical``): axes are
permuted and flipped, never interpolated, so the result is a view of the input voxels.

Resampling runs in voxel-index space. Linear and nearest-neighbour sampling are separable on
these grids and run plane by plane in numpy (:mod:`harmonize.engine.separable`: the same samples
as SimpleITK's ``ResampleImageFilter``, several times less CPU and no full-size temporaries); the
cubic B-spline uses SimpleITK's ``ResampleImageFilter``. The output
grid follows one of two conventions (:data:`GRID_CONVENTIONS`), each computed with the same float
operations as its source, so the shapes agree on real float spacings (e.g. 256 voxels of
0.78124999999999989 mm to 1 mm: 199 voxels, as ``floor(199.99999999999997)``):

* ``"torchio"`` (default; TorchIO ``Resample``): ``floor(n * spacing / target)`` voxels per axis
  (singleton axes stay 1), centred on the old grid (same centre of the field of view), so the
  extent is the same or slightly smaller and nothing is extrapolated;
* ``"monai"`` (MONAI ``Spacing(pixdim, diagonal=False)``, as SAT-DS uses it): the corner grid of
  ``monai.data.utils.compute_shape_offset`` with ``scale_extent=False``: ``round((n - 1) * spacing
  / target) + 1`` voxels starting at the first input voxel; samples beyond the last input voxel
  take the border value (MONAI's ``padding_mode="border"``).

In both the axes keep their directions (an oblique RAS-ish affine stays oblique).

Images are interpolated linearly or with a cubic B-spline (into float32); label maps always with
nearest neighbour (values and dtype kept). The ``Volume.kind`` decides, not the caller.
"""

from __future__ import annotations

from typing import Any, Literal

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes
from nibabel.orientations import inv_ornt_aff, io_orientation

from harmonize.engine.separable import (
    AxisPlan,
    linear_plan,
    nearest_plan,
    resample_separable,
    sitk_nearest_plan,
)
from harmonize.read.grid import in_voxel_order_of
from harmonize.read.volume import Volume

_RAS = np.eye(4)

Interpolation = Literal["linear", "bspline"]
GridConvention = Literal["torchio", "monai"]
#: The output-grid conventions :func:`resample` and :func:`resample_to_ras` accept.
GRID_CONVENTIONS: tuple[str, ...] = ("torchio", "monai")


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

    TorchIO convention (``Resample.get_reference_image``): ``floor(n * s / t)`` voxels, the same
    float expression as TorchIO (no tolerance, so a spacing stored as 0.78124999999999989 gives
    what TorchIO gives), singleton axes stay 1, centred on the old grid.
    """
    n = np.asarray(shape[:3], dtype=float)
    s = np.asarray(spacing, dtype=float)
    t = np.asarray(target, dtype=float)
    new = np.floor(n * s / t)
    new = np.maximum(new, 1)
    new[n == 1] = 1
    step = t / s
    start = (n - 1) / 2 - (new - 1) / 2 * step
    return tuple(int(v) for v in new), step, start  # type: ignore[return-value]


def monai_grid(
    shape: tuple[int, ...], affine: np.ndarray, target: tuple[float, ...]
) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """Like :func:`target_grid`, for MONAI's ``Spacing(pixdim=target, diagonal=False)``.

    The same computation as ``monai.data.utils.zoom_affine`` + ``compute_shape_offset``
    (``scale_extent=False``): the new affine keeps the rotation of ``affine`` with zooms
    ``target``; the shape is ``round(ptp(corners) + 1)`` of the input voxel-centre corners in the
    new index space; the origin is the corner that is lowest on every new axis (the first voxel
    of a RAS+ volume), else the grids share their centre. The step is the diagonal of the
    old-index-per-new-index matrix (exact for orthogonal, also oblique, affines).
    """
    affine = np.asarray(affine, dtype=float)
    n = np.asarray(shape[:3], dtype=float)
    rzs = affine[:3, :3]
    zs = np.linalg.cholesky(rzs.T @ rzs).T
    new_affine = np.eye(4)
    new_affine[:3, :3] = rzs @ np.linalg.inv(zs) @ np.diag(
        np.sign(np.diag(zs)) * np.abs(np.asarray(target, dtype=float)))
    corners = np.asarray(np.meshgrid(*[(0.0, v - 1.0) for v in n], indexing="ij")).reshape(3, -1)
    corners = np.concatenate((corners, np.ones_like(corners[:1])))
    out = np.linalg.solve(new_affine, affine) @ corners
    dist = out[:-1].copy()
    new = np.round(np.ptp(out[:-1] / out[-1], axis=1) + 1.0)
    world = affine @ corners
    offset = None
    for i in range(corners.shape[1]):
        if np.allclose(np.min(dist - dist[:, i:i + 1], 1), 0.0, rtol=1e-3):
            offset = world[:-1, i]
            break
    if offset is None:
        offset = rzs @ (n / 2.0) + affine[:3, 3] - new_affine[:3, :3] @ (new / 2.0)
    new_affine[:3, 3] = offset
    index_to_old = np.linalg.solve(affine, new_affine)
    return (tuple(int(v) for v in new), np.diag(index_to_old)[:3].copy(),  # type: ignore[return-value]
            index_to_old[:3, 3].copy())


def output_grid(
    shape: tuple[int, ...], affine: np.ndarray, target: tuple[float, ...],
    grid: GridConvention = "torchio",
) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """The output grid of ``grid`` convention for a volume of ``shape`` and ``affine``:
    ``(new_shape, step, start)`` in the input's voxel-index space (see the module doc)."""
    if grid == "torchio":
        return target_grid(shape, tuple(voxel_sizes(affine)), target)
    if grid == "monai":
        return monai_grid(shape, affine, target)
    raise ValueError(f"unknown grid convention {grid!r}; use one of {GRID_CONVENTIONS}")


def needs_resampling(volume: Volume, target: tuple[float, float, float] | None,
                     rtol: float = 1e-5) -> bool:
    """True when ``target`` is set and differs from the volume's spacing."""
    return target is not None and not np.allclose(volume.spacing, target, rtol=rtol, atol=0)


def _sample(
    volume: Volume,
    new_shape: tuple[int, int, int],
    origin: np.ndarray,
    step: np.ndarray,
    direction: np.ndarray,
    interpolation: Interpolation,
    border: bool = False,
) -> np.ndarray:
    """Sample ``volume.data`` (index space: unit spacing, origin 0, identity direction) on the
    grid ``origin + direction @ (step * j)``; returns the (X, Y, Z[, C]) array of the new grid.
    Linear and nearest run separably (:func:`_separable`), B-spline in SimpleITK.

    Samples outside the input are 0, or with ``border`` the value at the nearest border position
    (MONAI's ``padding_mode="border"``: the input is edge-padded just enough, only when the grid
    reaches beyond it)."""
    import SimpleITK as sitk

    is_label = volume.kind == "label"
    if is_label or interpolation == "linear":
        return _separable(volume.data, new_shape, origin, step, direction,
                          linear=not is_label, border=border)
    if interpolation == "bspline":
        interpolator = sitk.sitkBSpline
    else:
        raise ValueError(f"unknown interpolation {interpolation!r}; use 'linear' or 'bspline'")
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(v) for v in new_shape])
    resampler.SetOutputSpacing([float(v) for v in step])
    resampler.SetOutputOrigin([float(v) for v in origin])
    resampler.SetOutputDirection([float(v) for v in np.asarray(direction, dtype=float).ravel()])
    resampler.SetInterpolator(interpolator)
    resampler.SetDefaultPixelValue(0.0)
    resampler.SetOutputPixelType(sitk.sitkFloat32)  # interpolation runs in double
    data = volume.data
    pad = _border_padding(data.shape[:3], origin, step, direction, new_shape) if border else None
    if pad is not None:
        origin = np.asarray(origin, dtype=float) + [lo for lo, _ in pad]
        resampler.SetOutputOrigin([float(v) for v in origin])
        data = np.pad(data, pad + [(0, 0)] * (data.ndim - 3), mode="edge")
    channels = [data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])]
    outputs = []
    for channel in channels:
        # sitk axis i == array axis i: (z, y, x) C order is (x, y, z) F order. A Fortran array
        # is passed without a copy here (SimpleITK copies it once into its own buffer).
        image = sitk.GetImageFromArray(np.ascontiguousarray(channel.transpose(2, 1, 0)))
        resampled = resampler.Execute(image)
        del image  # free SimpleITK's input copy before the output is copied out
        outputs.append(sitk.GetArrayFromImage(resampled).transpose(2, 1, 0))  # (x, y, z)
        del resampled
    return outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=-1)


def _separable(
    data: np.ndarray, new_shape: tuple[int, int, int], origin: np.ndarray, step: np.ndarray,
    direction: np.ndarray, *, linear: bool, border: bool,
) -> np.ndarray:
    """Linear (float32) or nearest (dtype kept) sampling of ``data`` (X, Y, Z[, C]) on the
    separable grid ``origin + direction @ (step * j)``, ``direction`` a signed permutation.

    Nearest with ``border`` is MONAI/PyTorch ``grid_sample``'s: ties (x.5) round half to even in
    the output's (RAS) index space, where MONAI rounds them (a flipped axis from its far end);
    positions outside take the border voxel. Without ``border`` it is SimpleITK's."""
    direction = np.asarray(direction, dtype=float)
    source = [int(np.argmax(np.abs(direction[:, k]))) for k in range(3)]
    plans: list[AxisPlan] = [linear_plan(np.zeros(0), 1, border)] * 3
    for k, axis in enumerate(source):
        n = data.shape[axis]
        positions = origin[axis] + direction[axis, k] * step[k] * np.arange(new_shape[k])
        if linear:
            plans[axis] = linear_plan(positions, n, border)
        elif not border:
            plans[axis] = sitk_nearest_plan(positions, n)
        elif direction[axis, k] < 0:  # round where MONAI does: after the flip to RAS
            index = (n - 1) - np.clip(np.rint((n - 1) - positions), 0, n - 1)
            plans[axis] = nearest_plan(index, np.ones(len(positions), dtype=bool))
        else:
            index = np.clip(np.rint(positions), 0, n - 1)
            plans[axis] = nearest_plan(index, np.ones(len(positions), dtype=bool))
    channels = [data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])]
    outputs = [resample_separable(c, plans, source, linear=linear) for c in channels]
    return outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=-1)


_GRID_RECORD = {
    "torchio": "centred, floor(n*s/t) (TorchIO Resample convention)",
    "monai": "first voxel kept, round((n-1)*s/t)+1, border padding (MONAI Spacing convention)",
}


def _border_padding(
    shape: tuple[int, ...], origin: np.ndarray, step: np.ndarray, direction: np.ndarray,
    new_shape: tuple[int, int, int],
) -> list[tuple[int, int]] | None:
    """Voxels to add before/after each input axis so every sample lies inside ``[0, n - 1]``;
    ``None`` when none are needed."""
    last = np.asarray(new_shape, dtype=float) - 1
    corners = np.asarray(np.meshgrid(*[(0.0, v) for v in last], indexing="ij")).reshape(3, -1)
    positions = np.asarray(origin, dtype=float)[:, None] + np.asarray(direction, dtype=float) @ (
        np.asarray(step, dtype=float)[:, None] * corners)
    low = np.ceil(np.maximum(0.0, -positions.min(axis=1)) - 1e-9)
    high = np.ceil(np.maximum(0.0, positions.max(axis=1) - (np.asarray(shape) - 1)) - 1e-9)
    if not (low.any() or high.any()):
        return None
    return [(int(lo), int(hi)) for lo, hi in zip(low, high, strict=True)]


def _resample_op(volume: Volume, spacing, target, shape, new_shape, interpolation,
                 grid: GridConvention) -> dict:
    return {
        "op": "resample",
        "kind": volume.kind,
        "from_spacing": [round(float(v), 6) for v in spacing],
        "to_spacing": [round(float(v), 6) for v in target],
        "from_shape": [int(v) for v in shape],
        "to_shape": [int(v) for v in new_shape],
        "interpolation": "nearest" if volume.kind == "label" else interpolation,
        "grid": _GRID_RECORD[grid],
    }


def resample(
    volume: Volume,
    target: tuple[float, float, float],
    interpolation: Interpolation = "linear",
    grid: GridConvention = "torchio",
) -> tuple[Volume, dict[str, Any]]:
    """Resample ``volume`` to ``target`` spacing (mm, in its own axis order) on the output grid
    of convention ``grid`` (module doc).

    Images: linear or B-spline (order 3) into float32. Labels: nearest neighbour, dtype kept.
    Returns the new volume and the operation record.
    """
    shape = volume.shape
    new_shape, step, start = output_grid(shape, volume.affine, target, grid)
    data = _sample(volume, new_shape, start, step, np.eye(3), interpolation,
                          border=grid == "monai")
    index_to_old = np.eye(4)
    index_to_old[:3, :3] = np.diag(step)
    index_to_old[:3, 3] = start
    out = Volume(data=data, affine=volume.affine @ index_to_old, kind=volume.kind)
    return out, _resample_op(volume, volume.spacing, target, shape, new_shape, interpolation, grid)


def resample_to_ras(
    volume: Volume,
    target: tuple[float, float, float],
    interpolation: Interpolation = "linear",
    grid: GridConvention = "torchio",
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
    new_shape, step, start = output_grid(ras_shape, ras_affine, target, grid)
    permutation, offset = to_source[:3, :3], to_source[:3, 3]
    data = _sample(volume, new_shape, permutation @ start + offset, step, permutation,
                          interpolation, border=grid == "monai")
    index_to_ras = np.eye(4)
    index_to_ras[:3, :3] = np.diag(step)
    index_to_ras[:3, 3] = start
    out = Volume(data=data, affine=ras_affine @ index_to_ras, kind=volume.kind)
    ops = []
    if not np.array_equal(to_source, np.eye(4)):
        ops.append({"op": "reorient", "from": volume.orientation, "to": out.orientation})
    ops.append(_resample_op(volume, ras_spacing, target, ras_shape, new_shape, interpolation,
                            grid))
    return out, ops


def orientation_code(affine: np.ndarray) -> str:
    return "".join(nib.aff2axcodes(affine))


def resample_onto(volume: Volume, shape: tuple[int, ...], affine: np.ndarray,
                  interpolation: Interpolation = "linear") -> Volume:
    """``volume`` sampled on another grid (``shape``, ``affine``: e.g. a PET channel on its CT's
    grid) by :func:`_sample`; outside ``volume`` is 0. Images interpolate (float32), labels take
    the nearest value. The grids' axes must be parallel (scaling, flips, axis order and shift
    differ); a :class:`ValueError` says so otherwise."""
    index_map = np.linalg.inv(np.asarray(volume.affine, float)) @ np.asarray(affine, float)
    step = np.linalg.norm(index_map[:3, :3], axis=0)
    direction = index_map[:3, :3] / step
    permutation = np.round(direction)
    if not (np.allclose(direction, permutation, atol=1e-4)
            and np.allclose(np.abs(permutation).sum(axis=0), 1)
            and np.allclose(np.abs(permutation).sum(axis=1), 1)):
        raise ValueError("the two grids' axes are not parallel (one is rotated against the "
                         "other); only scaled, flipped, permuted and shifted grids are resampled")
    new_shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    data = _sample(volume, new_shape, index_map[:3, 3], step, permutation, interpolation)
    return Volume(data=data, affine=np.asarray(affine, float), kind=volume.kind)
