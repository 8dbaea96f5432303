"""Output grids on real scans and real float spacings, against the libraries they follow.

Oracles: TorchIO ``Resample`` (the default ``torchio`` grid), MONAI ``Orientation`` +
``Spacing`` (the ``monai`` grid of the ``sat`` preset) and SAT-DS's ``Normalization`` formula
(loader.py, written out below). Real scans: nibabel's shipped test images (oblique EPI, NIfTI-2,
anatomical); plus a synthetic header with 0.78124999999999989 mm pixels (a real brain MR's).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio
from monai.data import MetaTensor
from monai.transforms import Orientation, Spacing

from harmonize.engine.normalize import normalize_case
from harmonize.engine.presets import preset_settings
from harmonize.engine.resample import resample_to_ras
from harmonize.read.volume import Volume

DATA = Path(nib.__file__).parent / "tests" / "data"
REAL = ["example4d.nii.gz", "example_nifti2.nii.gz", "anatomical.nii"]
FLOAT_MM = 0.78124999999999989  # 0.78125 - 1 ulp, as stored in a real brain MR header


def real_scan(name: str) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(DATA / name)
    data = np.asarray(image.dataobj, dtype=np.float32)
    return (data[..., 0] if data.ndim == 4 else data), image.affine


def float_spacing_scan() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    data = rng.normal(300, 80, (256, 256, 6)).astype(np.float32)
    affine = np.diag([-FLOAT_MM, FLOAT_MM, 5.0, 1.0])
    affine[:3, 3] = (99.6, -120.3, -14.0)
    return data, affine


def fake_label(data: np.ndarray) -> np.ndarray:
    return np.digitize(data, np.quantile(data, [0.5, 0.7, 0.9])).astype(np.uint8)


def monai_chain(data: np.ndarray, affine: np.ndarray, pixdim, mode: str):
    """SAT-DS's geometry: Orientationd(axcodes="RAS") + Spacingd(pixdim, mode)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = MetaTensor(torch.from_numpy(data[None].astype(np.float32)), affine=torch.as_tensor(affine))
        x = Spacing(pixdim=pixdim, mode=mode)(Orientation(axcodes="RAS")(x))
    return x[0].numpy(), np.asarray(x.affine, dtype=float)


def sat_ds_chain(data: np.ndarray, label: np.ndarray, affine: np.ndarray):
    """SAT-DS loader.py's transforms, run by MONAI: Orientationd RAS, Spacingd (1, 1, 3)
    bilinear/nearest, CropForegroundd(source_key="image")."""
    from monai.transforms import Compose, CropForegroundd, Orientationd, Spacingd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = torch.as_tensor(affine)
        chain = Compose([
            Orientationd(axcodes="RAS", keys=["image", "label"]),
            Spacingd(keys=["image", "label"], pixdim=(1, 1, 3), mode=("bilinear", "nearest")),
            CropForegroundd(keys=["image", "label"], source_key="image"),
        ])
        out = chain({"image": MetaTensor(torch.from_numpy(data[None].astype(np.float32)),
                                         affine=meta),
                     "label": MetaTensor(torch.from_numpy(label[None].astype(np.float32)),
                                         affine=meta)})
    return (out["image"][0].numpy(), out["label"][0].numpy(),
            np.asarray(out["image"].affine, dtype=float))


def off_ties(data: np.ndarray, affine: np.ndarray, out_affine: np.ndarray,
             shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Index arrays of output voxels whose sample position is not on a half-voxel tie of the
    RAS input (at an exact tie each library's own float round-off picks the neighbour)."""
    ras = nib.as_closest_canonical(nib.Nifti1Image(data, affine)).affine
    to_input = np.linalg.solve(ras, out_affine)
    keep = []
    for k in range(3):
        pos = to_input[k, k] * np.arange(shape[k]) + to_input[k, 3]
        keep.append(np.abs(pos - np.floor(pos) - 0.5) > 1e-6)
    return np.ix_(*keep)


def torchio_resample(data: np.ndarray, affine: np.ndarray, target, label: np.ndarray):
    subject = tio.Subject(
        image=tio.ScalarImage(tensor=torch.from_numpy(data[None]), affine=affine),
        mask=tio.LabelMap(tensor=torch.from_numpy(label[None]), affine=affine))
    out = tio.Resample(target)(tio.ToCanonical()(subject))
    return out["image"], out["mask"]


def test_torchio_grid_on_real_float_spacing():
    """256 px of 0.78124999999999989 mm to 1 mm: TorchIO gives floor(199.99999999999997) = 199."""
    data, affine = float_spacing_scan()
    label = fake_label(data)
    ours, _ = resample_to_ras(Volume(data=data, affine=affine, kind="image"), (1.0, 1.0, 3.0))
    ours_label, _ = resample_to_ras(Volume(data=label, affine=affine, kind="label"), (1.0, 1.0, 3.0))
    ref, ref_label = torchio_resample(data, affine, (1.0, 1.0, 3.0), label)
    assert ours.shape == ref.spatial_shape == (199, 199, 10)
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-4)
    np.testing.assert_allclose(ours.data, ref.data[0].numpy(), atol=1e-3)
    kept = off_ties(data, affine, ref.affine, ours.shape)
    np.testing.assert_array_equal(ours_label.data[kept], ref_label.data[0].numpy()[kept])


@pytest.mark.parametrize("name", REAL)
@pytest.mark.parametrize("target", [(1.0, 1.0, 3.0), (1.5, 1.5, 1.5)])
def test_torchio_grid_on_real_scans(name, target):
    data, affine = real_scan(name)
    label = fake_label(data)
    ours, _ = resample_to_ras(Volume(data=data, affine=affine, kind="image"), target)
    ours_label, _ = resample_to_ras(Volume(data=label, affine=affine, kind="label"), target)
    ref, ref_label = torchio_resample(data, affine, target, label)
    assert ours.shape == ref.spatial_shape
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-4)
    np.testing.assert_allclose(ours.data, ref.data[0].numpy(), atol=1e-5 * np.ptp(data))
    kept = off_ties(data, affine, ref.affine, ours.shape)
    np.testing.assert_array_equal(ours_label.data[kept], ref_label.data[0].numpy()[kept])


@pytest.mark.parametrize("name", [*REAL, "float-spacing"])
@pytest.mark.parametrize("target", [(1.0, 1.0, 3.0), (1.5, 1.5, 1.5), (0.7, 0.9, 2.0)])
def test_monai_grid_on_real_scans(name, target):
    data, affine = float_spacing_scan() if name == "float-spacing" else real_scan(name)
    ours, ops = resample_to_ras(Volume(data=data, affine=affine, kind="image"), target,
                                grid="monai")
    ref, ref_affine = monai_chain(data, affine, target, "bilinear")
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours.affine, ref_affine, atol=1e-4)
    np.testing.assert_allclose(ours.data, ref, atol=1e-6 * np.ptp(data))
    assert "MONAI" in ops[-1]["grid"]


@pytest.mark.parametrize("name", ["example4d.nii.gz", "example_nifti2.nii.gz", "float-spacing"])
def test_monai_grid_labels_match_monai_nearest(name):
    """Nearest neighbour as MONAI's grid_sample: half-voxel ties to even, in RAS index space
    (example4d's x axis is flipped), border voxels beyond the input. (Scans whose spacing is an
    exact multiple of the target put samples on exact ties, which MONAI resolves by its own
    float32 coordinate round-off; those are not compared voxel for voxel.)"""
    data, affine = float_spacing_scan() if name == "float-spacing" else real_scan(name)
    label = fake_label(data)
    ours, _ = resample_to_ras(Volume(data=label, affine=affine, kind="label"), (1.0, 1.0, 3.0),
                              grid="monai")
    ref, ref_affine = monai_chain(label, affine, (1.0, 1.0, 3.0), "nearest")
    assert ours.data.dtype == np.uint8
    np.testing.assert_allclose(ours.affine, ref_affine, atol=1e-4)
    np.testing.assert_array_equal(ours.data, ref.astype(np.uint8))


def sat_ds_normalization(image: np.ndarray, image_type: str) -> np.ndarray:
    """SAT-DS loader.py ``Normalization`` (zhaoziheng/SAT-DS), transcribed."""
    if image_type.lower() == "ct":
        image = np.clip(image, -500, 1000)
    else:
        image = np.clip(image, np.percentile(image, 0.5), np.percentile(image, 99.5))
    return (image - np.mean(image)) / np.std(image)


@pytest.mark.parametrize("name", ["example4d.nii.gz", "example_nifti2.nii.gz", "float-spacing"])
@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_sat_preset_gives_sat_ds_grid_and_values(name, modality):
    data, affine = float_spacing_scan() if name == "float-spacing" else real_scan(name)
    if modality == "CT":
        data = data * 3 - 1000  # a HU-like range that the -500..1000 clip cuts at both ends
    data = data.copy()  # a background frame (air / zero MR) for CropForegroundd to cut away
    background = -1024.0 if modality == "CT" else 0.0
    data[: data.shape[0] // 8] = background
    data[:, -(data.shape[1] // 6):] = background
    label = fake_label(data)
    out = normalize_case(Volume(data=data, affine=affine, kind="image"),
                         Volume(data=label, affine=affine, kind="label"),
                         modality=modality, settings=preset_settings("sat"))
    ref, ref_label, ref_affine = sat_ds_chain(data, label, affine)
    expected = sat_ds_normalization(ref.astype(np.float64), modality)
    assert out.image.shape == ref.shape
    uncropped, _ = monai_chain(data, affine, (1, 1, 3), "bilinear")
    assert ref.size < uncropped.size  # the crop is exercised: the box is smaller than the grid
    np.testing.assert_allclose(out.image.affine, ref_affine, atol=1e-4)
    np.testing.assert_allclose(out.image.data, expected, atol=1e-4)
    np.testing.assert_array_equal(out.label.data, ref_label.astype(np.uint8))


def test_grid_is_a_run_file_setting_and_sat_selects_monai():
    from harmonize.engine.config import parse_settings
    from harmonize.engine.presets import Settings

    assert preset_settings("sat").grid == "monai"
    assert preset_settings("clip-universal").grid == "torchio"
    assert "grid" not in Settings().to_dict()  # default left out: earlier resume keys hold
    data, affine = real_scan("example4d.nii.gz")
    settings = Settings(**parse_settings({"spacing": [1, 1, 3], "grid": "monai"}))
    out = normalize_case(Volume(data=data, affine=affine, kind="image"), None, modality="MR",
                         settings=settings)
    assert out.image.shape == monai_chain(data, affine, (1, 1, 3), "bilinear")[0].shape
    assert "MONAI" in out.operations[-2]["grid"]
