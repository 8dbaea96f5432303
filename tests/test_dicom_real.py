"""The one DICOM series model on real scanner files (tests/data/dicom/README.md says where they come
from), checked against independent readers: SimpleITK's series reader, dcm2niix, pydicom.

Problem 2 of issue 12, reproduced as described: real series copies with a slice removed, a slice
duplicated, two series mixed, and the released -99.5/103.0/104.3/105.5 mm series. ``harmonize run``
refuses each with an error naming dataset, case, folder and the gap; ``validate-dicom`` gives the
same verdict; ``--resample-irregular-dicom`` puts them on a regular grid that matches scipy's
linear interpolation.

Tolerances: geometry 1e-3 mm (DICOM decimal strings vs. float32 NIfTI headers), HU exact for
decoded integers, 1e-3 HU for interpolated float32 voxels.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid
from scipy.interpolate import interp1d
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.errors import ReadError
from harmonize.qa.dicom_checklist import validate_dicom
from harmonize.read.dicom import GEOMETRY_CODES, SORT_CODES, SPACING_CODES, grid_problems
from harmonize.read.dicom_scan import select_series
from harmonize.read.volume import read_header, read_volume, sitk_affine

DATA = Path(__file__).parent / "data" / "dicom"
TS = sorted((DATA / "totalsegmentator_ct").iterdir())
MONAI = DATA / "monai_ct_irregular"
PATTERN = [0, 0, 1, 1, 0, 0, 1, 1]  # which real slice each copy holds


def hu(path: Path) -> np.ndarray:
    """pydicom's HU of one file, (rows, columns), the oracle for decoding."""
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def real_copy(folder: Path, n: int = 8, *, tag: str = "a", series_uid: str | None = None) -> list[Path]:
    """``n`` copies of the real TotalSegmentator slices 2 mm apart (z = -766.5 - 2k, as released),
    slice k holding real slice ``PATTERN[k]``; pixel data untouched (JPEG 2000 as released)."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or generate_uid(entropy_srcs=[tag, "series"])
    paths = []
    for k in range(n):
        ds = pydicom.dcmread(TS[PATTERN[k % len(PATTERN)]])
        x, y, _ = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, -766.5 - 2.0 * k]
        ds.InstanceNumber = 267 + k
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[tag, str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = uid
        path = folder / f"{tag}{(k * 5) % n:03d}.dcm"  # name order is not slice order
        ds.save_as(path)
        paths.append(path)
    return paths


def sitk_series(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return data, sitk_affine(image.GetOrigin(), image.GetSpacing(), image.GetDirection())


def dcm2niix(folder: Path, out: Path) -> nib.Nifti1Image:
    """dcm2niix's conversion of ``folder``: the binary the ``dcm2niix`` wheel of the test extras
    ships (rordenlab's release build), so the test never depends on what the machine has."""
    import dcm2niix as package

    exe = package.bin
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "-z", "n", "-b", "n", "-f", "out", "-o", str(out), str(folder)],
                   check=True, capture_output=True)
    return nib.load(out / "out.nii")


def on_grid(image: nib.Nifti1Image, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image``'s voxels (scaled) and affine, flipped/permuted onto the axes of ``affine``."""
    src, dst = nib.io_orientation(image.affine), nib.io_orientation(affine)
    transform = nib.orientations.ornt_transform(src, dst)
    data = nib.orientations.apply_orientation(np.asarray(image.dataobj, dtype=np.float64), transform)
    moved = image.affine @ nib.orientations.inv_ornt_aff(transform, image.shape)
    return data, moved


# ----------------------------------------------------------------------- regular real series


def test_real_slices_decode_exactly_and_match_pydicom(tmp_path: Path) -> None:
    folder = tmp_path / "ts"
    folder.mkdir()
    for path in TS:
        shutil.copy(path, folder / path.name)
    volume = read_volume(folder)
    assert volume.shape == (512, 512, 2) and volume.data.dtype.kind == "i"
    # z ascends along the normal (0, 0, 1): -768.5 first, then -766.5
    for z, path in enumerate(reversed(TS)):
        np.testing.assert_array_equal(volume.data[:, :, z], hu(path).T)
    np.testing.assert_allclose(volume.spacing, (0.9765625, 0.9765625, 2.0), atol=1e-6)
    np.testing.assert_allclose(volume.affine[:3, 3], [249.51171875, 437.51171875, -768.5])


def test_real_series_copy_matches_simpleitk_and_dcm2niix(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    real_copy(folder)
    volume = read_volume(folder)
    assert volume.shape == (512, 512, 8) and not volume.operations
    header = read_header(folder)
    assert header.shape == volume.shape
    np.testing.assert_allclose(header.affine, volume.affine)
    data, affine = sitk_series(folder)
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-3)
    theirs, their_affine = on_grid(dcm2niix(folder, tmp_path / "d2n"), volume.affine)
    np.testing.assert_allclose(volume.affine, their_affine, atol=1e-3)
    np.testing.assert_array_equal(volume.data, theirs)


def test_real_irregular_series_geometry_matches_dcm2niix(tmp_path: Path) -> None:
    """The released MONAI series: dcm2niix keeps its 4 slices on a 202.5 mm grid (and warns);
    we refuse, and read it as released only slice by slice, which matches dcm2niix's voxels."""
    theirs = dcm2niix(MONAI, tmp_path / "d2n")
    series = select_series(MONAI)
    np.testing.assert_allclose(series.positions, [-99.48, 103.02, 104.27, 105.52], atol=1e-3)
    for z, path in enumerate(series.files):
        ours = hu(path).T
        data, _ = on_grid(theirs, series.affine())
        np.testing.assert_array_equal(data[:, :, z], ours)
    _, their_affine = on_grid(theirs, series.affine())
    np.testing.assert_allclose(their_affine[:3, 3], series.affine()[:3, 3], atol=1e-3)


# ----------------------------------------------------------------- problem 2 (issue 12)

DESCRIPTOR = textwrap.dedent("""
    id: dicom-folders
    name: DICOM folders
    modality: CT
    licence: CC0
    citation: nobody
    homepage: https://example.org
    values: {0: background, 1: liver}
    classes: {liver: [1]}
    layout:
      - {images: "cases/*"}
""")


def make_case(root: Path, kind: str) -> Path:
    """A dataset root whose one case ``cases/<kind>`` is an irregular real series folder."""
    folder = root / "cases" / kind
    if kind == "monai":
        shutil.copytree(MONAI, folder)
    elif kind == "removed":
        paths = real_copy(folder)
        paths[4].unlink()
    elif kind == "duplicated":
        paths = real_copy(folder)
        shutil.copy(paths[3], folder / "copy_of_slice_3.dcm")
    elif kind == "mixed":
        real_copy(folder)
        real_copy(folder, 6, tag="b")  # a second series (another SeriesInstanceUID) beside it
    return folder


EXPECTED = {  # kind: (message part, validate-dicom checks that fail, repaired by the flag)
    "removed": ("slice gap of 4 mm", {"uniform_spacing"}, True),
    "duplicated": ("identical pixel data", {"sortable"}, True),
    "mixed": ("2 DICOM series in one folder", {"single_series"}, False),
    "monai": ("slice gap of 202.5 mm", {"uniform_spacing"}, True),
}
GEOMETRY_CHECKS = {"sortable", "uniform_spacing", "geometry", "single_series"}


def run_cli(tmp_path: Path, root: Path, *flags: str) -> tuple[int, dict]:
    desc = tmp_path / "dicom-folders.yaml"
    desc.write_text(DESCRIPTOR)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--descriptor", str(desc), "-d", "dicom-folders",
                                      "-r", str(root), "-o", str(out), "--workers", "1",
                                      "--no-progress", "--format", "json", "--intensity", "raw",
                                      *flags])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_irregular_real_series_refused_by_run_and_validate_dicom(tmp_path: Path, kind: str) -> None:
    message, failing, _ = EXPECTED[kind]
    folder = make_case(tmp_path / "data", kind)
    code, summary = run_cli(tmp_path, tmp_path / "data")
    assert code == 1
    (error,) = summary["errors"]
    assert error["kind"] == "read" and error["dataset"] == "dicom-folders"
    assert error["case"] == kind and error["file"] == str(folder)
    assert message in error["message"]
    report = validate_dicom(folder)
    failed = {c.name for s in report.series for c in s.checks if not c.passed}
    assert failed & GEOMETRY_CHECKS == failing  # the same verdict, from the same function


def test_resample_flag_puts_a_removed_slice_back_by_linear_interpolation(tmp_path: Path) -> None:
    folder = make_case(tmp_path / "data", "removed")
    code, summary = run_cli(tmp_path, tmp_path / "data", "--resample-irregular-dicom")
    assert code == 0, summary["errors"]
    image = nib.load(tmp_path / "out" / "dicom-folders" / "removed" / "image.nii.gz")
    assert image.shape == (512, 512, 8)
    np.testing.assert_allclose(nib.affines.voxel_sizes(image.affine), (0.9765625,) * 2 + (2.0,),
                               atol=1e-5)
    # reference: scipy's linear interpolation of pydicom's HU at the 7 real positions
    series = select_series(folder)
    z = np.asarray(series.positions)
    stack = np.stack([hu(p).T for p in series.files], axis=-1)
    grid = np.linspace(z[0], z[-1], 8)
    expected = interp1d(z, stack, axis=-1)(grid)
    ours = np.asarray(image.dataobj, dtype=np.float64)[::-1, ::-1, :]  # RAS file, LPS reference
    np.testing.assert_allclose(ours, expected, atol=1e-3)
    record = json.loads((tmp_path / "out" / "dicom-folders.jsonl").read_text().splitlines()[0])
    (op,) = [json.loads(o["params"]) for o in record["operations"]  # schema 3: {op, params}
             if o["op"] == "dicom_resample_slices"]
    assert op["slices_in"] == 7 and op["slices_out"] == 8 and op["step_mm"] == 2.0
    assert op["interpolation"] == "linear"


def test_resample_flag_on_the_released_irregular_series(tmp_path: Path) -> None:
    volume = read_volume(MONAI, irregular_dicom="resample")
    series = select_series(MONAI)
    z = np.asarray(series.positions)
    n = round((z[-1] - z[0]) / 1.25) + 1  # median gap 1.25 mm
    assert volume.shape == (16, 16, n) == (16, 16, 165)
    np.testing.assert_allclose(volume.spacing[2], (z[-1] - z[0]) / (n - 1), atol=1e-9)
    stack = np.stack([hu(p).T for p in series.files], axis=-1)
    expected = interp1d(z, stack, axis=-1)(np.linspace(z[0], z[-1], n))
    np.testing.assert_allclose(volume.data, expected, atol=1e-3)
    assert [o["op"] for o in volume.operations] == ["dicom_resample_slices"]
    assert read_header(MONAI, irregular_dicom="resample").shape == volume.shape
    with pytest.raises(ReadError, match="slice gap of 202.5 mm"):
        read_header(MONAI)


def test_resample_flag_drops_a_duplicated_slice_and_keeps_mixed_series_refused(
        tmp_path: Path) -> None:
    dup = make_case(tmp_path / "a", "duplicated")
    volume = read_volume(dup, irregular_dicom="resample")
    reference = read_volume(real_copy(tmp_path / "b" / "clean")[0].parent)
    np.testing.assert_array_equal(volume.data, reference.data)
    np.testing.assert_allclose(volume.affine, reference.affine)
    assert [o["op"] for o in volume.operations] == ["dicom_drop_duplicates"]
    mixed = make_case(tmp_path / "c", "mixed")
    with pytest.raises(ReadError, match="2 DICOM series in one folder"):
        read_volume(mixed, irregular_dicom="resample")


def test_problem_codes_cover_every_checklist_geometry_item() -> None:
    assert set(SORT_CODES) | set(SPACING_CODES) | set(GEOMETRY_CODES) >= {
        "gap", "duplicate", "conflict", "tilt", "multiframe", "unsortable", "no_position"}
    assert grid_problems(select_series(MONAI))[0].code == "gap"


def test_simpleitk_fallback_decodes_the_same_values(tmp_path: Path, monkeypatch) -> None:
    """A transfer syntax pydicom cannot decode goes to SimpleITK/GDCM, which applies the rescale
    itself: the volume is the same, the rescale applied once either way."""
    folder = tmp_path / "series"
    real_copy(folder, 4)
    expected = read_volume(folder)

    def no_decoder(self: pydicom.Dataset) -> np.ndarray:
        raise NotImplementedError("no decoder for this transfer syntax")

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(no_decoder))
    fallback = read_volume(folder)
    assert fallback.data.dtype == expected.data.dtype
    np.testing.assert_array_equal(fallback.data, expected.data)


def test_declared_size_limit_applies_to_dicom_and_to_resampling(monkeypatch) -> None:
    """The released series holds 4 x 16 x 16 voxels; resampled, 165 x 16 x 16 = 42,240."""
    monkeypatch.setenv("HARMONIZE_MAX_VOXELS", "10000")  # the slices fit, the resampled grid not
    with pytest.raises(ReadError, match="above the limit") as err:
        read_volume(MONAI, irregular_dicom="resample")
    assert err.value.file == str(MONAI) and "[16, 16, 165]" in err.value.message
    monkeypatch.setenv("HARMONIZE_MAX_VOXELS", "1000")  # not even the 4 slices
    with pytest.raises(ReadError, match=r"above the limit") as err:
        read_volume(MONAI, irregular_dicom="resample")
    assert "[16, 16, 4]" in err.value.message


def test_truncated_pixel_data_is_a_read_error_not_zeros(tmp_path: Path) -> None:
    """pydicom refuses a slice whose PixelData is shorter than Rows x Columns; GDCM would fill
    the rest with zeros, so a corrupt file must never fall back to it."""
    folder = tmp_path / "series"
    real_copy(folder, 4)
    victim = sorted(folder.iterdir())[-1]
    ds = pydicom.dcmread(victim)
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(victim)
    with pytest.raises(ReadError, match="cannot decode DICOM slice") as err:
        read_volume(folder)
    assert err.value.file == str(victim)
