"""RTSTRUCT reading (harmonize.read.rtstruct): contours rasterized onto the referenced series.

Oracles: analytic rectangles whose voxel sets are known exactly (edges half a voxel outside the
voxel centres, so no centre lies on an edge), and matplotlib.path.Path point-in-polygon tests of
every voxel centre in world coordinates (computed by harmonize.testing.dicom.SeriesGeometry.world,
not by the reader's affine) for random polygons.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from harmonize.errors import ReadError
from harmonize.read.dicom_scan import select_series
from harmonize.read.rtstruct import (
    is_rtstruct,
    rasterize,
    read_structure_set,
    referenced_series,
)
from harmonize.testing.dicom import SeriesGeometry, uid
from harmonize.testing.rtstruct import voxel_box, write_ct, write_rtstruct

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SWAPPED = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0)  # rows along x, normal -z


def make(tmp_path, rois, *, orientation=AXIAL, z_offset_mm=0.0, frame=None, kinds=None,
         step=2.5):
    geometry = SeriesGeometry(rows=24, columns=20, pixel_spacing=(0.8, 0.7),
                              origin=(-10.0, -12.0, 30.0), step=step, orientation=orientation)
    study, series = uid("study", tmp_path), uid("series", tmp_path)
    frame_uid = uid("frame", tmp_path)
    volume = np.random.default_rng(0).integers(-1000, 1000, (20, 24, 6)).astype(float)
    files = write_ct(tmp_path / "ct", geometry, volume, series_uid=series, study_uid=study,
                     frame_uid=frame_uid, patient_id="P1")
    rt = write_rtstruct(tmp_path / "rt" / "1-1.dcm", geometry, files, rois, series_uid=series,
                        study_uid=study, frame_uid=frame or frame_uid, patient_id="P1",
                        z_offset_mm=z_offset_mm, kinds=kinds)
    return geometry, rt


def masks_of(rt, folder):
    structure = read_structure_set(rt)
    series = referenced_series(structure, folder)
    affine, shape = series.affine(), (series.headers[0].Columns, series.headers[0].Rows,
                                      series.n_slices)
    return {roi.name: rasterize(roi, affine, shape, file=rt) for roi in structure.rois}


def boxes(shape, *items):
    out = np.zeros(shape, dtype=bool)
    for k, (i0, i1, j0, j1) in items:
        out[i0:i1 + 1, j0:j1 + 1, k] ^= True
    return out


def test_rectangles_holes_and_several_contours_per_slice_are_exact(tmp_path):
    rois = {
        "Lung-Left": [(k, voxel_box(2, 12, 3, 15)) for k in (1, 2, 3, 4)],
        "GTV-1": [(2, voxel_box(5, 8, 6, 9)), (3, voxel_box(6, 8, 6, 10))],
        "Ring": [(2, voxel_box(2, 15, 2, 20)), (2, voxel_box(5, 10, 6, 12)),   # outer minus hole
                 (4, voxel_box(0, 3, 0, 3)), (4, voxel_box(10, 19, 18, 23))],  # two islands
    }
    _, rt = make(tmp_path, rois)
    assert is_rtstruct(rt) and not is_rtstruct(tmp_path / "ct" / "1-001.dcm")
    masks = masks_of(rt, tmp_path / "ct")
    shape = (20, 24, 6)
    assert np.array_equal(masks["Lung-Left"], boxes(shape, *[(k, (2, 12, 3, 15)) for k in (1, 2, 3, 4)]))
    assert np.array_equal(masks["GTV-1"], boxes(shape, (2, (5, 8, 6, 9)), (3, (6, 8, 6, 10))))
    assert np.array_equal(masks["Ring"], boxes(shape, (2, (2, 15, 2, 20)), (2, (5, 10, 6, 12)),
                                              (4, (0, 3, 0, 3)), (4, (10, 19, 18, 23))))
    assert masks["Ring"][:, :, 2].sum() == 14 * 19 - 6 * 7  # the hole is not filled


@pytest.mark.parametrize(("orientation", "step"), [(AXIAL, 2.5), (SWAPPED, 2.5), (AXIAL, -2.5)])
def test_random_polygons_match_a_point_in_polygon_test_of_every_voxel_centre(tmp_path, orientation,
                                                                             step):
    """Also with slice 0 written on top (files in descending z): the reader sorts by position."""
    rng = np.random.default_rng(7)
    rois = {}
    for n in range(4):
        centre = rng.uniform(5, 14, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radii = rng.uniform(2, 7, 9)
        ij = centre + np.c_[np.cos(angles), np.sin(angles)] * radii[:, None]
        rois[f"poly{n}"] = [(n + 1, ij)]
    geometry, rt = make(tmp_path, rois, orientation=orientation, step=step)
    masks = masks_of(rt, tmp_path / "ct")
    structure = read_structure_set(rt)
    series = select_series(tmp_path / "ct")
    for roi in structure.rois:
        (points,) = roi.closed
        k_file = int(round((points[0] - geometry.origin) @ geometry.normal / geometry.step))
        x, y, _ = geometry.world(k_file)  # (rows, columns) LPS of pixel centres
        inside = MplPath(points[:, :2]).contains_points(np.c_[x.ravel(), y.ravel()])
        expected = inside.reshape(x.shape).T  # (columns, rows) = (X, Y)
        z = [k for k in range(series.n_slices) if masks[roi.name][:, :, k].any()]
        assert z == [k_file if step > 0 else series.n_slices - 1 - k_file]
        assert int(expected.sum()) > 10
        assert np.array_equal(masks[roi.name][:, :, z[0]], expected), roi.name


def test_an_off_slice_contour_is_refused_naming_the_file(tmp_path):
    _, rt = make(tmp_path, {"GTV-1": [(2, voxel_box(5, 8, 6, 9))]}, z_offset_mm=1.0)
    with pytest.raises(ReadError, match="not on a slice") as info:
        masks_of(rt, tmp_path / "ct")
    assert str(rt) in str(info.value)


def test_another_frame_of_reference_is_refused(tmp_path):
    _, rt = make(tmp_path, {"GTV-1": [(2, voxel_box(5, 8, 6, 9))]}, frame="1.2.3.4")
    with pytest.raises(ReadError, match="frame of reference differs") as info:
        masks_of(rt, tmp_path / "ct")
    assert str(rt) in str(info.value)


def test_a_missing_referenced_series_is_refused(tmp_path):
    _, rt = make(tmp_path / "a", {"GTV-1": [(2, voxel_box(5, 8, 6, 9))]})
    make(tmp_path / "b", {"GTV-1": [(2, voxel_box(5, 8, 6, 9))]})
    with pytest.raises(ReadError, match="references series .* which is not in") as info:
        masks_of(rt, tmp_path / "b" / "ct")
    assert str(rt) in str(info.value)


def test_missing_referenced_slices_are_refused(tmp_path):
    _, rt = make(tmp_path, {"GTV-1": [(2, voxel_box(5, 8, 6, 9))]})
    (tmp_path / "ct" / "1-006.dcm").unlink()
    with pytest.raises(ReadError, match="slice.* the RTSTRUCT references are missing"):
        masks_of(rt, tmp_path / "ct")


def _rtstruct_checks(path):
    from harmonize.qa.dicom_checklist import validate_dicom

    report = validate_dicom(path)
    (rt,) = [s for s in report.series if s.modality == "RTSTRUCT"]
    assert not [s for s in report.skipped if s.path.name == "1-1.dcm"]
    return {c.name: (c.passed, c.detail) for c in rt.checks}


def test_validate_dicom_passes_a_consistent_structure_set(tmp_path):
    make(tmp_path, {"GTV-1": [(2, voxel_box(5, 8, 6, 9))], "Body": [(3, voxel_box(0, 19, 0, 23))]})
    checks = _rtstruct_checks(tmp_path)
    assert all(ok for ok, _ in checks.values()), checks
    assert set(checks) == {"referenced_series", "frame_of_reference", "contours_inside",
                           "no_empty_roi"}


def test_validate_dicom_reports_each_rtstruct_problem(tmp_path):
    make(tmp_path / "frame", {"GTV-1": [(2, voxel_box(5, 8, 6, 9))]}, frame="1.2.3.4")
    assert not _rtstruct_checks(tmp_path / "frame")["frame_of_reference"][0]
    make(tmp_path / "off", {"GTV-1": [(2, voxel_box(5, 8, 6, 9))]}, z_offset_mm=1.0)
    ok, detail = _rtstruct_checks(tmp_path / "off")["contours_inside"]
    assert not ok and "off the slices" in detail
    make(tmp_path / "wide", {"Body": [(3, voxel_box(-2, 19, 0, 23))]})
    ok, detail = _rtstruct_checks(tmp_path / "wide")["contours_inside"]
    assert not ok and "outside the image" in detail
    make(tmp_path / "empty", {"GTV-1": [(2, voxel_box(5, 8, 6, 9))], "Cord": []})
    ok, detail = _rtstruct_checks(tmp_path / "empty")["no_empty_roi"]
    assert not ok and "'Cord'" in detail
    make(tmp_path / "gone", {"GTV-1": [(2, voxel_box(5, 8, 6, 9))]})
    shutil.rmtree(tmp_path / "gone" / "ct")
    assert not _rtstruct_checks(tmp_path / "gone")["referenced_series"][0]


def test_pydicoms_real_structure_set_parses():
    """pydicom's rtstruct.dcm: no preamble, one CLOSED_PLANAR ROI and two POINT markers."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("rtstruct.dcm")
    assert is_rtstruct(path)
    structure = read_structure_set(path)
    assert structure.roi_names == ["patient", "Isocenter 1", "Isocenter 2"]
    assert structure.series_uid == "1.2.826.0.1.3680043.8.498.2010020400001.2.1.1"
    assert structure.frame_of_reference == "1.2.826.0.1.3680043.8.498.2010020400001.2"
    patient, iso1, _ = structure.rois
    assert [kind for kind, _ in iso1.contours] == ["POINT"] and not iso1.closed
    first = patient.closed[0]
    assert first.shape == (5, 3)
    np.testing.assert_allclose(first[0], [-200.0, 150.0, -200.0], atol=1e-9)
