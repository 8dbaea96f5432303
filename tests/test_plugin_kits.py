"""KiTS19/21/23 plugins on fabricated copies of their released layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.kits import make_kits, make_kits23

from harmonize.errors import DiscoveryError
from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin


def test_kits23_discovery_and_records(catalog, kits23_root):
    plugin = catalog.get("kits23")
    check = check_plugin(plugin, kits23_root)
    assert [r.case_id for r in check.records] == ["case_00000", "case_00001", "case_00002"]
    record = check.records[0]
    assert record.labels == {
        "kidney": [1, 2, 3], "kidney mass": [2, 3], "kidney tumor": [2], "kidney cyst": [3]
    }
    assert record.annotated == list(record.labels)
    assert record.patient_id == record.case_id
    assert record.official_split is None and record.split in ("train", "val", "test")
    # KiTS stores (slices, H, W) with axis 0 -> z: orientation code says so
    assert record.orientation == "IPL"
    assert record.metadata["clinical"]["gender"] in ("male", "female")
    assert check.discovery.skipped == []  # kits23.json and instances/ are not "skipped"


def test_root_may_be_the_repository_or_the_dataset_folder(catalog, kits23_root):
    plugin = catalog.get("kits23")
    assert len(discover(plugin, kits23_root).cases) == 3
    assert len(discover(plugin, kits23_root / "dataset").cases) == 3


def test_missing_root_and_empty_root_are_clear_errors(catalog, tmp_path):
    plugin = catalog.get("kits23")
    missing = discover(plugin, tmp_path / "nope")
    assert missing.cases == [] and missing.errors[0].kind == "discovery"
    assert "does not exist" in missing.errors[0].message
    assert missing.errors[0].hint
    empty = tmp_path / "empty"
    empty.mkdir()
    result = discover(plugin, empty)
    assert result.errors and "no case_XXXXX folders" in result.errors[0].message
    with pytest.raises(DiscoveryError, match="kits23"):
        list(plugin.discover(empty))


def test_incomplete_cases_and_foreign_folders_are_reported(catalog, tmp_path):
    root = make_kits23(tmp_path / "k", n_cases=4, missing_imaging=(1,), missing_label=(2,))
    data = root / "dataset"
    (data / "notes").mkdir()
    (data / "case_123").mkdir()
    (data / "._case_00000").write_bytes(b"\0")
    result = discover(catalog.get("kits23"), root)
    assert [c.case_id for c in result.cases] == ["case_00000", "case_00003"]
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert "imaging.nii.gz is missing" in reasons["case_00001"]
    assert "segmentation.nii.gz is missing" in reasons["case_00002"]
    assert "not a case folder" in reasons["notes"]
    assert "not a case folder" in reasons["case_123"]
    assert "hidden" in reasons["._case_00000"]
    assert all(s.hint for s in result.skipped if s.path.name != "._case_00000")


def test_kits21_uses_majority_vote_labels(catalog, tmp_path):
    root = make_kits(tmp_path / "kits21", release="kits21", n_cases=2)
    assert (root / "kits21/data/case_00000/aggregated_MAJ_seg.nii.gz").is_file()
    check = check_plugin(catalog.get("kits21"), root)
    assert len(check.records) == 2
    assert check.records[0].mask.endswith("aggregated_MAJ_seg.nii.gz")


def test_kits19_labels_and_unlabelled_test_cases(catalog, tmp_path):
    root = make_kits(tmp_path / "kits19", release="kits19", n_cases=2, first_case=209,
                     missing_label=(210,))
    check = check_plugin(catalog.get("kits19"), root)
    by_id = {r.case_id: r for r in check.records}
    assert by_id["case_00209"].labels == {"kidney": [1, 2], "kidney tumor": [2]}
    assert by_id["case_00210"].mask is None and by_id["case_00210"].official_split == "test"
    assert by_id["case_00210"].split == "test" and by_id["case_00210"].annotated == []


def test_undeclared_label_value_is_an_error_naming_the_file(catalog, tmp_path):
    root = make_kits(tmp_path / "kits19", release="kits19", n_cases=1)
    seg = root / "data/case_00000/segmentation.nii.gz"
    img = nib.load(seg)
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 3  # KiTS19 has no cysts
    nib.save(nib.Nifti1Image(data, img.affine), seg)
    check = check_plugin(catalog.get("kits19"), root, allow_errors=True)
    assert check.records == []
    error = check.errors[0]
    assert error.kind == "label" and error.case == "case_00000"
    assert error.file.endswith("segmentation.nii.gz") and "[3]" in error.message


def test_label_shape_mismatch_is_reported(catalog, kits23_root):
    seg = kits23_root / "dataset/case_00001/segmentation.nii.gz"
    img = nib.load(seg)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-1], img.affine), seg)
    check = check_plugin(catalog.get("kits23"), kits23_root, allow_errors=True)
    assert [r.case_id for r in check.records] == ["case_00000", "case_00002"]
    assert "differs from image shape" in check.errors[0].message


def test_duplicate_case_ids_are_skipped_with_reason(catalog, kits23_root):
    from harmonize import Case, DatasetPlugin

    class Twice(DatasetPlugin):
        id = "kits23"

        def discover(self, root: Path):
            for case in discover(catalog.get("kits23"), root).cases:
                yield case
                yield case

    result = discover(Twice(), kits23_root)
    assert len(result.cases) == 3
    assert len(result.skipped) == 3 and "duplicate case id" in result.skipped[0].reason
    assert isinstance(result.cases[0], Case)


def test_fabricated_tree_is_deterministic(tmp_path):
    a = make_kits23(tmp_path / "a", n_cases=2, seed=3)
    b = make_kits23(tmp_path / "b", n_cases=2, seed=3)
    for path in sorted(a.rglob("*.nii.gz")):
        assert path.read_bytes() == (b / path.relative_to(a)).read_bytes()
    shutil.rmtree(b)
