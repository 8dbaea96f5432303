"""Per-instance geometry of labelled objects (lesions): long and short axes, volume, mean intensity.

:func:`lesion_features` measures every requested value of an *instance* label map (one object per
value) against its image, in world millimetres, whatever the voxel order or spacing:

* ``long_axis_mm``: the longest in-plane diameter, as the Response Evaluation Criteria In Solid
  Tumors 1.1 measure it: the maximal Feret diameter of the object on each axial slice, taking the
  slice where it is largest (``axial_slice``, a voxel index along the label's slice axis). The
  axial plane is spanned by the two voxel axes whose directions are closest to world x and y; the third is the slice axis.
* ``short_axis_mm``: on that slice, the object's extent perpendicular to the long axis (its caliper
  width in that direction; for a convex lesion the longest perpendicular diameter).
* ``volume_ml``, ``voxels``, ``slices`` (number of axial slices it touches), ``mean_hu`` (mean image
  value inside it, in the image's units after NIfTI scaling: HU for CT) and ``centroid_mm`` (world
  RAS coordinates of its voxel centres' mean).

Diameters are measured on the pixel outline: the points are the midpoints of the edges of the
object's pixels, so a row of ``n`` pixels measures ``n`` pixel widths (as a radiologist's caliper
across the rendered pixels would), and a single pixel measures one pixel width. Values are rounded
for the manifest: millimetres to 0.001, millilitres to 0.0001, intensities to 0.01.

:func:`case_instances` applies this to a case whose plugin declares instances
(:meth:`harmonize.plugin.dataset.DatasetPlugin.instances`); manifest builders store the result, one entry
per value (the plugin's attributes, then these features), in the record's top-level ``instances``
field via :func:`instance_fields`. Features are measured on the source volumes as read (original
grid and intensities), never on resampled or intensity-scaled outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from harmonize.errors import GridMismatchError, HarmonizeError, LabelError
from harmonize.read.grid import describe_grid, in_voxel_order_of, same_grid
from harmonize.read.volume import Volume

if TYPE_CHECKING:
    from harmonize.manifest.records import Case
    from harmonize.plugin.dataset import DatasetPlugin

#: keys every feature dict has (a plugin's instance attributes may not reuse them)
FEATURE_KEYS = (
    "value", "voxels", "volume_ml", "mean_hu", "long_axis_mm", "short_axis_mm",
    "axial_slice", "slices", "centroid_mm",
)


def lesion_features(image: Volume, label: Volume, values: Iterable[int]) -> list[dict[str, Any]]:
    """One feature dict per value (sorted), measured on ``label`` with intensities from ``image``.

    ``image`` and ``label`` must cover the same voxel grid; a grid stored with flipped or permuted
    axes is realigned without resampling. A value absent from the label gives ``voxels == 0`` and
    ``None`` for the measurements. Raises :class:`LabelError` when the grids differ or a volume is
    not 3D.
    """
    wanted = sorted({int(v) for v in values})
    labels = np.asarray(label.data)
    if labels.ndim != 3:
        raise LabelError(f"instance label map must be 3D, got shape {labels.shape}",
                         hint="pass one 3D label map per case")
    intensities = _aligned_image(image, label)
    affine = np.asarray(label.affine, dtype=float)
    slice_axis = _slice_axis(affine)
    plane_axes = tuple(a for a in range(3) if a != slice_axis)
    plane = _plane_basis(affine, plane_axes)
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0

    coords = np.nonzero(labels)
    found = labels[coords]
    if not np.issubdtype(found.dtype, np.integer):
        found = np.rint(found)
    found = found.astype(np.int64)
    order = np.argsort(found, kind="stable")
    found = found[order]
    points = np.stack(coords, axis=1)[order]

    results = []
    for value in wanted:
        lo, hi = np.searchsorted(found, [value, value + 1])
        voxels = points[lo:hi]
        if len(voxels) == 0:
            results.append(_absent(value))
            continue
        long_axis, short_axis, best_slice = _axes(voxels, slice_axis, plane_axes, plane)
        centroid = affine[:3, :3] @ voxels.mean(axis=0) + affine[:3, 3]
        results.append({
            "value": value,
            "voxels": int(len(voxels)),
            "volume_ml": round(len(voxels) * voxel_ml, 4),
            "mean_hu": round(float(np.mean(intensities[tuple(voxels.T)], dtype=np.float64)), 2),
            "long_axis_mm": round(long_axis, 3),
            "short_axis_mm": round(short_axis, 3),
            "axial_slice": int(best_slice),
            "slices": int(len(np.unique(voxels[:, slice_axis]))),
            "centroid_mm": [round(float(c), 3) for c in centroid],
        })
    return results


def case_instances(
    plugin: DatasetPlugin, case: Case, *, image: Volume | None = None, label: Volume | None = None
) -> list[dict[str, Any]] | None:
    """The ``instances`` field of ``case``'s manifest record, or ``None`` if the plugin declares no
    instances for it: per value, the plugin's attributes followed by :func:`lesion_features`.

    ``image`` and ``label`` are the case's volumes *as read* (source grid, original intensities)
    when the caller has them already; otherwise they are read here. Errors are re-raised as
    :class:`LabelError` naming the dataset, the case and the label file.
    """
    declared = plugin.instances(case)
    if declared is None:
        return None
    dataset = plugin.dataset_id
    clash = sorted({k for attrs in declared.values() for k in attrs} & set(FEATURE_KEYS))
    if clash:
        raise LabelError(
            f"instance attributes reuse feature names {clash}", dataset=dataset,
            case=case.case_id, file=case.label, hint="rename them in the plugin's instances()",
        )
    try:
        if label is None or image is None:
            from harmonize.read.case import read_case  # the reading layer builds on this package

            data = read_case(case, plugin=plugin)
            image, label = data.image, data.label
        if label is None:
            raise LabelError("the plugin declares instances but the case has no label map",
                             hint="return None from instances() for unlabelled cases")
        features = lesion_features(image, label, declared)
    except HarmonizeError as exc:
        raise LabelError(
            f"cannot measure instances: {exc.message}", dataset=dataset, case=case.case_id,
            file=exc.file or case.label, hint=exc.hint,
        ) from exc
    return [{"value": f["value"], **declared[f["value"]], **f} for f in features]


def instance_fields(
    plugin: DatasetPlugin, case: Case, *, image: Volume | None = None, label: Volume | None = None
) -> dict[str, Any]:
    """``{"instances": [...]}`` for a record's extra fields, or ``{}`` when the plugin declares no
    instances (so builders can always write ``extra={..., **instance_fields(...)}``)."""
    found = case_instances(plugin, case, image=image, label=label)
    return {} if found is None else {"instances": found}


# helpers ---------------------------------------------------------------------------------------


def _absent(value: int) -> dict[str, Any]:
    return {
        "value": value, "voxels": 0, "volume_ml": 0.0, "mean_hu": None, "long_axis_mm": None,
        "short_axis_mm": None, "axial_slice": None, "slices": 0, "centroid_mm": None,
    }


def _aligned_image(image: Volume, label: Volume) -> np.ndarray:
    """``image.data`` on ``label``'s voxel grid (axes flipped/permuted if needed, never resampled;
    the grids must agree by the one rule of :mod:`harmonize.read.grid`)."""
    data = np.asanyarray(image.data)
    if data.ndim != 3:
        raise LabelError(f"image must be 3D to measure instances, got shape {data.shape}",
                         hint="measure one channel at a time")
    lab_aff = np.asarray(label.affine, dtype=float)
    data, img_aff = in_voxel_order_of(data, np.asarray(image.affine, dtype=float), lab_aff)
    if data.shape != tuple(np.shape(label.data)) or not same_grid(img_aff, lab_aff):
        raise GridMismatchError(
            f"image grid ({describe_grid(image)}) and label grid ({describe_grid(label)}) "
            "differ beyond axis flips",
            hint="check that the label belongs to this image",
        )
    return data


def _slice_axis(affine: np.ndarray) -> int:
    """The voxel axis whose direction is closest to world z (superior-inferior)."""
    columns = affine[:3, :3]
    cosines = np.abs(columns[2]) / np.linalg.norm(columns, axis=0)
    return int(np.argmax(cosines))


def _plane_basis(affine: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """2x2 matrix taking in-plane voxel offsets (along ``axes``) to orthonormal plane coordinates
    in mm, so Euclidean distances are exact for any spacing, shear or obliquity."""
    u, w = affine[:3, axes[0]], affine[:3, axes[1]]
    e1 = u / np.linalg.norm(u)
    w_perp = w - (w @ e1) * e1
    e2 = w_perp / np.linalg.norm(w_perp)
    return np.array([[u @ e1, u @ e2], [w @ e1, w @ e2]])


def _axes(
    voxels: np.ndarray, slice_axis: int, plane_axes: tuple[int, ...], plane: np.ndarray
) -> tuple[float, float, int]:
    """(long axis, short axis, slice index) of one object: largest Feret diameter over slices."""
    best = (-1.0, 0.0, 0)
    voxels = voxels[np.argsort(voxels[:, slice_axis], kind="stable")]
    slices = voxels[:, slice_axis]
    starts = np.flatnonzero(np.r_[True, slices[1:] != slices[:-1]])
    for start, end in zip(starts, [*starts[1:], len(slices)]):
        pixels = voxels[start:end][:, plane_axes]
        hull = _convex_hull(_outline_points(pixels) @ plane)
        long_axis, direction = _feret_max(hull)
        if long_axis > best[0]:
            normal = np.array([-direction[1], direction[0]])
            extent = hull @ normal
            best = (long_axis, float(extent.max() - extent.min()), int(slices[start]))
    return best


def _outline_points(pixels: np.ndarray) -> np.ndarray:
    """Edge midpoints of each row's first and last pixel: the outer three of each (the fourth
    lies between the others). Their hull is the hull of all pixels' edge midpoints, because every
    other pixel's midpoints lie on segments between them."""
    rows = pixels[:, 0]
    order = np.lexsort((pixels[:, 1], rows))
    rows, cols = rows[order].astype(float), pixels[order, 1].astype(float)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    ends = np.r_[starts[1:], len(rows)] - 1
    r, first, last = rows[starts], cols[starts], cols[ends]
    return np.concatenate([
        np.stack([r - 0.5, first], 1), np.stack([r + 0.5, first], 1), np.stack([r, first - 0.5], 1),
        np.stack([r - 0.5, last], 1), np.stack([r + 0.5, last], 1), np.stack([r, last + 0.5], 1),
    ])


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the 2D convex hull (Andrew's monotone chain); collinear points dropped."""
    pts = [tuple(p) for p in np.unique(np.round(points, 9), axis=0).tolist()]
    if len(pts) <= 2:
        return np.array(pts, dtype=float)

    def chain(sequence: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for px, py in sequence:
            while len(out) >= 2:
                (ox, oy), (ax, ay) = out[-2], out[-1]
                if (ax - ox) * (py - oy) - (ay - oy) * (px - ox) > 0:
                    break
                out.pop()
            out.append((px, py))
        return out

    lower, upper = chain(pts), chain(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=float)


def _feret_max(hull: np.ndarray) -> tuple[float, np.ndarray]:
    """Largest distance between hull vertices and its unit direction."""
    diff = hull[:, None, :] - hull[None, :, :]
    dist = np.einsum("ijk,ijk->ij", diff, diff)
    i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
    length = float(np.sqrt(dist[i, j]))
    if length == 0.0:
        return 0.0, np.array([1.0, 0.0])
    return length, diff[i, j] / length
