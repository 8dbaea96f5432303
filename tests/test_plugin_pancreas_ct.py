"""Pancreas-CT plugin on fabricated copies of the TCIA release (NBIA DICOM tree + label NIfTI)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.pancreas_ct import PANCREAS_HU, make_pancreas_ct

from harmonize.errors import DiscoveryError
from harmonize.plugin.discovery import discover
from harmonize.read.volume import read_volume
from harmonize.testing import check_plugin


@pytest.fixture(scope="module")
def pancreas_root(tmp_path_factory) -> Path:
    return make_pancreas_ct(tmp_path_factory.mktemp("pancreas") / "pancreas", n_cases=3, seed=2)


def test_cases_and_the_removed_duplicates(catalog, pancreas_root):
    check = check_plugin(catalog.get("pancreas-ct"), pancreas_root)
    records = {r.case_id: r for r in check.records}
    assert sorted(records) == ["PANCREAS_0001", "PANCREAS_0002", "PANCREAS_0003"]
    record = records["PANCREAS_0002"]
    assert record.patient_id == "PANCREAS_0002" and record.labels == {"pancreas": [1]}
    assert record.image.endswith("Pancreas-CT/PANCREAS_0002/11-24-2015-PANCREAS0002-Pancreas-18959/"
                                 "Pancreas-99669")
    assert record.mask.endswith("TCIA_pancreas_labels-02-05-2017/label0002.nii.gz")
    assert record.official_split is None and record.shape == [32, 32, 14]
    skipped = {s.path.name: s for s in check.discovery.skipped}
    assert sorted(skipped) == ["label0025.nii.gz", "label0070.nii.gz"]
    assert "TCIA removed PANCREAS_0025" in skipped["label0025.nii.gz"].reason
    assert "PANCREAS_0002" in skipped["label0070.nii.gz"].reason


@pytest.mark.parametrize("header", ["dicom", "naive"])
def test_label_lies_on_the_pancreas_whatever_its_header(catalog, tmp_path, header):
    plugin = catalog.get("pancreas-ct")
    root = make_pancreas_ct(tmp_path / "p", n_cases=2, seed=7, label_affine=header,
                            removed_duplicates=False)
    for case in discover(plugin, root).cases:
        label, image = plugin.read_label(case), read_volume(case.images[0])
        assert np.allclose(label.affine, image.affine) and label.data.shape == image.data.shape
        pancreas = label.data == 1
        assert pancreas.sum() > 50 and np.array_equal(pancreas, image.data == PANCREAS_HU)
        # head low on the patient's right, tail higher on the left (RAS: +x right, +z up)
        points = (image.affine @ np.c_[np.argwhere(pancreas), np.ones(int(pancreas.sum()))].T)[:3]
        low = points[2] < np.median(points[2])
        assert points[0][low].mean() > points[0][~low].mean()
        # the quirk: label slice k is instance k + 1, the top slice first, so the released array
        # is the z-reverse of the reader's position-sorted volume
        raw = np.asarray(nib.load(case.label).dataobj)
        assert np.array_equal(raw[:, :, ::-1], label.data) and not np.array_equal(raw, label.data)


def test_old_download_with_the_duplicate_folders(catalog, tmp_path):
    root = make_pancreas_ct(tmp_path / "p", n_cases=1, old_duplicates=True)
    assert (root / "Pancreas-CT" / "PANCREAS_0070").is_dir()
    found = discover(catalog.get("pancreas-ct"), root)
    assert [c.case_id for c in found.cases] == ["PANCREAS_0001"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert set(reasons) == {"PANCREAS_0025", "PANCREAS_0070"}  # once each, not also the labels
    assert all("TCIA removed" in r and "PANCREAS_0002" in r for r in reasons.values())


def test_nbia_manifest_folder_and_foreign_files(catalog, pancreas_root, tmp_path):
    root = tmp_path / "download"
    shutil.copytree(pancreas_root / "Pancreas-CT", root / "manifest-1599750808610" / "Pancreas-CT")
    shutil.copytree(pancreas_root / "TCIA_pancreas_labels-02-05-2017",
                    root / "TCIA_pancreas_labels-02-05-2017")
    images = root / "manifest-1599750808610" / "Pancreas-CT"
    (images / "PANCREAS_0001.nii.gz").write_bytes(b"\0")
    (images / "._PANCREAS_0002").write_bytes(b"\0")
    found = discover(catalog.get("pancreas-ct"), root)
    assert [c.case_id for c in found.cases] == ["PANCREAS_0001", "PANCREAS_0002", "PANCREAS_0003"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "NIfTI conversion" in reasons["PANCREAS_0001.nii.gz"]
    assert "hidden" in reasons["._PANCREAS_0002"]


def test_incomplete_downloads_are_reported(catalog, pancreas_root, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(pancreas_root, root)
    (root / "TCIA_pancreas_labels-02-05-2017" / "label0001.nii.gz").unlink()
    series = next((root / "Pancreas-CT" / "PANCREAS_0003").rglob("*.dcm")).parent
    shutil.copytree(series, series.parent / "Pancreas-2")
    found = discover(catalog.get("pancreas-ct"), root)
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "label0001.nii.gz is missing" in reasons["PANCREAS_0001"]
    assert "2 DICOM series folders" in reasons["PANCREAS_0003"]
    assert [c.case_id for c in found.cases] == ["PANCREAS_0002"]


def test_slice_count_mismatch_is_a_label_error(catalog, pancreas_root, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(pancreas_root, root)
    series = next((root / "Pancreas-CT" / "PANCREAS_0002").rglob("*.dcm")).parent
    sorted(series.glob("*.dcm"))[0].unlink()
    check = check_plugin(catalog.get("pancreas-ct"), root, allow_errors=True)
    (error,) = check.errors
    assert error.kind == "label" and error.case == "PANCREAS_0002"
    assert error.file.endswith("label0002.nii.gz") and "(32, 32, 13)" in error.message


def test_two_series_in_one_folder_is_a_read_error(catalog, pancreas_root, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(pancreas_root, root)
    target = next((root / "Pancreas-CT" / "PANCREAS_0001").rglob("*.dcm")).parent
    for path in next((root / "Pancreas-CT" / "PANCREAS_0002").rglob("*.dcm")).parent.glob("*.dcm"):
        shutil.copy(path, target / f"x{path.name}")
    check = check_plugin(catalog.get("pancreas-ct"), root, allow_errors=True)
    (error,) = check.errors
    assert error.kind == "read" and "2 DICOM series in one folder" in error.message


def test_root_without_labels_or_images(catalog, pancreas_root, tmp_path):
    plugin = catalog.get("pancreas-ct")
    shutil.copytree(pancreas_root / "Pancreas-CT", tmp_path / "a" / "Pancreas-CT")
    with pytest.raises(DiscoveryError, match="TCIA_pancreas_labels") as info:
        list(plugin.discover(tmp_path / "a"))
    assert "zip" in info.value.hint
    (tmp_path / "b").mkdir()
    with pytest.raises(DiscoveryError, match="PANCREAS_XXXX"):
        list(plugin.discover(tmp_path / "b"))


def test_descriptor(catalog):
    plugin = catalog.get("pancreas-ct")
    desc = plugin.descriptor
    assert desc.cases == 80 and desc.classes == {"pancreas": (1,)} and desc.ct_window
    assert desc.licence and desc.citation and desc.homepage and desc.download and desc.expected_root
    assert {o["dataset"] for o in desc.overlaps} == {"abdomenct-1k"}
    assert plugin.can_fabricate and not plugin.demo


def test_harmonize_run_pancreas_ct(pancreas_root, tmp_path):
    from typer.testing import CliRunner

    from harmonize.cli.app import app
    from harmonize.manifest.build import read_manifest

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-d", "pancreas-ct", "-r", str(pancreas_root), "-o",
                                      str(out), "-w", "1", "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = {r.case_id: r for r in read_manifest(out / "pancreas-ct.jsonl")}
    assert sorted(records) == ["PANCREAS_0001", "PANCREAS_0002", "PANCREAS_0003"]
    for record in records.values():
        assert record.orientation == "RAS" and record.extra["original"]["orientation"] == "LPS"
        mask = np.asarray(nib.load(out / record.mask).dataobj) == 1
        image = np.asarray(nib.load(out / record.image).dataobj)
        value = np.unique(image[mask])
        assert mask.sum() > 50 and value.size == 1 and np.array_equal(mask, image == value[0])
