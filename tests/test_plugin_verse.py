"""VerSe'19 / VerSe'20 plugins on fabricated copies of the restructured VerSe-complete release."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.verse import make_verse, scans_of

from harmonize.labels.vocabulary import load_vocabulary
from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin, write_nifti

LEVEL_NAMES = {**{i: f"C{i}" for i in range(1, 8)}, **{i + 7: f"T{i}" for i in range(1, 13)},
               **{i + 19: f"L{i}" for i in range(1, 7)}, 28: "T13"}


@pytest.fixture(scope="module")
def verse_root(tmp_path_factory) -> Path:
    """Both releases unzipped side by side, as users keep them."""
    root = tmp_path_factory.mktemp("verse") / "VerSe"
    make_verse(root, release="verse19", seed=1)
    make_verse(root, release="verse20", seed=2)
    return root


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("release", ["verse19", "verse20"])
def test_cases_patients_splits_orientations_and_centroids(catalog, verse_root, release):
    check = check_plugin(catalog.get(release), verse_root)
    records = {r.case_id: r for r in check.records}
    scans = {s.prefix: s for s in scans_of(release)}
    assert sorted(records) == sorted(scans)
    folder_split = {"training": "train", "validation": "val", "test": "test"}
    for prefix, scan in scans.items():
        record = records[prefix]
        assert record.patient_id == scan.subject
        assert record.official_split == next(v for k, v in folder_split.items()
                                             if scan.folder.endswith(k))
        assert record.orientation == scan.axcodes
        assert record.metadata["release_folder"] == scan.folder
        centroids = record.metadata["centroids"]
        assert centroids["direction"] == scan.axcodes
        assert centroids["file"] == f"derivatives/{scan.subject}/{prefix}_seg-subreg_ctd.json"
        # one centroid per labelled vertebra; the NaN entry of some files is dropped
        assert [p["label"] for p in centroids["points"]] == sorted(scan.levels)
        assert [p["vertebra"] for p in centroids["points"]] == [
            LEVEL_NAMES[v] for v in sorted(scan.levels)]
        if record.official_split == "test":
            assert record.split == "test"
    # the other release's folders are reported, nothing else is skipped
    assert {s.reason for s in check.discovery.skipped} == {
        f"a {'verse20' if release == 'verse19' else 'verse19'} release folder, not {release}"}


def test_subject_with_two_scans_is_one_patient_with_two_cases(catalog, verse_root):
    records = check_plugin(catalog.get("verse19"), verse_root).records
    split_scans = [r for r in records if r.patient_id == "sub-verse408"]
    assert sorted(r.case_id for r in split_scans) == [
        "sub-verse408_split-verse223", "sub-verse408_split-verse224"]
    assert len({r.split for r in split_scans}) == 1  # one patient, one split
    assert {r.metadata["entities"]["split"] for r in split_scans} == {"verse223", "verse224"}
    assert {r.metadata["verse_id"] for r in split_scans} == {"verse223", "verse224"}


def test_verse20_marks_scans_already_in_verse19(catalog, verse_root):
    records = {r.case_id: r for r in check_plugin(catalog.get("verse20"), verse_root).records}
    assert records["sub-verse010"].metadata["also_in"] == ["verse19"]
    assert records["sub-verse412_split-verse230"].metadata["also_in"] == ["verse19"]
    for case_id in ("sub-verse500_dir-ax", "sub-gl003_dir-ax", "sub-verse563_dir-iso"):
        assert "also_in" not in records[case_id].metadata
    assert records["sub-verse500_dir-ax"].metadata["entities"] == {"dir": "ax"}
    overlaps = {o["dataset"] for o in catalog.get("verse20").descriptor.overlaps}
    assert overlaps == {"verse19", "ctspine1k"}


def test_labels_share_the_vertebra_vocabulary_with_totalsegmentator(catalog, verse_root):
    vocab = load_vocabulary()
    verse = catalog.get("verse19").descriptor
    assert sorted(verse.values) == [0, *range(1, 26), 28]
    for value, level in LEVEL_NAMES.items():
        assert verse.classes[f"vertebra {level}"] == (value,)
        assert vocab.resolve(f"vertebra {level}") == f"vertebra {level}"
    assert 28 in verse.classes["thoracic vertebra"] and 25 in verse.classes["lumbar vertebra"]
    assert verse.classes["vertebra"] == (*range(1, 26), 28)
    ts = catalog.get("totalsegmentator").descriptor
    ts_levels = {vocab.resolve(n) for n in ts.values.values() if n.startswith("vertebrae_")}
    assert ts_levels - {"vertebra S1"} <= set(verse.classes)
    record = next(r for r in check_plugin(catalog.get("verse19"), verse_root).records
                  if r.case_id == "sub-verse012")
    assert record.labels["vertebra T13"] == [28]


def test_verse_masks_are_float_in_odd_orientations_and_still_read(catalog, verse_root):
    mask = verse_root / "dataset-verse19training/derivatives/sub-verse004/sub-verse004_seg-vert_msk.nii.gz"
    img = nib.load(mask)
    assert img.get_data_dtype() == np.float64 and int(img.header["qform_code"]) == 0
    assert nib.aff2axcodes(img.affine) == ("P", "I", "R")
    assert not np.allclose(img.affine[:3, :3], np.diag(np.diag(img.affine[:3, :3])))  # oblique
    record = next(r for r in check_plugin(catalog.get("verse19"), verse_root).records
                  if r.case_id == "sub-verse004")
    # full precision: the column norms of the file's oblique float32 affine (1.0000000268...)
    assert record.spacing == pytest.approx([1.0, 1.0, 2.0], rel=1e-7, abs=0)


def test_root_may_be_one_release_folder_or_a_wrapped_one(catalog, verse_root, tmp_path):
    plugin = catalog.get("verse19")
    result = discover(plugin, verse_root / "dataset-verse19validation")
    assert [(c.case_id, c.official_split) for c in result.cases] == [("sub-verse012", "val")]
    assert result.skipped == []
    wrapped = tmp_path / "v" / "dataset-verse19test"
    shutil.copytree(verse_root / "dataset-verse19test", wrapped / "dataset-verse19test")
    result = discover(plugin, wrapped.parent)
    assert [(c.case_id, c.official_split) for c in result.cases] == [("sub-verse150", "test")]


def test_incomplete_and_foreign_files_are_reported(catalog, verse_root, tmp_path):
    root = copy_tree(verse_root / "dataset-verse19training", tmp_path / "dataset-verse19training")
    der, raw = root / "derivatives", root / "rawdata"
    (der / "sub-verse408/sub-verse408_split-verse224_seg-vert_msk.nii.gz").unlink()
    shutil.copy(der / "sub-verse004/sub-verse004_seg-vert_msk.nii.gz",
                der / "sub-verse004/sub-verse004_seg-subreg_msk.nii.gz")
    (der / "sub-verse999").mkdir()
    shutil.copy(der / "sub-verse004/sub-verse004_seg-vert_msk.nii.gz",
                der / "sub-verse999/sub-verse999_seg-vert_msk.nii.gz")
    (raw / "sub-verse004/notes.txt").write_text("x")
    shutil.copy(raw / "sub-verse004/sub-verse004_ct.nii.gz", raw / "sub-verse004/verse004_ct.nii.gz")
    (raw / "README.md").write_text("x")
    (der / "sub-verse004/sub-verse004_seg-subreg_ctd.json").write_text("[{not json")
    result = discover(catalog.get("verse19"), root)
    assert sorted(c.case_id for c in result.cases) == ["sub-verse004", "sub-verse408_split-verse223"]
    assert "centroids" not in next(c for c in result.cases if c.case_id == "sub-verse004").metadata
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert "no mask" in reasons["sub-verse408_split-verse224_ct.nii.gz"]
    assert "not a vertebra mask" in reasons["sub-verse004_seg-subreg_msk.nii.gz"]
    assert "mask without its CT" in reasons["sub-verse999_seg-vert_msk.nii.gz"]
    assert "not a CT scan" in reasons["notes.txt"]
    assert "does not start with its subject folder" in reasons["verse004_ct.nii.gz"]
    assert "not a subject folder" in reasons["README.md"]
    assert "unreadable centroid file" in reasons["sub-verse004_seg-subreg_ctd.json"]


def test_undeclared_label_value_is_an_error_record(catalog, verse_root, tmp_path):
    root = copy_tree(verse_root / "dataset-verse19test", tmp_path / "dataset-verse19test")
    mask = root / "derivatives/sub-verse150/sub-verse150_seg-vert_msk.nii.gz"
    img = nib.load(mask)
    data = np.asanyarray(img.dataobj).copy()
    data[0, 0, 0] = 26  # sacrum: "not labeled in this dataset"
    write_nifti(mask, data, img.affine)
    check = check_plugin(catalog.get("verse19"), root, allow_errors=True)
    assert check.records == []
    assert check.errors[0].kind == "label" and "[26]" in check.errors[0].message


def test_challenge_era_layout_gets_a_pointed_hint(catalog, tmp_path):
    old = tmp_path / "verse2020_miccai"
    write_nifti(old / "verse506_CT-iso.nii.gz", np.zeros((2, 2, 2), np.int16), np.eye(4))
    result = discover(catalog.get("verse20"), old)
    assert result.cases == [] and "MICCAI-challenge files" in result.errors[0].message
    assert "VerSe-complete" in result.errors[0].hint


def test_harmonize_run_reorients_every_scan_to_ras(verse_root, tmp_path):
    from typer.testing import CliRunner

    from harmonize.cli.app import app

    root = copy_tree(verse_root / "dataset-verse19training", tmp_path / "dataset-verse19training")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-d", "verse19", "-r", str(root), "-o", str(out),
                                      "--workers", "1", "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = {r["case_id"]: r for r in map(json.loads, (out / "verse19.jsonl").open())}
    scans = {s.prefix: s for s in scans_of("verse19") if s.folder == root.name}
    assert sorted(records) == sorted(scans)
    for case_id, scan in scans.items():
        mask = nib.load(out / "verse19" / case_id / "mask.nii.gz")
        image = nib.load(out / "verse19" / case_id / "image.nii.gz")
        assert nib.aff2axcodes(image.affine) == ("R", "A", "S") == nib.aff2axcodes(mask.affine)
        data = np.asanyarray(mask.dataobj)
        assert set(np.unique(data).tolist()) == {0, *scan.levels}
        # after RAS reorientation the first listed (most superior) vertebra sits highest in z
        top, bottom = scan.levels[0], scan.levels[-1]
        assert np.argwhere(data == top)[:, 2].mean() > np.argwhere(data == bottom)[:, 2].mean()
