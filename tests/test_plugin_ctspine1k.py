"""CTSpine1K plugin on fabricated copies of the Hugging Face mirror and the original download."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.ctspine1k import identify, parse_data_split, transitional_cases
from harmonize.plugins.fabricators.ctspine1k import make_ctspine1k
from harmonize.plugins.fabricators.lits import make_lits

from harmonize.errors import DiscoveryError
from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin

LEVELS = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 7)]


@pytest.fixture
def hf_root(tmp_path: Path) -> Path:
    return make_ctspine1k(tmp_path / "ctspine1k", n_cases=8, seed=5)


def label_values(path: Path) -> set[int]:
    return {int(v) for v in np.unique(np.asarray(nib.load(path).dataobj))} - {0}


def test_huggingface_layout_sources_splits_and_patients(catalog, hf_root):
    check = check_plugin(catalog.get("ctspine1k"), hf_root)
    by_id = {r.case_id: r for r in check.records}
    assert len(by_id) == 8 and check.discovery.skipped == []
    expected = {
        "1.3.6.1.4.1.9328.50.4.0004": ("CT COLONOGRAPHY", "1.3.6.1.4.1.9328.50.4.0004", "train"),
        "CTC-1018399231": ("CT COLONOGRAPHY", "CTC-1018399231", "val"),
        "HN_P029": ("HNSCC-3DCT-RT", "HN_P029", "test"),
        "liver_110": ("MSD Task03_Liver", "liver_110", "val"),
        "volume-covid19-A-0202_0_ct": ("CT Images in COVID-19", "volume-covid19-A-0202", "train"),
        "volume-covid19-A-0382_ct": ("CT Images in COVID-19", "volume-covid19-A-0382", "val"),
    }
    for case_id, (collection, patient, split) in expected.items():
        record = by_id[case_id]
        assert record.metadata["source_collection"] == collection
        assert record.patient_id == record.metadata["source_patient_id"] == patient
        assert record.official_split == split
    assert by_id["HN_P029"].split == "test" and by_id["liver_110"].split == "val"
    assert by_id["HN_P029"].metadata["data_split_section"] == "test_private"
    assert by_id["liver_110"].metadata["source_folder"] == "MSD-T10"
    assert by_id["liver_110"].mask.endswith("raw_data/labels/MSD-T10/liver_110_seg.nii.gz")
    labels = by_id["HN_P029"].labels
    assert [labels[f"vertebra {lv}"] for lv in LEVELS] == [[v] for v in range(1, 26)]
    assert labels["vertebra"] == list(range(1, 26))
    assert labels["cervical vertebra"] == list(range(1, 8))
    assert labels["thoracic vertebra"] == list(range(8, 20))
    assert labels["lumbar vertebra"] == list(range(20, 26))


def test_transitional_vertebra_cases(catalog, hf_root):
    found = {c.case_id: c for c in discover(catalog.get("ctspine1k"), hf_root).cases}
    lumbarized = found["1.3.6.1.4.1.9328.50.4.0004"]
    assert lumbarized.metadata["transitional_vertebra"] == "sacral lumbarization"
    assert lumbarized.metadata["lumbarization"] is True
    assert 25 in label_values(lumbarized.label)  # the published list and the L6 label agree
    sacralized = found["liver_83"]
    assert sacralized.metadata == {**sacralized.metadata, "transitional_vertebra": "lumbar sacralization",
                                   "sacralization": True}
    assert 25 not in label_values(sacralized.label)
    assert "lumbarization" not in found["HN_P001"].metadata
    assert "transitional_vertebra" not in found["HN_P001"].metadata
    lists = transitional_cases()
    assert sum(kind == "sacral lumbarization" for kind in lists.values()) == 25
    assert sum(kind == "lumbar sacralization" for kind in lists.values()) == 14
    assert lists["liver_106"] == "sacral lumbarization" and lists["verse100"] == "lumbar sacralization"


def test_readme_spelling_rawdata_is_accepted(catalog, tmp_path):
    root = make_ctspine1k(tmp_path / "c", n_cases=2, raw_folder="rawdata")
    assert len(check_plugin(catalog.get("ctspine1k"), root).records) == 2


def test_original_download_layout(catalog, tmp_path):
    root = make_ctspine1k(tmp_path / "CTSpine1K", n_cases=6, layout="original")
    assert (root / "label" / "conlon").is_dir() and (root / "data" / "colon").is_dir()
    assert b"\r\n\r\ntest_public:\r\n" in (root / "data_split.txt").read_bytes()
    check = check_plugin(catalog.get("ctspine1k"), root)
    by_id = {r.case_id: r for r in check.records}
    assert len(by_id) == 6
    assert by_id["CTC-1018399231"].mask.endswith("label/conlon/CTC-1018399231_seg.nii.gz")
    assert by_id["liver_83"].mask.endswith("label/Liver/liver_83_seg.nii.gz")
    assert by_id["liver_83"].metadata["source_folder"] == "liver"
    assert by_id["HN_P029"].official_split == "test"
    reasons = {s.path.name: s.reason for s in check.discovery.skipped}
    assert set(reasons) == {"Verse", "metadata_colonog.xlsx"}
    assert "VerSe re-annotations" in reasons["Verse"]
    assert "not a NIfTI volume" in reasons["metadata_colonog.xlsx"]


def test_data_split_parsing():
    text = "trainset:\r\nliver_0.nii.gz\r\nHN_P001.nii.gz\r\n\r\ntest_public:\r\n\r\nCTC-1.nii.gz\r\n\r\n" \
           "test_private:\r\nvolume-covid19-A-0319_ct.nii.gzvolume-covid19-A-0319_ct.nii.gz\r\n"
    assert parse_data_split(text) == {
        "liver_0": "trainset", "HN_P001": "trainset", "CTC-1": "test_public",
        "volume-covid19-A-0319_ct": "test_private",
    }
    assert parse_data_split("") == {}
    bad = {
        "validation:\nliver_0.nii.gz\n": "unknown section 'validation'",
        "liver_0.nii.gz\ntrainset:\n": "before any section header",
        "trainset:\nliver_0.nii.gz\ntest_private:\nliver_0.nii.gz\n": "listed in both trainset and test_private",
        "trainset:\nliver_0.nii\n": "not a .nii.gz file name",
        "trainset:\nliver_0.nii.gz extra\n": "not a .nii.gz file name",
    }
    for text, message in bad.items():
        with pytest.raises(DiscoveryError, match=message) as info:
            parse_data_split(text, path=Path("data_split.txt"))
        assert info.value.file == "data_split.txt" and info.value.hint


def test_source_patterns():
    assert identify("1.3.6.1.4.1.9328.50.4.0825") == ("CT COLONOGRAPHY", "1.3.6.1.4.1.9328.50.4.0825")
    assert identify("CTC-8337000787") == ("CT COLONOGRAPHY", "CTC-8337000787")
    assert identify("HN_P035") == ("HNSCC-3DCT-RT", "HN_P035")
    assert identify("liver_199") == ("MSD Task03_Liver", "liver_199")
    assert identify("volume-covid19-A-0202_0_ct") == ("CT Images in COVID-19", "volume-covid19-A-0202")
    assert identify("verse506_CT-iso") is None and identify("liver_1_seg") is None


def test_missing_unlisted_and_unknown_files_are_reported(catalog, tmp_path):
    root = make_ctspine1k(tmp_path / "c", n_cases=5, missing_label=("HN_P029",),
                          unlisted=("CTC-1018399231",))
    volumes = root / "raw_data" / "volumes"
    (volumes / "COVID-19" / "volume-covid19-A-0202_0_ct.nii.gz").unlink()
    (volumes / "COLONOG" / "notes.nii.gz").write_bytes(b"\0")
    (volumes / "COLONOG" / "._CTC-1018399231.nii.gz").write_bytes(b"\0")
    (volumes / "COLONOG" / "CTC-1018399231_seg.nii.gz").write_bytes(b"\0")
    found = discover(catalog.get("ctspine1k"), root)
    by_id = {c.case_id: c for c in found.cases}
    assert sorted(by_id) == ["1.3.6.1.4.1.9328.50.4.0004", "CTC-1018399231", "liver_110"]
    assert by_id["CTC-1018399231"].official_split is None
    assert "data_split_section" not in by_id["CTC-1018399231"].metadata
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "no label HN_P029_seg.nii.gz" in reasons["HN_P029.nii.gz"]
    assert "no volume volume-covid19-A-0202_0_ct.nii.gz" in reasons["volume-covid19-A-0202_0_ct_seg.nii.gz"]
    assert "matches no CTSpine1K source" in reasons["notes.nii.gz"]
    assert "hidden" in reasons["._CTC-1018399231.nii.gz"]
    assert "label file in the volume folder" in reasons["CTC-1018399231_seg.nii.gz"]
    listed = [s for s in found.skipped if s.path.name == "data_split.txt"]
    assert [s.reason for s in listed] == [
        "1 CT Images in COVID-19 case(s) listed in data_split.txt are not on disk "
        "(volume-covid19-A-0202_0_ct)",
        "1 HNSCC-3DCT-RT case(s) listed in data_split.txt are not on disk (HN_P029)",
    ]
    assert all(s.hint for s in found.skipped if not s.path.name.startswith("._"))


def test_unknown_label_value_is_a_label_error_naming_the_file(catalog, hf_root):
    seg = hf_root / "raw_data" / "labels" / "HNSCC-3DCT-RT" / "HN_P001_seg.nii.gz"
    img = nib.load(seg)
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 26  # VerSe's sacrum value: not labelled in CTSpine1K
    nib.save(nib.Nifti1Image(data, img.affine), seg)
    check = check_plugin(catalog.get("ctspine1k"), hf_root, allow_errors=True)
    assert len(check.records) == 7
    error = check.errors[0]
    assert error.kind == "label" and error.case == "HN_P001" and error.dataset == "ctspine1k"
    assert error.file.endswith("HN_P001_seg.nii.gz") and "[26]" in error.message


def test_bad_roots_are_clear_errors(catalog, tmp_path):
    plugin = catalog.get("ctspine1k")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DiscoveryError, match="no CTSpine1K volume folder") as info:
        list(plugin.discover(tmp_path / "empty"))
    assert info.value.hint
    (tmp_path / "partial" / "raw_data" / "volumes").mkdir(parents=True)
    with pytest.raises(DiscoveryError, match="no raw_data/labels/"):
        list(plugin.discover(tmp_path / "partial"))


def test_msd_liver_volume_is_the_lits_image(tmp_path):
    """The fabricated liver_110 is LiTS volume-110 voxel for voxel (stored in another orientation)."""
    spine = make_ctspine1k(tmp_path / "c", n_cases=3, seed=7)
    lits = make_lits(tmp_path / "l", n_cases=1, first_case=110, n_test=0, seed=7)
    a = nib.load(lits / "Training Batch 2" / "volume-110.nii")
    b = nib.load(spine / "raw_data" / "volumes" / "MSD-T10" / "liver_110.nii.gz")
    assert nib.aff2axcodes(a.affine) != nib.aff2axcodes(b.affine)
    a, b = nib.as_closest_canonical(a), nib.as_closest_canonical(b)
    assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    assert np.allclose(a.affine, b.affine)


def test_descriptor_demo_and_fabricate(catalog, tmp_path):
    plugin = catalog.get("ctspine1k")
    desc = plugin.descriptor
    assert [desc.values[v] for v in range(1, 26)] == LEVELS
    assert {o["dataset"] for o in desc.overlaps} >= {"msd-liver", "lits"}
    assert desc.licence and desc.citation and desc.homepage and desc.download and desc.ct_window
    assert plugin.demo and plugin.can_fabricate
    root = plugin.fabricate(tmp_path / "f", n_cases=4)
    assert {c.official_split for c in discover(plugin, root).cases} == {"train", "val", "test"}
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 200_000  # demo stays small


def test_harmonize_run_ctspine1k_with_lits_duplicate(catalog, tmp_path):
    """One run over CTSpine1K and LiTS: liver_110 and volume-110 get one fingerprint and one split."""
    from harmonize.engine.pipeline import Target, run
    from harmonize.manifest.build import read_manifest

    spine = make_ctspine1k(tmp_path / "ctspine1k", n_cases=4, seed=3)
    lits = make_lits(tmp_path / "lits", n_cases=1, first_case=110, n_test=0, seed=3)
    out = tmp_path / "out"
    result = run([Target("ctspine1k", spine), Target("lits", lits)], out, workers=1,
                 progress=False, catalog=catalog)
    assert result.ok, [str(e) for e in result.errors]
    records = {r.case_id: r for r in read_manifest(out / "ctspine1k.jsonl")}
    assert len(records) == 4 and {r.orientation for r in records.values()} == {"RAS"}
    lumbar = records["1.3.6.1.4.1.9328.50.4.0004"]
    assert lumbar.metadata["lumbarization"] is True
    assert 25 in np.unique(np.asarray(nib.load(out / lumbar.mask).dataobj))
    assert lumbar.extra["intensity"]["clip"] == [-500.0, 1300.0]
    (twin,) = read_manifest(out / "lits.jsonl")
    assert twin.extra["fingerprint"] == records["liver_110"].extra["fingerprint"]
    assert twin.split == records["liver_110"].split == "val"  # official val wins for the group
