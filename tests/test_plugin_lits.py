"""LiTS plugin on fabricated copies of the released layout (uncompressed .nii, two batch folders)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.lits import make_lits

from harmonize.errors import DiscoveryError
from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin


@pytest.fixture
def lits_root(tmp_path: Path) -> Path:
    return make_lits(tmp_path / "lits", n_cases=4, n_test=2, seed=2)


def test_two_batch_folders_train_and_test_volumes(catalog, lits_root):
    assert sorted(p.name for p in (lits_root / "Training Batch 1").iterdir()) == [
        "segmentation-26.nii", "segmentation-27.nii", "volume-26.nii", "volume-27.nii"]
    assert (lits_root / "Training Batch 2" / "volume-28.nii").is_file()
    check = check_plugin(catalog.get("lits"), lits_root)
    by_id = {r.case_id: r for r in check.records}
    assert sorted(by_id) == ["test-volume-0", "test-volume-1", "volume-26", "volume-27",
                             "volume-28", "volume-29"]
    train = by_id["volume-28"]
    assert train.patient_id == "volume-28"
    assert train.labels == {"liver": [1, 2], "liver tumor": [2]}
    assert train.image.endswith("Training Batch 2/volume-28.nii")
    assert train.mask.endswith("Training Batch 2/segmentation-28.nii")
    assert train.official_split is None
    test = by_id["test-volume-1"]
    assert test.mask is None and test.annotated == [] and test.labels == {}
    assert test.official_split == test.split == "test"
    # same number, different patient: train volume-0 and test-volume-0 never share an id
    assert len({r.patient_id for r in check.records}) == len(check.records)
    # flipped storage is kept as released; the engine reorients
    assert {r.orientation for r in check.records} >= {"LPS", "LAS", "LPI"}
    assert check.discovery.skipped == []


def test_merged_folder_below_zip_paths(catalog, tmp_path):
    root = tmp_path / "lits"
    make_lits(root / "media" / "nas" / "LITS", n_cases=3, first_case=0, layout="merged")
    found = discover(catalog.get("lits"), root)
    assert [c.case_id for c in found.cases] == ["volume-0", "volume-1", "volume-2", "test-volume-0"]
    assert all("LITS-Challenge-Train-Data" in str(c.images[0]) for c in found.cases[:3])
    assert found.skipped == []


def test_gzipped_copy_is_accepted(catalog, lits_root):
    for name in ("volume-27.nii", "segmentation-27.nii"):
        path = lits_root / "Training Batch 1" / name
        nib.save(nib.load(path), str(path) + ".gz")
        path.unlink()
    check = check_plugin(catalog.get("lits"), lits_root)
    record = next(r for r in check.records if r.case_id == "volume-27")
    assert record.mask.endswith("segmentation-27.nii.gz")


def test_missing_and_orphan_files_are_reported(catalog, tmp_path):
    root = make_lits(tmp_path / "lits", n_cases=4, missing_label=(27,))
    (root / "Training Batch 2" / "volume-29.nii").unlink()
    found = discover(catalog.get("lits"), root)
    assert [c.case_id for c in found.cases] == ["volume-26", "volume-28", "test-volume-0"]
    reasons = {s.path.name: s for s in found.skipped}
    assert "segmentation-27.nii is missing" in reasons["volume-27.nii"].reason
    assert reasons["volume-27.nii"].case_id == "volume-27" and reasons["volume-27.nii"].hint
    assert "no volume-29.nii pairs" in reasons["segmentation-29.nii"].reason


def test_two_copies_of_a_case_are_reported_not_merged(catalog, lits_root):
    copy = lits_root / "backup" / "Training Batch 1"
    shutil.copytree(lits_root / "Training Batch 1", copy)
    found = discover(catalog.get("lits"), lits_root)
    assert [c.case_id for c in found.cases].count("volume-26") == 1
    assert any("duplicate case id 'volume-26'" in s.reason for s in found.skipped)


def test_hidden_and_foreign_files_are_skipped_with_reason(catalog, lits_root):
    (lits_root / "Training Batch 1" / "._volume-26.nii").write_bytes(b"\0\5\26\7")
    (lits_root / ".DS_Store").write_bytes(b"\0")
    (lits_root / ".cache").mkdir()
    (lits_root / ".cache" / "volume-99.nii").write_bytes(b"\0")
    (lits_root / "Training_Batch1.zip").write_bytes(b"PK")
    found = discover(catalog.get("lits"), lits_root)
    assert len(found.cases) == 6
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "hidden" in reasons["._volume-26.nii"] and "hidden" in reasons[".DS_Store"]
    assert "hidden folder" in reasons[".cache"] and "volume-99.nii" not in reasons
    assert "not a LiTS file" in reasons["Training_Batch1.zip"]


def test_unknown_label_value_is_a_label_error_naming_the_file(catalog, lits_root):
    seg = lits_root / "Training Batch 2" / "segmentation-28.nii"
    img = nib.load(seg)
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(data, img.affine), seg)
    check = check_plugin(catalog.get("lits"), lits_root, allow_errors=True)
    assert "volume-28" not in {r.case_id for r in check.records} and len(check.records) == 5
    error = check.errors[0]
    assert error.kind == "label" and error.case == "volume-28" and error.dataset == "lits"
    assert error.file.endswith("segmentation-28.nii") and "[3]" in error.message


def test_root_without_lits_files_is_a_clear_error(catalog, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DiscoveryError, match="no volume-N.nii") as info:
        list(catalog.get("lits").discover(tmp_path / "empty"))
    assert info.value.hint and "Training Batch 1" in info.value.hint


def test_descriptor_and_fabricate(catalog, tmp_path):
    plugin = catalog.get("lits")
    desc = plugin.descriptor
    assert desc.classes == {"liver": (1, 2), "liver tumor": (2,)}
    assert {o["dataset"] for o in desc.overlaps} >= {"msd-liver", "ctspine1k"}
    assert desc.licence and desc.citation and desc.homepage and desc.download and desc.ct_window
    assert plugin.can_fabricate and not plugin.demo
    assert len(discover(plugin, plugin.fabricate(tmp_path / "f", n_cases=2)).cases) == 3


def test_harmonize_run_lits(lits_root, tmp_path):
    from typer.testing import CliRunner

    from harmonize.cli.app import app
    from harmonize.manifest.build import read_manifest

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-d", "lits", "-r", str(lits_root), "-o", str(out),
                                      "-w", "1", "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = {r.case_id: r for r in read_manifest(out / "lits.jsonl")}
    assert len(records) == 6 and {r.orientation for r in records.values()} == {"RAS"}
    assert records["test-volume-0"].mask is None and records["test-volume-0"].split == "test"
    flipped = records["volume-28"]  # stored L-A-S in the release
    assert flipped.extra["original"]["orientation"] == "LAS"
    mask = np.asarray(nib.load(out / flipped.mask).dataobj)
    assert sorted(int(v) for v in np.unique(mask)) == [0, 1, 2]
    assert flipped.extra["intensity"]["clip"] == [-175.0, 250.0]  # the descriptor's window
