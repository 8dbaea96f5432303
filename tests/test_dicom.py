"""DICOM series grouping, sorting, reading and the CT readiness checklist.

Series are assembled from pydicom's real test files (CT_small.dcm, MR_small.dcm): each slice is a
copy with its own ImagePositionPatient, InstanceNumber, SliceLocation, SOPInstanceUID and pixel
offset (slice k holds pixel + k, so the reading order is visible in the voxels). File names are
shuffled so that name order is not position order.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.errors import ReadError
from harmonize.qa.dicom_checklist import CHECKS, check_series, validate_dicom
from harmonize.read.dicom import grid_problems
from harmonize.read.dicom_scan import group_series, scan_dicom
from harmonize.read.dicom_volume import read_series
from harmonize.read.volume import read_volume

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _ds(value: float) -> str:
    return f"{value:.5f}"


def write_series(
    folder: Path,
    n: int = 60,
    *,
    source: str = "CT_small.dcm",
    gap: float = 2.5,
    iop: Sequence[float] = AXIAL,
    start: Sequence[float] = (-158.13580, -179.03580, -75.70000),
    offsets: Sequence[float] | None = None,
    shear: Sequence[float] = (0.0, 0.0, 0.0),
    series_number: int = 1,
    tag: str = "s",
    blank_phi: bool = True,
    edit: Callable[[pydicom.Dataset, int], None] | None = None,
    seed: int = 0,
) -> tuple[str, np.ndarray, list[np.ndarray]]:
    """Write ``n`` slices of one series; return (SeriesInstanceUID, base pixels, positions).

    Slice ``k`` sits at ``start + normal * offsets[k] + shear * k`` (offsets default ``k * gap``)
    and holds ``base + k``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(get_testdata_file(source))
    base = template.pixel_array
    uid = generate_uid(entropy_srcs=[tag, "series"])
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    normal = np.cross(row, col)
    offsets = [k * gap for k in range(n)] if offsets is None else list(offsets)
    names = np.random.default_rng(seed).permutation(n)
    positions = []
    for k in range(n):
        ds = copy.deepcopy(template)
        pos = np.asarray(start) + normal * offsets[k] + np.asarray(shear) * k
        positions.append(pos)
        ds.ImagePositionPatient = [_ds(v) for v in pos]
        ds.ImageOrientationPatient = [_ds(v) for v in iop]
        ds.SliceLocation = _ds(float(pos @ normal))
        ds.InstanceNumber = k + 1
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[tag, str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = uid
        ds.SeriesNumber = series_number
        ds.PixelData = (base + k).astype(base.dtype).tobytes()
        if blank_phi:
            ds.PatientName = ""
            ds.PatientBirthDate = ""
        if edit is not None:
            edit(ds, k)
        ds.save_as(folder / f"IM{tag}{names[k]:04d}.dcm")
    return uid, base, positions


def failing(report) -> set[str]:
    return {c.name for c in report.checks if not c.passed}


def ras(lps: np.ndarray) -> np.ndarray:
    return np.asarray(lps, dtype=float) * np.array([-1.0, -1.0, 1.0])


# ------------------------------------------------------------------------------------ real files


def test_real_ct_small_single_file(tmp_path: Path) -> None:
    folder = tmp_path / "ct"
    folder.mkdir()
    src = Path(get_testdata_file("CT_small.dcm"))
    (folder / "CT_small.dcm").write_bytes(src.read_bytes())
    (series,) = group_series(folder)
    assert series.n_slices == 1 and series.modality == "CT" and series.sorted_by == "position"
    report = check_series(series)
    assert [c.name for c in report.checks] == list(CHECKS)
    # one slice (a valid one-slice grid, as reading takes it: too few for CT readiness), and
    # the file keeps its PatientName
    assert failing(report) == {"slice_count", "phi"}
    phi = next(c for c in report.checks if c.name == "phi")
    assert "PatientName" in phi.detail and "CompressedSamples" not in phi.detail  # value never shown
    volume = read_series(series)
    ds = pydicom.dcmread(src)
    expected = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    assert volume.shape == (128, 128, 1)
    np.testing.assert_array_equal(volume.data[:, :, 0], expected.T)
    np.testing.assert_allclose(volume.affine[:3, 3], ras([float(v) for v in ds.ImagePositionPatient]))
    np.testing.assert_allclose(volume.spacing, (0.661468, 0.661468, 5.0))


def test_assembled_ct_series_passes_and_reads_in_position_order(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    uid, base, positions = write_series(folder, 60, gap=2.5)
    scan = scan_dicom(folder)
    assert scan.skipped == [] and len(scan.series) == 1
    series = scan.series[0]
    assert series.uid == uid and series.sorted_by == "position"
    assert [int(h.InstanceNumber) for h in series.headers] == list(range(1, 61))
    report = check_series(series)
    assert report.passed, [c.to_dict() for c in report.checks if not c.passed]
    volume = series.read()
    assert volume.shape == (128, 128, 60) and volume.data.dtype.kind == "i"
    for k in (0, 1, 37, 59):  # slice k holds base + k, rescaled by slope 1, intercept -1024
        np.testing.assert_array_equal(volume.data[:, :, k], (base.astype(np.int32) + k - 1024).T)
    np.testing.assert_allclose(volume.spacing, (0.661468, 0.661468, 2.5), atol=1e-5)
    for k in (0, 59):  # voxel (0, 0, k) is the slice's ImagePositionPatient
        np.testing.assert_allclose(volume.affine @ [0, 0, k, 1], [*ras(positions[k]), 1], atol=1e-4)
    assert volume.orientation == "LPS" == "".join(nib.aff2axcodes(volume.affine))
    # the engine's GDCM reader agrees voxel for voxel and on the geometry
    engine = read_volume(folder)
    np.testing.assert_array_equal(engine.data, volume.data)
    np.testing.assert_allclose(engine.affine, volume.affine, atol=1e-4)


def test_oblique_feet_first_series_sorted_along_normal(tmp_path: Path) -> None:
    """Positions fall along a tilted normal and instance numbers run against it."""
    angle = np.radians(20)
    iop = (1.0, 0.0, 0.0, 0.0, float(np.cos(angle)), float(np.sin(angle)))
    n = 12
    # instance k+1 lies at offset (n-1-k) * 3 mm: the file order runs head to feet
    write_series(tmp_path / "obl", n, iop=iop, offsets=[(n - 1 - k) * 3.0 for k in range(n)])
    (series,) = group_series(tmp_path / "obl")
    assert series.sorted_by == "position"
    assert [int(h.InstanceNumber) for h in series.headers] == list(range(n, 0, -1))
    np.testing.assert_allclose(series.gaps, 3.0, atol=1e-4)
    volume = read_series(series)
    assert volume.data[0, 0, 0] == volume.data[0, 0, -1] + (n - 1)  # first slice = last instance
    normal = np.cross(iop[:3], iop[3:])
    for k in (0, n - 1):
        pos = np.asarray(series.headers[k].ImagePositionPatient, dtype=float)
        np.testing.assert_allclose(volume.affine @ [0, 0, k, 1], [*ras(pos), 1], atol=1e-4)
    np.testing.assert_allclose(volume.affine[:3, 2], ras(normal * 3.0), atol=1e-4)
    # one voxel step along a row moves along the row direction by the column spacing
    np.testing.assert_allclose(volume.affine[:3, 0], ras(np.array(iop[:3]) * 0.661468), atol=1e-5)
    np.testing.assert_allclose(volume.affine[:3, 1], ras(np.array(iop[3:]) * 0.661468), atol=1e-5)


def test_per_slice_rescale_applied(tmp_path: Path) -> None:
    def edit(ds: pydicom.Dataset, k: int) -> None:
        ds.RescaleSlope = "2.5" if k % 2 else "1"
        ds.RescaleIntercept = "-1000"

    _, base, _ = write_series(tmp_path / "r", 4, edit=edit)
    volume = read_series(group_series(tmp_path / "r")[0])
    assert volume.data.dtype == np.float32
    for k in range(4):
        slope = 2.5 if k % 2 else 1.0
        np.testing.assert_allclose(volume.data[:, :, k], ((base + k) * slope - 1000.0).T)


def test_mr_series_from_real_file_reads_raw_values(tmp_path: Path) -> None:
    _, base, _ = write_series(tmp_path / "mr", 5, source="MR_small.dcm", gap=0.8,
                              start=(-83.9063, -91.2, 6.6406))
    (series,) = group_series(tmp_path / "mr")
    assert series.modality == "MR"
    volume = series.read()
    assert volume.shape == (64, 64, 5)
    np.testing.assert_array_equal(volume.data[:, :, 4], (base + 4).T)  # no rescale tags: raw
    np.testing.assert_allclose(volume.spacing, (0.3125, 0.3125, 0.8), atol=1e-5)


def test_two_series_in_one_folder_are_grouped(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    uid_b, _, _ = write_series(folder, 7, tag="b", series_number=3, gap=1.0)
    uid_a, _, _ = write_series(folder, 5, tag="a", series_number=2, gap=2.0, seed=1)
    (folder / "readme.txt").write_text("not dicom")
    scan = scan_dicom(folder)
    assert [s.uid for s in scan.series] == [uid_a, uid_b]  # SeriesNumber order
    assert [s.n_slices for s in scan.series] == [5, 7]
    assert [round(float(np.median(s.gaps)), 4) for s in scan.series] == [2.0, 1.0]
    assert [s.path.name for s in scan.skipped] == ["readme.txt"]
    assert scan.skipped[0].reason == "not a DICOM file"
    for series in scan.series:
        assert {s.uid for s in group_series(folder)} == {uid_a, uid_b}
        assert read_series(series).shape[2] == series.n_slices
    report = validate_dicom(folder)
    assert len(report.series) == 2
    assert all("single_series" in failing(s) for s in report.series)


# ------------------------------------------------------------------------------- failure modes


def _set(keyword: str, value: object) -> Callable[[pydicom.Dataset, int], None]:
    def edit(ds: pydicom.Dataset, k: int) -> None:
        setattr(ds, keyword, value)
    return edit


def _delete(*keywords: str) -> Callable[[pydicom.Dataset, int], None]:
    def edit(ds: pydicom.Dataset, k: int) -> None:
        for keyword in keywords:
            delattr(ds, keyword)
    return edit


def _no_position_or_instance(ds: pydicom.Dataset, k: int) -> None:
    del ds.ImagePositionPatient
    del ds.InstanceNumber


MISSING_SLICE = [k * 2.5 for k in range(30)] + [k * 2.5 for k in range(31, 61)]

FAILURE_MODES = {
    "non-CT modality": (dict(edit=_set("Modality", "MR")), {"modality"}),
    "one MR slice": (dict(edit=lambda ds, k: setattr(ds, "Modality", "MR" if k == 7 else "CT")),
                     {"modality"}),
    "missing rescale": (dict(edit=_delete("RescaleSlope", "RescaleIntercept")), {"rescale"}),
    "BitsStored 8": (dict(edit=_set("BitsStored", 8)), {"bits_stored"}),
    # changed with the one DICOM model: no PixelSpacing, no grid (reading refuses it too)
    "missing PixelSpacing": (dict(edit=_delete("PixelSpacing")), {"pixel_spacing", "geometry"}),
    "missing SliceThickness": (dict(edit=_delete("SliceThickness")), {"slice_thickness"}),
    "10 slices": (dict(n=10), {"slice_count"}),
    "non-uniform z gap": (dict(offsets=MISSING_SLICE), {"uniform_spacing"}),
    "gantry tilt": (dict(shear=(0.0, 0.44, 0.0)), {"geometry"}),  # 10 degrees at 2.5 mm
    "PHI present": (dict(blank_phi=False), {"phi"}),
    "PatientBirthDate only": (dict(edit=_set("PatientBirthDate", "19700101")), {"phi"}),
    "unsortable": (dict(edit=_no_position_or_instance),
                   {"sortable", "uniform_spacing"}),
}


@pytest.mark.parametrize("mode", list(FAILURE_MODES))
def test_checklist_failure_modes(tmp_path: Path, mode: str) -> None:
    kwargs, expected = FAILURE_MODES[mode]
    write_series(tmp_path / "s", **{"n": 60, **kwargs})
    report = validate_dicom(tmp_path)
    (series,) = report.series
    assert failing(series) == expected, [c.to_dict() for c in series.checks]
    assert not report.passed
    for check in series.checks:
        assert check.detail  # every line says why


def test_real_mr_series_fails_modality_and_rescale(tmp_path: Path) -> None:
    write_series(tmp_path / "mr", 60, source="MR_small.dcm", gap=0.8)
    (series,) = validate_dicom(tmp_path).series
    assert failing(series) == {"modality", "rescale"}


def test_conflicting_slices_at_one_position_are_refused(tmp_path: Path) -> None:
    """Changed with the one DICOM model: slices at one position are still ordered (so the
    verdict can name them) and are a ``conflict`` when their pixels differ (here base+2, base+3)."""
    write_series(tmp_path / "d", 6, offsets=[0, 1, 2, 2, 3, 4])
    (series,) = group_series(tmp_path / "d")
    assert [p.code for p in grid_problems(series)] == ["conflict"]
    assert "sortable" in failing(check_series(series))
    for irregular in ("refuse", "resample"):  # a conflict is never repaired
        with pytest.raises(ReadError, match="different pixel data"):
            read_series(series, irregular=irregular)


def test_read_refuses_irregular_series(tmp_path: Path) -> None:
    write_series(tmp_path / "gap", 8, offsets=[0, 1, 2, 3, 5, 6, 7, 8])
    with pytest.raises(ReadError, match="slice gap of 2 mm .* median gap is 1 mm") as err:
        read_series(group_series(tmp_path / "gap")[0])
    assert "validate-dicom" in str(err.value) and str(tmp_path / "gap") in str(err.value)
    write_series(tmp_path / "inst", 4, edit=_delete("ImagePositionPatient"))
    (series,) = group_series(tmp_path / "inst")
    assert series.sorted_by == "instance"
    with pytest.raises(ReadError, match="place in space is unknown"):
        read_series(series)


# ------------------------------------------------------------------------------------------ CLI


def test_validate_dicom_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    write_series(tmp_path / "good" / "s1", 60)
    result = runner.invoke(app, ["validate-dicom", str(tmp_path / "good"), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "PASS" and len(doc["series"]) == 1
    assert [c["check"] for c in doc["series"][0]["checks"]] == list(CHECKS)

    write_series(tmp_path / "bad" / "s2", 10, blank_phi=False, tag="x")
    result = runner.invoke(app, ["validate-dicom", str(tmp_path)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "FAIL" in text and "slice_count" in text and "10 slice(s)" in text and "phi" in text

    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["validate-dicom", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no DICOM" in " ".join(result.output.split())


# ------------------------------------------------------------------- one verdict for both paths

GEOMETRY_CHECKS = {"sortable", "uniform_spacing", "geometry", "single_series"}


@pytest.mark.parametrize("mode", list(FAILURE_MODES))
def test_validate_dicom_and_reading_give_the_same_geometry_verdict(tmp_path: Path,
                                                                   mode: str) -> None:
    """Every checklist failure mode: the geometry items of `validate-dicom` fail exactly when
    `read_volume` (the path `harmonize run` takes) refuses the folder, for the same reason."""
    kwargs, _ = FAILURE_MODES[mode]
    write_series(tmp_path / "s", **{"n": 60, **kwargs})
    (report,) = validate_dicom(tmp_path / "s").series
    failed = {c.name for c in report.checks if not c.passed} & GEOMETRY_CHECKS
    try:
        read_volume(tmp_path / "s")
    except ReadError as exc:
        assert failed, f"read refused but validate-dicom passed: {exc}"
        details = [c.detail for c in report.checks if c.name in failed]
        assert any(p.message in exc.message for p in grid_problems(group_series(tmp_path / "s")[0]))
        assert details
    else:
        assert not failed, f"validate-dicom failed {failed} but the folder was read"


def test_multi_frame_file_is_refused_by_both(tmp_path: Path) -> None:
    folder = tmp_path / "mf"
    folder.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(folder / "multi.dcm")
    (report,) = validate_dicom(folder).series
    geometry = next(c for c in report.checks if c.name == "geometry")
    assert not geometry.passed and "multi-frame" in geometry.detail
    with pytest.raises(ReadError, match="multi-frame file \\(2 frames in one file\\)"):
        read_volume(folder)
