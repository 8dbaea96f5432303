"""Separable resampling (harmonize.engine.separable) against independent samplers.

Oracles: SimpleITK's ResampleImageFilter built here, directly (sitkLinear / sitkNearestNeighbor,
default value 0), and PyTorch's ``grid_sample`` (``padding_mode="border"``, what MONAI's
``Spacing`` uses) for the border mode. Random grids: axis permutations, flips, up- and
down-sampling, origins partly outside the input, C/F-ordered and negatively strided inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from harmonize.engine.resample import _sample
from harmonize.read.volume import Volume

#: float32 arithmetic (ours) vs float64 (SimpleITK, torch float64): a few float32 ulps of |x|
ATOL = 2e-3  # values are up to 1000 in magnitude: float32 ulp there is 6e-5


def _random_grid(rng, shape):
    perm = rng.permutation(3)
    signs = rng.choice([-1.0, 1.0], 3)
    direction = np.zeros((3, 3))
    direction[perm, range(3)] = signs
    new_shape = tuple(int(v) for v in rng.integers(2, 25, 3))
    step = rng.uniform(0.3, 2.5, 3)
    origin = rng.uniform(-2.0, 5.0, 3)
    for k in range(3):
        if signs[k] < 0:
            origin[perm[k]] = shape[perm[k]] - 1 + rng.uniform(-2.0, 2.0)
    return new_shape, origin, step, direction


def _sitk_reference(data, new_shape, origin, step, direction, nearest):
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    f = sitk.ResampleImageFilter()
    f.SetSize([int(v) for v in new_shape])
    f.SetOutputSpacing([float(v) for v in step])
    f.SetOutputOrigin([float(v) for v in origin])
    f.SetOutputDirection([float(v) for v in direction.ravel()])
    f.SetInterpolator(sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear)
    f.SetDefaultPixelValue(0)
    if not nearest:
        f.SetOutputPixelType(sitk.sitkFloat64)
    return sitk.GetArrayFromImage(f.Execute(image)).transpose(2, 1, 0)


def _layouts(data):
    return [data, np.asfortranarray(data), data[::-1, :, ::-1]]


@pytest.mark.parametrize("seed", range(12))
def test_linear_and_nearest_equal_simpleitk_on_random_grids(seed) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(3, 20, 3))
    image = rng.integers(-1000, 1000, shape).astype(np.int16)
    label = rng.integers(0, 5, shape).astype(np.uint8)
    new_shape, origin, step, direction = _random_grid(rng, shape)
    for data in _layouts(image):
        ours = _sample(Volume(data=data, affine=np.eye(4)), new_shape, origin, step, direction,
                       "linear")
        ref = _sitk_reference(data, new_shape, origin, step, direction, nearest=False)
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=ATOL)
    for data in _layouts(label):
        ours = _sample(Volume(data=data, affine=np.eye(4), kind="label"), new_shape, origin,
                       step, direction, "linear")
        ref = _sitk_reference(data, new_shape, origin, step, direction, nearest=True)
        assert ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("seed", range(6))
def test_border_mode_equals_torch_grid_sample_border(seed) -> None:
    """MONAI's Spacing samples with grid_sample(padding_mode="border", align_corners=True)."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(100 + seed)
    shape = tuple(int(v) for v in rng.integers(3, 16, 3))
    data = rng.normal(0, 300, shape)
    new_shape = tuple(int(v) for v in rng.integers(2, 20, 3))
    step = rng.uniform(0.4, 2.0, 3)
    origin = rng.uniform(-1.5, 1.0, 3)  # partly before the first voxel, often past the last
    positions = [origin[k] + step[k] * np.arange(new_shape[k]) for k in range(3)]
    grid = np.stack(np.meshgrid(*positions, indexing="ij"), axis=-1)  # (X', Y', Z', 3)
    normalized = 2.0 * grid / (np.asarray(shape, dtype=float) - 1.0) - 1.0
    # torch: input (N, C, D, H, W) = data axes (0, 1, 2); grid last dim is (W, H, D) order
    sample = torch.from_numpy(normalized[..., ::-1].copy())[None]
    for mode, kind in (("bilinear", "image"), ("nearest", "label")):
        values = data if kind == "image" else np.rint(np.abs(data) / 100)
        ref = F.grid_sample(torch.from_numpy(values)[None, None], sample, mode=mode,
                            padding_mode="border", align_corners=True)[0, 0].numpy()
        source = values.astype(np.float32) if kind == "image" else values.astype(np.uint8)
        ours = _sample(Volume(data=source, affine=np.eye(4), kind=kind), new_shape, origin,
                       step, np.eye(3), "linear", border=True)
        if kind == "image":
            np.testing.assert_allclose(ours, ref, rtol=0, atol=ATOL)
        else:
            exact = ~np.isclose(np.abs(grid - np.round(grid)), 0.5, atol=1e-9).any(axis=-1)
            np.testing.assert_array_equal(ours[exact], ref[exact].astype(np.uint8))


def test_multichannel_and_bool_inputs() -> None:
    rng = np.random.default_rng(7)
    data = rng.normal(size=(9, 8, 7, 2)).astype(np.float32)
    grid = ((5, 6, 4), np.array([0.5, 0.2, 0.1]), np.array([1.5, 1.2, 1.6]), np.eye(3))
    ours = _sample(Volume(data=data, affine=np.eye(4)), *grid, "linear")
    for c in range(2):
        ref = _sitk_reference(data[..., c], *grid, nearest=False)
        np.testing.assert_allclose(ours[..., c], ref, atol=1e-5)
    mask = data[..., 0] > 0
    out = _sample(Volume(data=mask, affine=np.eye(4), kind="label"), *grid, "linear")
    assert out.dtype == np.bool_
    ref = _sitk_reference(mask.astype(np.uint8), *grid, nearest=True)
    np.testing.assert_array_equal(out, ref.astype(bool))
