"""Lesion features (harmonize.manifest.lesions) against independent computations on fabricated shapes.

The independent reference measures each axial slice by brute force: every edge midpoint of every
pixel, scaled by the voxel spacing, all pairwise distances (scipy pdist), no hull and no affine
algebra. Volumes come from voxel counts x spacing, centroids from scipy.ndimage.center_of_mass.
"""

from __future__ import annotations

import numpy as np
import pytest
from nibabel.orientations import apply_orientation, inv_ornt_aff
from scipy import ndimage
from scipy.spatial.distance import pdist, squareform

from harmonize.errors import LabelError
from harmonize.manifest.lesions import lesion_features
from harmonize.read.volume import Volume


def ellipsoid_volume(
    shape: tuple[int, int, int], spacing: tuple[float, float, float],
    centre_mm: tuple[float, float, float], semi_axes: tuple[float, float, float], angle_deg: float,
) -> np.ndarray:
    """Voxels (centres at index x spacing) inside an ellipsoid rotated in the x-y plane."""
    x, y, z = (np.arange(n) * s - c for n, s, c in zip(shape, spacing, centre_mm))
    x, y, z = np.meshgrid(x, y, z, indexing="ij")
    t = np.deg2rad(angle_deg)
    u, v = x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)
    a, b, c = semi_axes
    return (u / a) ** 2 + (v / b) ** 2 + (z / c) ** 2 <= 1.0


def brute_force_axes(mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float]:
    """(long, short) by brute force over all pixel edge midpoints of every axial slice (axis 2)."""
    best = (-1.0, 0.0)
    offsets = np.array([[-0.5, 0], [0.5, 0], [0, -0.5], [0, 0.5]])
    for k in np.unique(np.nonzero(mask)[2]):
        pixels = np.argwhere(mask[:, :, k]).astype(float)
        points = (pixels[:, None, :] + offsets[None]).reshape(-1, 2) * np.asarray(spacing[:2])
        dist = squareform(pdist(points))
        i, j = np.unravel_index(np.argmax(dist), dist.shape)
        if dist[i, j] > best[0]:
            d = (points[j] - points[i]) / dist[i, j]
            width = points @ np.array([-d[1], d[0]])
            best = (float(dist[i, j]), float(width.max() - width.min()))
    return best


CASES = [
    # spacing, semi-axes (mm), angle: CT-like anisotropic slices, anisotropic in-plane pixels
    ((0.74, 0.74, 2.5), (9.0, 5.0, 6.0), 23.0),
    ((0.6, 0.9, 1.5), (7.5, 4.0, 5.0), -61.0),
    ((0.8, 0.8, 5.0), (12.0, 11.0, 10.0), 110.0),
]


@pytest.mark.parametrize(("spacing", "semi_axes", "angle"), CASES)
def test_axes_volume_hu_centroid_match_independent_computation(spacing, semi_axes, angle):
    shape = (40, 36, 14)
    centre = tuple(n * s / 2 for n, s in zip(shape, spacing))
    mask = ellipsoid_volume(shape, spacing, centre, semi_axes, angle)
    rng = np.random.default_rng(3)
    image = rng.normal(-80, 20, shape).astype(np.float32)
    image[mask] += 130
    label = mask.astype(np.uint8) * 7
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-100.0, 20.0, -300.0)

    [found] = lesion_features(Volume(image, affine), Volume(label, affine, "label"), [7])

    long_ref, short_ref = brute_force_axes(mask, spacing)
    assert found["long_axis_mm"] == pytest.approx(long_ref, abs=2e-3)
    assert found["short_axis_mm"] == pytest.approx(short_ref, abs=2e-3)
    # and close to the true ellipse (rasterization costs at most about a pixel)
    pixel = max(spacing[:2])
    assert abs(found["long_axis_mm"] - 2 * semi_axes[0]) <= 1.5 * pixel
    assert abs(found["short_axis_mm"] - 2 * semi_axes[1]) <= 1.5 * pixel
    assert found["voxels"] == int(mask.sum())
    assert found["volume_ml"] == pytest.approx(mask.sum() * np.prod(spacing) / 1000, abs=1e-4)
    true_ml = 4 / 3 * np.pi * np.prod(semi_axes) / 1000
    assert found["volume_ml"] == pytest.approx(true_ml, rel=0.08)
    assert found["mean_hu"] == pytest.approx(float(image[mask].mean()), abs=0.01)
    com = np.asarray(ndimage.center_of_mass(mask))
    assert found["centroid_mm"] == pytest.approx(list(affine[:3, :3] @ com + affine[:3, 3]), abs=1e-3)
    assert found["slices"] == len(np.unique(np.nonzero(mask)[2]))
    assert mask[:, :, found["axial_slice"]].any()


def test_a_pixel_row_and_a_single_pixel_measure_their_edges():
    label = np.zeros((20, 20, 3), dtype=np.int16)
    label[3:13, 5, 1] = 1   # 10 pixels along x
    label[15, 15, 0:2] = 2  # one pixel on two slices
    affine = np.diag([0.5, 0.8, 3.0, 1.0])
    image = Volume(np.zeros(label.shape, np.int16), affine)
    row, dot = lesion_features(image, Volume(label, affine, "label"), [1, 2])
    assert row["long_axis_mm"] == pytest.approx(5.0)   # 10 x 0.5 mm
    assert row["short_axis_mm"] == pytest.approx(0.8)  # one pixel across
    assert dot["long_axis_mm"] == pytest.approx(0.8) and dot["short_axis_mm"] == pytest.approx(0.5)
    assert dot["slices"] == 2 and dot["volume_ml"] == pytest.approx(2 * 1.2 / 1000)


def test_non_convex_lesion_uses_its_outline():
    mask = np.zeros((30, 30, 4), dtype=bool)
    mask[2:25, 2:6, 1:3] = True   # an L: long arm along x
    mask[2:6, 2:18, 1:3] = True   # short arm along y
    spacing = (0.7, 0.7, 2.0)
    affine = np.diag([*spacing, 1.0])
    [found] = lesion_features(Volume(np.zeros(mask.shape), affine),
                              Volume(mask.astype(np.uint8), affine, "label"), [1])
    long_ref, short_ref = brute_force_axes(mask, spacing)
    assert found["long_axis_mm"] == pytest.approx(long_ref, abs=2e-3)
    assert found["short_axis_mm"] == pytest.approx(short_ref, abs=2e-3)


def _reoriented(data: np.ndarray, affine: np.ndarray, ornt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return apply_orientation(data, ornt), affine @ inv_ornt_aff(ornt, data.shape)


def test_storage_order_and_in_plane_rotation_do_not_change_the_measurements():
    spacing = (0.74, 0.74, 2.0)
    shape = (40, 40, 12)
    centre = tuple(n * s / 2 for n, s in zip(shape, spacing))
    mask = ellipsoid_volume(shape, spacing, centre, (8.0, 4.5, 5.0), 37.0)
    image = np.where(mask, 45.0, -60.0)
    affine = np.diag([*spacing, 1.0])
    label = mask.astype(np.uint8) * 3
    [ref] = lesion_features(Volume(image, affine), Volume(label, affine, "label"), [3])

    # stored slice-first with flips (as KiTS19 does): x -> axis 2, y -> flipped axis 1,
    # z -> flipped axis 0 (nibabel ornt rows: input axis -> [output axis, flip])
    ornt = np.array([[2, 1], [1, -1], [0, -1]])
    lab_t, aff_t = _reoriented(label, affine, ornt)
    img_t, _ = _reoriented(image, affine, ornt)
    [moved] = lesion_features(Volume(img_t, aff_t), Volume(lab_t, aff_t, "label"), [3])
    for key in ("long_axis_mm", "short_axis_mm", "volume_ml", "mean_hu", "voxels", "slices"):
        assert moved[key] == pytest.approx(ref[key], abs=2e-3), key
    assert moved["centroid_mm"] == pytest.approx(ref["centroid_mm"], abs=1e-3)
    assert moved["axial_slice"] == shape[2] - 1 - ref["axial_slice"]

    # the scanner frame rotated about z: distances are unchanged, the centroid rotates with it
    t = np.deg2rad(30)
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    [turned] = lesion_features(Volume(image, rot @ affine), Volume(label, rot @ affine, "label"), [3])
    for key in ("long_axis_mm", "short_axis_mm", "volume_ml", "mean_hu"):
        assert turned[key] == pytest.approx(ref[key], abs=2e-3), key
    assert turned["centroid_mm"] == pytest.approx(list(rot[:3, :3] @ ref["centroid_mm"]), abs=1e-3)


def test_image_stored_with_flipped_axes_is_realigned_not_misread():
    spacing = (0.8, 0.8, 1.5)
    mask = ellipsoid_volume((30, 30, 10), spacing, (12.0, 12.0, 7.5), (5.0, 3.0, 4.0), 0.0)
    mask[:, :15] = False  # asymmetric in y, so a flip would move it off its intensities
    image = np.where(mask, 70.0, -500.0)
    affine = np.diag([*spacing, 1.0])
    flipped, flipped_aff = _reoriented(image, affine, np.array([[0, 1], [1, -1], [2, 1]]))
    [found] = lesion_features(Volume(flipped, flipped_aff),
                              Volume(mask.astype(np.uint8), affine, "label"), [1])
    assert found["mean_hu"] == pytest.approx(70.0)


def test_absent_values_grid_mismatch_and_float_masks():
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    label = np.zeros((10, 10, 4), dtype=np.float32)
    label[2:5, 2:5, 1:3] = 2.0000001  # float-stored mask: values are rounded
    image = Volume(np.zeros((10, 10, 4)), affine)
    present, absent = lesion_features(image, Volume(label, affine, "label"), [2, 9])
    assert present["voxels"] == 18
    assert absent == {
        "value": 9, "voxels": 0, "volume_ml": 0.0, "mean_hu": None, "long_axis_mm": None,
        "short_axis_mm": None, "axial_slice": None, "slices": 0, "centroid_mm": None,
    }
    with pytest.raises(LabelError, match="differ"):
        lesion_features(Volume(np.zeros((10, 10, 5)), affine), Volume(label, affine, "label"), [2])
    shifted = affine.copy()
    shifted[0, 3] = 4.0
    with pytest.raises(LabelError, match="differ"):
        lesion_features(Volume(np.zeros((10, 10, 4)), shifted), Volume(label, affine, "label"), [2])
    with pytest.raises(LabelError, match="3D"):
        lesion_features(Volume(np.zeros((10, 10, 4, 2)), affine), Volume(label, affine, "label"), [2])
