"""The one "same grid" rule, and putting a label map on its image's grid.

Two affines describe the same voxel grid when voxel sizes agree within :data:`AFFINE_RTOL`
(relative), direction cosines within :data:`AFFINE_RTOL` (absolute) and origins within
:data:`ORIGIN_VOXELS` of the smallest voxel: float32 header round-off passes, a shifted, flipped
or rescaled mask does not. A label stored in another axis order or with flipped axes (the same
physical grid) is permuted onto the image's voxel order with nibabel's orientation functions,
never interpolated. Every reader of a case (run, manifest, loader and cache, exports, QA, lesion
features) applies this rule through :func:`label_on_image_grid`.
"""

from __future__ import annotations

import numpy as np
from nibabel.affines import voxel_sizes
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform

from harmonize.errors import GridMismatchError, LabelError
from harmonize.read.nifti_writer import output_dtype
from harmonize.read.volume import Volume

#: Voxel-size (relative) and direction-cosine (absolute) tolerance of :func:`same_grid`.
AFFINE_RTOL = 1e-3
#: Origin tolerance of :func:`same_grid`, in voxels of the smallest voxel size.
ORIGIN_VOXELS = 0.1
#: Largest distance from an integer a float-stored label value may have (it is then rounded).
LABEL_ROUNDING = 1e-3


def same_grid(a: np.ndarray, b: np.ndarray) -> bool:
    """True when affines ``a`` and ``b`` describe the same voxel grid (see the module doc)."""
    za, zb = voxel_sizes(a), voxel_sizes(b)
    return bool(
        np.allclose(za, zb, rtol=AFFINE_RTOL, atol=0)
        and np.allclose(a[:3, :3] / za, b[:3, :3] / zb, atol=AFFINE_RTOL)
        and np.linalg.norm(a[:3, 3] - b[:3, 3]) <= ORIGIN_VOXELS * float(za.min())
    )


def describe_grid(volume: Volume) -> str:
    """``LPS spacing [..] origin [..]``: enough to see why two grids differ."""
    return (f"{volume.orientation} shape {list(volume.shape)} spacing "
            f"{np.round(voxel_sizes(volume.affine), 4).tolist()} origin "
            f"{np.round(volume.affine[:3, 3], 3).tolist()}")


def in_voxel_order_of(data: np.ndarray, affine: np.ndarray, target: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (first three axes) permuted/flipped into the voxel axis order of ``target``
    (closest orientation; a view, no interpolation), and the affine of the result."""
    transform = ornt_transform(io_orientation(affine), io_orientation(target))
    if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
        return data, affine
    moved = apply_orientation(data, transform)
    return moved, affine @ inv_ornt_aff(transform, data.shape[:3])


def label_on_image_grid(image: Volume, label: Volume) -> Volume:
    """``label`` on the image's voxel grid: a label volume with the image's affine and shape.

    Accepted: the same grid within tolerance, or the same physical grid in another axis order or
    with flipped axes (permuted, never resampled); otherwise :class:`GridMismatchError`.
    Float-stored labels must hold integers (within :data:`LABEL_ROUNDING`); values must be
    non-negative (:class:`LabelError`). The result is uint8, uint16 above 255, uint32 above
    65535. Errors name no dataset or case: the caller adds them.
    """
    data, affine = label.data, label.affine
    if not (data.shape[:3] == image.shape and same_grid(image.affine, affine)):
        data, affine = in_voxel_order_of(data, affine, image.affine)
        moved = Volume(data, affine, "label")
        if data.shape[:3] != image.shape:
            raise GridMismatchError(
                f"label shape {list(label.shape)} differs from image shape {list(image.shape)} "
                f"(label grid {describe_grid(label)}; image grid {describe_grid(image)})",
                hint="the mask must be on the image's voxel grid; check the pair belongs together",
            )
        if not same_grid(image.affine, affine):
            raise GridMismatchError(
                "label affine differs from image affine beyond tolerance (spacing and directions "
                f"{AFFINE_RTOL:g}, origin {ORIGIN_VOXELS:g} voxel): label grid "
                f"{describe_grid(moved)}; image grid {describe_grid(image)}",
                hint="the mask is not aligned with the image; fix the header or report the case",
            )
    return Volume(data=integer_labels(data), affine=image.affine, kind="label",
                  classes=label.classes)


def integer_labels(data: np.ndarray) -> np.ndarray:
    """Label voxels as the smallest unsigned integer type that holds them (see
    :func:`label_on_image_grid`); raises :class:`LabelError` for non-integer or negative values."""
    if data.dtype.kind == "f":
        if data.size and not np.isfinite(data.sum(dtype=np.float64)):
            raise LabelError("label map holds NaN or infinite values",
                             hint="re-export the mask with integer label values")
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            worst = float(np.abs(rounded - data).max())
            if worst > LABEL_ROUNDING:
                raise LabelError(
                    f"label map has non-integer values (off by up to {worst:.3g})",
                    hint="the mask was interpolated or is a probability map; use the original "
                    "integer mask",
                )
        data = rounded
    if data.size and data.min() < 0:
        raise LabelError(f"label map has negative values (min {data.min()})",
                         hint="label values must be non-negative integers")
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)
    if data.dtype.kind != "u" or data.dtype.itemsize > 2:
        data = data.astype(output_dtype(Volume(data, np.eye(4), "label")), copy=False)
    return data
