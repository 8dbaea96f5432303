"""BTCV plugin on fabricated copies of RawData.zip (Training/{img,label}, Testing/img)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.btcv import make_btcv

from harmonize.errors import DiscoveryError
from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin

ORGANS = ["spleen", "right kidney", "left kidney", "kidney", "gallbladder", "esophagus", "liver",
          "stomach", "aorta", "inferior vena cava", "portal vein and splenic vein", "pancreas",
          "right adrenal gland", "left adrenal gland", "adrenal gland"]


@pytest.fixture
def btcv_root(tmp_path: Path) -> Path:
    return make_btcv(tmp_path / "Abdomen", n_cases=3, n_test=2, seed=4)


def test_training_and_testing_cases(catalog, btcv_root):
    check = check_plugin(catalog.get("btcv"), btcv_root)
    by_id = {r.case_id: r for r in check.records}
    assert sorted(by_id) == ["img0001", "img0002", "img0003", "img0061", "img0062"]
    train = by_id["img0002"]
    assert train.patient_id == "0002"
    assert train.mask.endswith("RawData/Training/label/label0002.nii.gz")
    assert list(train.labels) == ORGANS
    assert train.labels["kidney"] == [2, 3] and train.labels["adrenal gland"] == [12, 13]
    assert train.labels["portal vein and splenic vein"] == [10]
    assert train.official_split == "train"  # the release's Training folder (its test is hidden)
    assert train.split in ("train", "val", "test")  # so our split still gives a labelled test
    test = by_id["img0061"]
    assert test.patient_id == "0061" and test.mask is None and test.annotated == []
    assert test.official_split == test.split == "test"
    assert check.discovery.skipped == []


def test_sides_follow_the_patient_in_world_coordinates(btcv_root):
    """Value 2 (right kidney) lies at larger RAS x (patient right) than value 3, as released."""
    img = nib.load(btcv_root / "RawData/Training/label/label0001.nii.gz")
    data = np.asarray(img.dataobj)
    assert sorted(int(v) for v in np.unique(data)) == list(range(14))

    def world_x(value: int) -> float:
        return float((img.affine @ [*np.argwhere(data == value).mean(axis=0), 1.0])[0])

    assert world_x(2) > world_x(3)  # right kidney vs left kidney
    assert world_x(6) > world_x(1)  # liver (right) vs spleen (left)
    assert world_x(12) > world_x(13)  # right vs left adrenal gland


@pytest.mark.parametrize("sub", ["", "RawData"])
def test_nnunet_test_folder_and_any_root_level(catalog, tmp_path, sub):
    root = make_btcv(tmp_path / "btcv", n_cases=2, n_test=1, test_folder="Test")
    found = discover(catalog.get("btcv"), root / sub if sub else root)
    assert [(c.case_id, c.official_split) for c in found.cases] == [
        ("img0061", "test"), ("img0001", "train"), ("img0002", "train")]
    assert found.cases[0].images[0].parent.parent.name == "Test"


def test_doubled_rawdata_folder_from_the_zip(catalog, tmp_path):
    root = make_btcv(tmp_path / "unzipped" / "RawData", n_cases=1, n_test=0)
    assert (root / "RawData" / "Training" / "img" / "img0001.nii.gz").is_file()
    assert [c.case_id for c in discover(catalog.get("btcv"), tmp_path / "unzipped").cases] == ["img0001"]


def test_missing_orphan_and_unofficial_labels_are_reported(catalog, tmp_path):
    root = make_btcv(tmp_path / "btcv", n_cases=3, n_test=1, missing_label=(2,))
    raw = root / "RawData"
    (raw / "Training" / "img" / "img0003.nii.gz").unlink()
    (raw / "Testing" / "label").mkdir()
    shutil.copy(raw / "Training" / "label" / "label0001.nii.gz", raw / "Testing" / "label" / "label0061.nii.gz")
    found = discover(catalog.get("btcv"), root)
    assert [c.case_id for c in found.cases] == ["img0061", "img0001"]
    assert found.cases[0].label is None
    reasons = {s.path.name: s for s in found.skipped}
    assert "label/label0002.nii.gz is missing" in reasons["img0002.nii.gz"].reason
    assert reasons["img0002.nii.gz"].case_id == "img0002" and reasons["img0002.nii.gz"].hint
    assert "no img/img0003.nii.gz pairs" in reasons["label0003.nii.gz"].reason
    assert "not part of the official release" in reasons["label0061.nii.gz"].reason


def test_hidden_and_foreign_files_are_skipped_with_reason(catalog, btcv_root):
    img = btcv_root / "RawData" / "Training" / "img"
    (img / "._img0001.nii.gz").write_bytes(b"\0\5\26\7")
    (img / "img1.nii.gz").write_bytes(b"\0")
    (btcv_root / "RawData.zip").write_bytes(b"PK")
    found = discover(catalog.get("btcv"), btcv_root)
    assert len(found.cases) == 5
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "hidden" in reasons["._img0001.nii.gz"]
    assert "not a BTCV file" in reasons["img1.nii.gz"] and "not a BTCV file" in reasons["RawData.zip"]


def test_unknown_label_value_is_a_label_error_naming_the_file(catalog, btcv_root):
    seg = btcv_root / "RawData" / "Training" / "label" / "label0003.nii.gz"
    img = nib.load(seg)
    data = np.asarray(img.dataobj).copy()
    data[1, 1, 1] = 14
    nib.save(nib.Nifti1Image(data, img.affine), seg)
    check = check_plugin(catalog.get("btcv"), btcv_root, allow_errors=True)
    assert len(check.records) == 4
    error = check.errors[0]
    assert error.kind == "label" and error.case == "img0003" and error.dataset == "btcv"
    assert error.file.endswith("label0003.nii.gz") and "[14]" in error.message


def test_root_without_btcv_images_is_a_clear_error(catalog, tmp_path):
    (tmp_path / "RawData" / "Training").mkdir(parents=True)
    with pytest.raises(DiscoveryError, match="no Training/img") as info:
        list(catalog.get("btcv").discover(tmp_path))
    assert "RawData.zip" in info.value.hint


def test_descriptor_and_fabricate(catalog, tmp_path):
    plugin = catalog.get("btcv")
    desc = plugin.descriptor
    assert list(desc.values.values())[1:] == [
        "spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver", "stomach",
        "aorta", "inferior vena cava", "portal vein and splenic vein", "pancreas",
        "right adrenal gland", "left adrenal gland"]  # nnU-Net Task017 dataset.json
    assert desc.licence and desc.citation and desc.homepage and desc.download and desc.ct_window
    assert plugin.can_fabricate and not plugin.demo
    assert len(discover(plugin, plugin.fabricate(tmp_path / "f", n_cases=2)).cases) == 3


def test_harmonize_run_btcv(btcv_root, tmp_path):
    from typer.testing import CliRunner

    from harmonize.cli.app import app
    from harmonize.manifest.build import read_manifest

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-d", "btcv", "-r", str(btcv_root), "-o", str(out),
                                      "-w", "1", "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = {r.case_id: r for r in read_manifest(out / "btcv.jsonl")}
    assert len(records) == 5 and records["img0062"].mask is None
    train = records["img0001"]
    assert train.orientation == "RAS" and train.extra["original"]["orientation"] == "LPS"
    mask = np.asarray(nib.load(out / train.mask).dataobj)
    centre_x = {v: np.argwhere(mask == v)[:, 0].mean() for v in (2, 3)}
    assert centre_x[2] > centre_x[3]  # RAS: a larger x index is further to the patient's right
