"""Presets reproduce the published conventions; settings validate and serialise stably.

Each preset is checked against an independent reference: TorchIO ``ToCanonical`` + ``Resample``
for geometry and the original projects' intensity formulas written out in numpy (SAT-DS
``Normalization``, MONAI ``ScaleIntensityRanged`` as used by the CLIP-Driven Universal Model,
nnU-Net ``collect_foreground_intensities`` + ``CTNormalization``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchio as tio

from harmonize.engine.normalize import (
    PRESETS,
    Settings,
    dataset_statistics,
    foreground_sample,
    normalize_case,
    preset_settings,
)
from harmonize.errors import HarmonizeError
from harmonize.read.volume import Volume
from harmonize.testing.volumes import ct_phantom, ellipsoid

# LPS-stored CT, 0.8 x 0.8 x 2.5 mm, like many DICOM-converted releases
CT_AFFINE = np.array([[-0.8, 0, 0, 120.0], [0, -0.8, 0, 95.0], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])


def ct_case(seed: int, shape=(40, 36, 14)) -> tuple[Volume, Volume]:
    rng = np.random.default_rng(seed)
    image = ct_phantom(shape, rng)
    label = (ellipsoid(shape, (0.45, 0.5, 0.5), (0.15, 0.2, 0.3)) * 1).astype(np.uint8)
    label[ellipsoid(shape, (0.45, 0.5, 0.5), (0.05, 0.05, 0.1))] = 2
    image[label == 1] = 60 + rng.integers(-5, 5, size=int((label == 1).sum()))
    image[label == 2] = 30
    return Volume(image, CT_AFFINE), Volume(label, CT_AFFINE, "label")


def torchio_reference(volume: Volume, spacing) -> tuple[np.ndarray, np.ndarray]:
    image = tio.ScalarImage(tensor=torch.from_numpy(volume.data[None].astype(np.float32)),
                            affine=volume.affine)
    image = tio.ToCanonical()(image)
    if spacing is not None:
        image = tio.Resample(spacing)(image)
    return image.data[0].numpy().astype(np.float64), image.affine


def monai_reference(volume: Volume, pixdim, *, crop: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """SAT-DS's geometry with MONAI itself: Orientationd(axcodes="RAS") + Spacingd(pixdim)
    (+ CropForegroundd to voxels > 0 with ``crop``, as SAT-DS's loader does)."""
    from monai.data import MetaTensor
    from monai.transforms import CropForeground, Orientation, Spacing

    image = MetaTensor(torch.from_numpy(volume.data[None].astype(np.float32)),
                       affine=torch.as_tensor(volume.affine))
    image = Spacing(pixdim=pixdim, mode="bilinear")(Orientation(axcodes="RAS")(image))
    if crop:
        image = CropForeground()(image)
    return image[0].numpy().astype(np.float64), np.asarray(image.affine, dtype=float)


def test_presets_are_documented_and_named():
    assert set(PRESETS) == {"sat", "clip-universal", "kits23-2d", "nnunet-ct"}
    for name, info in PRESETS.items():
        assert info.settings.preset == name
        assert info.summary and info.source
        assert preset_settings(name) is info.settings
    with pytest.raises(HarmonizeError, match="clip-universal, kits23-2d, nnunet-ct, sat"):
        preset_settings("monai")


def test_sat_ct_and_mr():
    image, label = ct_case(0)
    out = normalize_case(image, label, modality="CT", settings=preset_settings("sat"))
    ref, affine = monai_reference(image, (1.0, 1.0, 3.0), crop=True)
    assert out.image.shape == ref.shape
    np.testing.assert_allclose(out.image.affine, affine, atol=1e-5)
    assert out.image.orientation == "RAS"
    # SAT-DS Normalization(): clip to -500..1000, then (x - mean) / std over the cropped image
    clipped = np.clip(ref, -500, 1000)
    expected = (clipped - clipped.mean()) / clipped.std()
    np.testing.assert_allclose(out.image.data, expected, atol=1e-4)
    assert out.label is not None and out.label.data.shape == out.image.data.shape

    rng = np.random.default_rng(1)
    mr = Volume(rng.gamma(2.0, 150.0, size=(20, 22, 9)).astype(np.float32),
                np.diag([1.2, 1.2, 4.0, 1.0]))
    out = normalize_case(mr, None, modality="MR", settings=preset_settings("sat"))
    ref, _ = monai_reference(mr, (1.0, 1.0, 3.0), crop=True)
    assert out.image.shape == ref.shape
    lo, hi = np.percentile(ref, 0.5), np.percentile(ref, 99.5)
    clipped = np.clip(ref, lo, hi)
    np.testing.assert_allclose(out.image.data, (clipped - clipped.mean()) / clipped.std(),
                               atol=1e-4)


def test_clip_universal():
    image, label = ct_case(2)
    out = normalize_case(image, label, modality="CT", settings=preset_settings("clip-universal"))
    ref, affine = torchio_reference(image, (1.5, 1.5, 1.5))
    # MONAI ScaleIntensityRanged(a_min=-175, a_max=250, b_min=0, b_max=1, clip=True)
    expected = np.clip((ref - -175.0) / (250.0 - -175.0) * (1.0 - 0.0) + 0.0, 0.0, 1.0)
    np.testing.assert_allclose(out.image.data, expected, atol=1e-5)
    np.testing.assert_allclose(out.image.affine, affine, atol=1e-5)
    np.testing.assert_allclose(out.image.spacing, (1.5, 1.5, 1.5))


def test_kits23_2d_native_spacing():
    image, label = ct_case(3)
    out = normalize_case(image, label, modality="CT", settings=preset_settings("kits23-2d"))
    ref, affine = torchio_reference(image, None)
    np.testing.assert_allclose(out.image.data, np.clip((ref + 200) / 500, 0, 1), atol=2e-7)
    np.testing.assert_allclose(out.image.affine, affine, atol=1e-6)
    assert out.image.data.shape == ref.shape
    assert [op["op"] for op in out.operations] == ["reorient", "ct_window"]


def nnunet_reference_stats(cases, n=10000, seed=1234):
    """nnU-Net v2 collect_foreground_intensities + the pooled fingerprint statistics."""
    pooled = []
    for image, label in cases:
        fg = image.data[label.data > 0]
        rs = np.random.RandomState(seed)
        pooled.append(rs.choice(fg, n, replace=True) if len(fg) else [])
    values = np.concatenate(pooled).astype(np.float64)
    p005, p995 = np.percentile(values, (0.5, 99.5))
    return {"mean": float(np.mean(values)), "std": float(np.std(values)),
            "percentile_00_5": float(p005), "percentile_99_5": float(p995)}


def test_nnunet_ct_dataset_statistics_and_normalization():
    cases = [ct_case(seed) for seed in (4, 5, 6)]
    settings = preset_settings("nnunet-ct")
    assert settings.needs_dataset_stats
    stats = dataset_statistics(foreground_sample(i, lab, max_voxels=2000, seed=1234)
                               for i, lab in cases)
    ref = nnunet_reference_stats(cases, n=2000)
    for key, value in ref.items():
        assert stats[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    assert stats["n"] == 6000

    image, label = cases[0]
    out = normalize_case(image, label, modality="CT", settings=settings, dataset_stats=stats)
    hu, _ = torchio_reference(image, None)
    lo, hi = stats["percentile_00_5"], stats["percentile_99_5"]
    expected = (np.clip(hu, lo, hi) - stats["mean"]) / max(stats["std"], 1e-8)
    np.testing.assert_allclose(out.image.data, expected, atol=1e-4)
    assert out.intensity["window_source"] == "dataset foreground percentiles"

    with pytest.raises(HarmonizeError, match="statistics"):
        normalize_case(image, label, modality="CT", settings=settings)
    empty = Volume(np.zeros_like(label.data), label.affine, "label")
    assert foreground_sample(image, empty).size == 0
    with pytest.raises(HarmonizeError, match="no foreground"):
        dataset_statistics([foreground_sample(image, empty)])


def test_settings_serialise_and_validate():
    settings = Settings(spacing=(1, 1, 3), ct_window=[-100, 200], preset=None)
    data = settings.to_dict()
    assert list(data) == ["spacing", "interpolation", "ct_window", "ct_scaling",
                          "mr_percentiles", "intensity", "preset"]
    assert json.loads(json.dumps(data)) == data
    assert Settings.from_dict(data) == settings
    assert settings.spacing == (1.0, 1.0, 3.0) and settings.ct_window == (-100.0, 200.0)
    for name in PRESETS:
        assert Settings.from_dict(preset_settings(name).to_dict()) == preset_settings(name)
    assert json.dumps(Settings().to_dict()) == json.dumps(Settings().to_dict())
    assert settings.replace(spacing=None).spacing is None
    bad = [dict(spacing=(1, 0, 1)), dict(spacing=(1, 1)), dict(ct_window=(300, -200)),
           dict(interpolation="cubic"), dict(ct_scaling="minmax"), dict(intensity="none"),
           dict(mr_percentiles=(99, 1)), dict(ct_window="auto")]
    for kwargs in bad:
        with pytest.raises(HarmonizeError, match="invalid normalization settings"):
            Settings(**kwargs)
    with pytest.raises(HarmonizeError, match="unknown normalization setting"):
        Settings.from_dict({"spacingg": [1, 1, 1]})


def test_presets_are_registry_data_and_malformed_entries_are_refused():
    from harmonize.engine.presets import parse_presets
    from harmonize.errors import DescriptorError
    from harmonize.yamlio import load_registry

    assert set(load_registry("presets.yaml")["normalization"]) == set(PRESETS)
    good = {"settings": {"spacing": None, "ct_window": [-1, 1]}, "summary": "s", "source": "x"}
    parsed = parse_presets({"my-rule": good})["my-rule"]
    assert parsed.settings == Settings(ct_window=(-1.0, 1.0), preset="my-rule")
    for broken in ({**good, "colour": "red"}, {"summary": "s", "source": "x"},
                   {**good, "settings": {"spacing": "far"}}, {**good, "summary": None},
                   {**good, "settings": {"preset": "other"}}):
        with pytest.raises(DescriptorError, match="my-rule"):
            parse_presets({"my-rule": broken})
