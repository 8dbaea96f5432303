"""Normalization core: orientation, spacing, intensity, label handling, writing, fingerprints.

References are independent implementations: nibabel ``as_closest_canonical``, TorchIO
``ToCanonical``/``Resample``, scipy ``map_coordinates`` and plain numpy formulas.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio

from harmonize.engine.normalize import (
    Settings,
    fingerprint,
    normalize_case,
    undo_intensity,
)
from harmonize.engine.resample import reorient_to_ras, resample, target_grid
from harmonize.errors import HarmonizeError, LabelError
from harmonize.read.nifti_writer import write_volume
from harmonize.read.volume import ScaledVolume, Volume, read_volume
from harmonize.testing.volumes import ct_phantom, slice_first_affine


def axis_affine(perm: tuple[int, int, int], flips: tuple[int, int, int],
                spacing=(0.7, 0.9, 2.5), shape=(5, 6, 7)) -> np.ndarray:
    """Affine whose array axis i points along world axis perm[i], flipped when flips[i]."""
    affine = np.zeros((4, 4))
    affine[3, 3] = 1
    for i, (world, flip) in enumerate(zip(perm, flips)):
        affine[world, i] = -spacing[i] if flip else spacing[i]
    affine[:3, 3] = [12.5, -30.0, 7.25]
    return affine


ORIENTATIONS = [
    (perm, flips)
    for perm in itertools.permutations(range(3))
    for flips in itertools.product((0, 1), repeat=3)
]


@pytest.mark.parametrize(("perm", "flips"), ORIENTATIONS,
                         ids=[f"{p}-{f}" for p, f in ORIENTATIONS])
def test_reorient_matches_nibabel_and_torchio(perm, flips):
    rng = np.random.default_rng(hash((perm, flips)) % 2**32)
    data = rng.integers(-1000, 1000, size=(5, 6, 7)).astype(np.int16)
    affine = axis_affine(perm, flips)
    ours, op = reorient_to_ras(Volume(data, affine))

    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    assert ours.orientation == "RAS"
    np.testing.assert_array_equal(ours.data, np.asanyarray(canonical.dataobj))
    np.testing.assert_allclose(ours.affine, canonical.affine, atol=1e-9)

    image = tio.ScalarImage(tensor=torch.from_numpy(data[None].astype(np.float32)), affine=affine)
    torchio_out = tio.ToCanonical()(image)
    np.testing.assert_array_equal(ours.data.astype(np.float32), torchio_out.data[0].numpy())
    np.testing.assert_allclose(ours.affine, torchio_out.affine, atol=1e-6)
    assert (op is None) == (perm == (0, 1, 2) and flips == (0, 0, 0))
    assert np.shares_memory(ours.data, data)  # a view: no interpolation, no copy


def test_reorient_keeps_channels_last():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(4, 5, 6, 3)).astype(np.float32)
    affine = axis_affine((2, 0, 1), (1, 0, 1), shape=(4, 5, 6))
    ours, _ = reorient_to_ras(Volume(data, affine))
    for c in range(3):
        ref = nib.as_closest_canonical(nib.Nifti1Image(data[..., c], affine))
        np.testing.assert_array_equal(ours.data[..., c], ref.get_fdata(dtype=np.float32))


def smooth_volume(shape, rng) -> np.ndarray:
    grid = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    field = sum(np.sin(3.1 * g + i) for i, g in enumerate(grid)) * 200.0
    return (field + rng.normal(0, 5, size=shape)).astype(np.float32)


def torchio_resample(data, affine, target, interpolation, label=None):
    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.from_numpy(data[None]), affine=affine))
    if label is not None:
        subject.add_image(tio.LabelMap(tensor=torch.from_numpy(label[None]), affine=affine),
                          "label")
    out = tio.Resample(target, image_interpolation=interpolation)(subject)
    return out


@pytest.mark.parametrize("interpolation", ["linear", "bspline"])
def test_resample_matches_torchio_anisotropic(interpolation):
    rng = np.random.default_rng(2)
    shape = (23, 19, 6)
    data = smooth_volume(shape, rng)
    label = np.zeros(shape, dtype=np.int16)
    label[5:15, 4:12, 1:5] = 3
    label[9:12, 6:9, 2:4] = 7
    affine = np.diag([0.7, 0.7, 5.0, 1.0])
    affine[:3, 3] = [-8.0, 3.5, 40.0]
    target = (1.5, 1.5, 3.0)

    image, op = resample(Volume(data, affine), target, interpolation)
    mask, _ = resample(Volume(label, affine, "label"), target, interpolation)
    ref = torchio_resample(data, affine, target, interpolation, label)

    assert image.data.shape == tuple(ref["image"].shape[1:])
    np.testing.assert_allclose(image.affine, ref["image"].affine, atol=1e-5)
    np.testing.assert_allclose(image.data, ref["image"].data[0].numpy(), rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(mask.data, ref["label"].data[0].numpy())
    assert image.data.dtype == np.float32
    assert mask.data.dtype == np.int16
    assert set(np.unique(mask.data)) <= {0, 3, 7}
    assert op["to_shape"] == list(image.data.shape)
    np.testing.assert_allclose(image.spacing, target, rtol=1e-9)


def test_resample_linear_matches_scipy_on_oblique_volume():
    import scipy.ndimage as ndimage
    rng = np.random.default_rng(3)
    shape = (17, 14, 9)
    data = smooth_volume(shape, rng)
    theta = np.deg2rad(12)
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                         [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 0.8, 2.5])
    target = (1.1, 1.3, 1.7)
    out, _ = resample(Volume(data, affine), target, "linear")

    new_shape, step, start = target_grid(shape, (0.8, 0.8, 2.5), target)
    coords = np.meshgrid(*[start[i] + step[i] * np.arange(new_shape[i]) for i in range(3)],
                         indexing="ij")
    expected = ndimage.map_coordinates(data.astype(np.float64), coords, order=1, mode="nearest")
    np.testing.assert_allclose(out.data, expected, rtol=1e-5, atol=1e-3)
    # world position of output voxel 0 equals that of the old continuous index `start`
    np.testing.assert_allclose(out.affine[:3, 3], (affine @ np.r_[start, 1])[:3], atol=1e-9)
    np.testing.assert_allclose(out.spacing, target, rtol=1e-9)


def test_labels_are_never_interpolated_or_scaled():
    rng = np.random.default_rng(4)
    image = Volume(ct_phantom((20, 24, 10), rng), slice_first_affine((0.8, 0.8, 2.5))[[0, 1, 2, 3]])
    label_data = np.zeros((20, 24, 10), dtype=np.uint8)
    label_data[4:12, 5:15, 2:8] = 2
    label_data[6:9, 7:10, 3:6] = 255
    label = Volume(label_data, image.affine, "label")
    settings = Settings(spacing=(1.3, 1.1, 0.9), interpolation="bspline", ct_window=(-200, 300))
    out = normalize_case(image, label, modality="CT", settings=settings)
    assert out.label is not None
    assert out.label.data.dtype == np.uint8
    assert set(np.unique(out.label.data)) <= {0, 2, 255}
    assert out.label.data.shape == out.image.data.shape
    np.testing.assert_allclose(out.label.affine, out.image.affine)
    kinds = [op.get("kind") for op in out.operations if op["op"] == "resample"]
    assert kinds == ["image", "label"]
    assert [op["interpolation"] for op in out.operations if op["op"] == "resample"] == [
        "bspline", "nearest"]


def phantom_case(rng, shape=(24, 20, 12)):
    data = ct_phantom(shape, rng)
    affine = axis_affine((1, 0, 2), (1, 1, 0), spacing=(0.8, 0.8, 2.5), shape=shape)
    return Volume(data, affine)


def test_ct_window_unit_and_precedence():
    rng = np.random.default_rng(5)
    image = phantom_case(rng)
    ras = nib.as_closest_canonical(nib.Nifti1Image(image.data, image.affine))
    hu = np.asanyarray(ras.dataobj).astype(np.float64)

    def run(**kwargs):
        return normalize_case(image, None, modality="CT", **kwargs)

    out = run(settings=Settings(ct_window=(-200, 300)), dataset_window=(-1000, 1000),
              series_window=(0, 80))
    np.testing.assert_allclose(out.image.data, np.clip((hu + 200) / 500, 0, 1), atol=2e-7)
    assert out.intensity["window_source"] == "settings"
    assert run(settings=Settings(), dataset_window=(-1000, 1000), series_window=(0, 80)
               ).intensity["clip"] == [0.0, 80.0]
    assert run(settings=Settings(), dataset_window=(-1000, 1000)).intensity["clip"] == [
        -1000.0, 1000.0]
    with pytest.raises(HarmonizeError, match="ct-window"):
        run(settings=Settings())
    ops = [op["op"] for op in out.operations]
    assert ops == ["reorient", "ct_window"]
    assert out.original["orientation"] == image.orientation
    assert out.original["shape"] == list(image.data.shape)


def test_float_window_path_matches_integer_path():
    rng = np.random.default_rng(6)
    image = phantom_case(rng)
    as_float = Volume(image.data.astype(np.float32), image.affine)
    settings = Settings(ct_window=(-200, 300))
    a = normalize_case(image, None, modality="CT", settings=settings)
    b = normalize_case(as_float, None, modality="CT", settings=settings)
    assert isinstance(a.image, ScaledVolume) and not isinstance(b.image, ScaledVolume)
    np.testing.assert_allclose(a.image.data, b.image.data, atol=2e-7)
    assert a.intensity["scale"] == b.intensity["scale"] == 500.0
    assert float(a.image.data.min()) == 0.0  # the window's low end decodes to exactly 0
    beyond = normalize_case(image, None, modality="CT",  # bounds outside int16: float path
                            settings=Settings(ct_window=(-40000, -10000)))
    assert not isinstance(beyond.image, ScaledVolume) and beyond.image.data.min() == 1.0


def test_intensity_undo_recovers_hounsfield_units():
    rng = np.random.default_rng(7)
    image = phantom_case(rng)
    hu = np.asanyarray(nib.as_closest_canonical(nib.Nifti1Image(image.data, image.affine)
                                                ).dataobj).astype(np.float64)
    for scaling in ("unit", "zscore"):
        out = normalize_case(image, None, modality="CT",
                             settings=Settings(ct_window=(-500, 1000), ct_scaling=scaling))
        back = undo_intensity(out.image.data, out.intensity)
        inside = (hu >= -500) & (hu <= 1000)
        np.testing.assert_allclose(back[inside], hu[inside], atol=1e-3)
        np.testing.assert_array_equal(np.rint(back[inside]), hu[inside])
    mr = Volume(rng.gamma(2.0, 200.0, size=(10, 12, 8)).astype(np.float32), np.eye(4))
    out = normalize_case(mr, None, modality="MR", settings=Settings())
    lo, hi = out.intensity["clip"]
    inside = (mr.data >= lo) & (mr.data <= hi)
    back = undo_intensity(out.image.data, out.intensity)
    np.testing.assert_allclose(back[inside], mr.data[inside], rtol=1e-5)


def test_raw_hu_stays_integer_and_exact():
    rng = np.random.default_rng(8)
    image = phantom_case(rng)
    out = normalize_case(image, None, modality="CT", settings=Settings(ct_window=None))
    ras = nib.as_closest_canonical(nib.Nifti1Image(image.data, image.affine))
    assert out.image.data.dtype == np.int16
    np.testing.assert_array_equal(out.image.data, np.asanyarray(ras.dataobj))
    assert out.intensity == {"method": "none"}
    raw = normalize_case(image, None, modality="CT",
                         settings=Settings(intensity="raw", ct_window=(-1, 1)))
    np.testing.assert_array_equal(raw.image.data, out.image.data)
    assert not any(op["op"] == "ct_window" for op in raw.operations)


def test_mr_percentile_zscore_per_channel_against_numpy():
    rng = np.random.default_rng(9)
    data = np.stack([rng.gamma(2.0, 100.0 * (c + 1), size=(9, 10, 11)) for c in range(2)],
                    axis=-1).astype(np.float32)
    out = normalize_case(Volume(data, np.eye(4)), None, modality="MR", settings=Settings())
    for c in range(2):
        x = data[..., c].astype(np.float64)
        lo, hi = np.percentile(x, (0.5, 99.5))
        clipped = np.clip(x, lo, hi)
        expected = (clipped - clipped.mean()) / clipped.std()
        np.testing.assert_allclose(out.image.data[..., c], expected, atol=1e-5)
    assert out.image.data.shape == data.shape
    assert len(out.intensity["scale"]) == 2
    pet = normalize_case(Volume(data[..., 0], np.eye(4)), None, modality="PET",  # MR rule
                         settings=Settings(mr_percentiles=None, pet_intensity="percentile-zscore"))
    np.testing.assert_array_equal(pet.image.data, data[..., 0])


def test_label_checks():
    rng = np.random.default_rng(10)
    image = phantom_case(rng)
    good = np.zeros(image.data.shape, dtype=np.float64)
    good[3:8, 3:8, 2:5] = 1.0
    jitter = image.affine.copy()
    jitter[:3, :3] *= 1 + 1e-6  # float32 header round-off is tolerated
    out = normalize_case(image, Volume(good, jitter, "label"), modality="CT",
                         settings=Settings(ct_window=None))
    assert out.label is not None and out.label.data.dtype == np.uint8
    np.testing.assert_allclose(out.label.affine, out.image.affine)

    shifted = image.affine.copy()
    shifted[:3, 3] += 5.0
    with pytest.raises(LabelError, match="affine"):
        normalize_case(image, Volume(good, shifted, "label"), modality="CT",
                       settings=Settings(ct_window=None))
    with pytest.raises(LabelError, match="shape"):
        normalize_case(image, Volume(good[:-1], image.affine, "label"), modality="CT",
                       settings=Settings(ct_window=None))
    with pytest.raises(LabelError, match="non-integer"):
        normalize_case(image, Volume(good * 0.5, image.affine, "label"), modality="CT",
                       settings=Settings(ct_window=None))
    with pytest.raises(LabelError, match="negative"):
        normalize_case(image, Volume(-good, image.affine, "label"), modality="CT",
                       settings=Settings(ct_window=None))
    big = good.astype(np.int32) * 300
    out = normalize_case(image, Volume(big, image.affine, "label"), modality="CT",
                         settings=Settings(ct_window=None))
    assert out.label is not None and out.label.data.dtype == np.uint16
    huge = good.astype(np.int64) * 70000  # above uint16: widened, never wrapped around
    out = normalize_case(image, Volume(huge, image.affine, "label"), modality="CT",
                         settings=Settings(ct_window=None))
    assert out.label is not None and out.label.data.dtype == np.uint32
    assert set(np.unique(out.label.data)) == {0, 70000}


def test_input_is_not_modified():
    rng = np.random.default_rng(11)
    image = phantom_case(rng)
    before = image.data.copy()
    normalize_case(image, None, modality="CT", settings=Settings(ct_window=(-200, 300)))
    normalize_case(image, None, modality="CT", settings=Settings(ct_window=(-200, 300),
                                                                  ct_scaling="zscore"))
    np.testing.assert_array_equal(image.data, before)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_write_is_deterministic_atomic_and_readable(tmp_path: Path, suffix):
    rng = np.random.default_rng(12)
    image = phantom_case(rng)
    label = Volume((image.data > 500).astype(np.uint8), image.affine, "label")
    for settings in (Settings(ct_window=(-200, 300)), Settings(ct_window=(-200, 300),
                                                               spacing=(1.5, 1.5, 3.0))):
        out = normalize_case(image, label, modality="CT", settings=settings)
        first, second = tmp_path / f"a{suffix}", tmp_path / "sub" / f"b{suffix}"
        write_volume(out.image, first)
        write_volume(out.image, second)
        assert first.read_bytes() == second.read_bytes()
        loaded = nib.load(str(first))
        np.testing.assert_allclose(loaded.get_fdata(), out.image.data, atol=2e-7)
        np.testing.assert_allclose(loaded.affine, out.image.affine, atol=1e-5)
        expected = np.int16 if isinstance(out.image, ScaledVolume) else np.float32
        assert loaded.get_data_dtype() == expected
        assert out.label is not None
        write_volume(out.label, tmp_path / f"m{suffix}")
        mask = nib.load(str(tmp_path / f"m{suffix}"))
        assert mask.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(np.asanyarray(mask.dataobj), out.label.data)
        ours = read_volume(first)
        np.testing.assert_allclose(ours.data, out.image.data, atol=2e-7)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name.startswith(".")) == []


def test_write_failure_leaves_no_file(tmp_path: Path):
    class Boom(np.ndarray):
        def tobytes(self, order="C"):
            raise RuntimeError("disk full")

    data = np.zeros((4, 4, 4), dtype=np.float32).view(Boom)
    target = tmp_path / "x.nii.gz"
    with pytest.raises(RuntimeError):
        write_volume(Volume(data, np.eye(4)), target)
    assert list(tmp_path.iterdir()) == []


def test_fingerprint_ignores_storage_and_orientation(tmp_path: Path):
    rng = np.random.default_rng(13)
    image = phantom_case(rng)
    ras, _ = reorient_to_ras(image)
    print_a = fingerprint(image)
    assert fingerprint(Volume(np.ascontiguousarray(ras.data), ras.affine)) == print_a
    assert fingerprint(Volume(image.data.astype(np.int32), image.affine)) == print_a
    write_volume(image, tmp_path / "a.nii")
    write_volume(image, tmp_path / "a.nii.gz")
    assert fingerprint(read_volume(tmp_path / "a.nii")) == print_a
    assert fingerprint(read_volume(tmp_path / "a.nii.gz")) == print_a
    changed = image.data.copy()
    changed[0, 0, 0] += 1
    assert fingerprint(Volume(changed, image.affine)) != print_a
    coarser = image.affine.copy()
    coarser[:3, :3] *= 2
    assert fingerprint(Volume(image.data, coarser)) != print_a


@pytest.mark.parametrize("kind", ["image", "label"])
def test_resample_to_ras_equals_reorient_then_resample(kind):
    from harmonize.engine.resample import resample_to_ras

    rng = np.random.default_rng(14)
    shape = (9, 13, 11)
    if kind == "image":
        data = smooth_volume(shape, rng)
    else:
        data = rng.integers(0, 5, size=shape).astype(np.uint8)
    theta = np.deg2rad(7)
    rotation = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)],
                         [0, np.sin(theta), np.cos(theta)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ axis_affine((2, 0, 1), (1, 0, 1), spacing=(2.5, 0.8, 0.9))[:3, :3]
    affine[:3, 3] = [3.0, -4.0, 5.0]
    volume = Volume(data, affine, kind)
    direct, ops = resample_to_ras(volume, (1.2, 1.1, 1.7), "linear")
    two_step, _ = resample(reorient_to_ras(volume)[0], (1.2, 1.1, 1.7), "linear")
    assert [op["op"] for op in ops] == ["reorient", "resample"]
    np.testing.assert_allclose(direct.affine, two_step.affine, atol=1e-9)
    if kind == "image":
        np.testing.assert_allclose(direct.data, two_step.data, rtol=1e-6, atol=1e-4)
    else:
        np.testing.assert_array_equal(direct.data, two_step.data)


def test_label_stored_in_another_axis_order_is_aligned():
    rng = np.random.default_rng(15)
    image = phantom_case(rng)  # stored with flipped/permuted axes
    ras, _ = reorient_to_ras(image)
    mask_ras = np.zeros(ras.data.shape, dtype=np.uint8)
    mask_ras[2:9, 3:7, 1:6] = 4
    # the same mask on the same physical grid, stored in RAS order (as some releases do)
    label = Volume(mask_ras, ras.affine, "label")
    out = normalize_case(image, label, modality="CT", settings=Settings(ct_window=None))
    assert out.label is not None
    np.testing.assert_array_equal(out.label.data, mask_ras)
    np.testing.assert_allclose(out.label.affine, out.image.affine)
    resampled = normalize_case(image, label, modality="CT",
                               settings=Settings(ct_window=None, spacing=(1.0, 1.0, 1.0)))
    assert resampled.label is not None
    assert resampled.label.data.shape == resampled.image.data.shape
    np.testing.assert_array_equal(resampled.label.affine, resampled.image.affine)
    assert set(np.unique(resampled.label.data)) == {0, 4}


def test_check_label_geometry_permutes_into_image_order():
    from harmonize.engine.normalize import check_label_geometry

    rng = np.random.default_rng(16)
    image = phantom_case(rng)
    ras, _ = reorient_to_ras(image)
    mask_ras = rng.integers(0, 3, size=ras.data.shape).astype(np.uint8)
    checked = check_label_geometry(image, Volume(mask_ras, ras.affine, "label"))
    assert checked.data.shape == image.data.shape
    np.testing.assert_array_equal(checked.affine, image.affine)
    np.testing.assert_array_equal(reorient_to_ras(checked)[0].data, mask_ras)


@pytest.mark.parametrize(("perm", "flips"), ORIENTATIONS[::5])
def test_from_ras_inverts_reorientation(perm, flips):
    from harmonize.engine.resample import from_ras

    data = np.arange(5 * 6 * 7).reshape(5, 6, 7)
    affine = axis_affine(perm, flips)
    ras, _ = reorient_to_ras(Volume(data, affine))
    np.testing.assert_array_equal(from_ras(ras.data, affine), data)
