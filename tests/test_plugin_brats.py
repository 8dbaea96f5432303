"""BraTS 2021 and BraTS 2023 GLI: four channels in a fixed order, regions as merges, strict labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.brats import make_brats, make_brats2021, make_brats2023_gli

from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin

CHANNELS = ["T1", "T1ce", "T2", "FLAIR"]
#: the canonical names the records carry (registry/channels.yaml), in the files' order
CANONICAL = ["T1", "T1 contrast-enhanced", "T2", "FLAIR"]
TRAINING_2021 = "RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021"
TRAINING_2023 = "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData"


@pytest.fixture
def brats2021(catalog):
    return catalog.get("brats2021")


@pytest.fixture
def brats2023(catalog):
    return catalog.get("brats2023-gli")


def by_case(check):
    return {r.case_id: r for r in check.records}


def test_brats2021_discovery_channels_and_splits(brats2021, tmp_path):
    root = make_brats2021(tmp_path, n_cases=3, n_validation=2)
    check = check_plugin(brats2021, root)
    records = by_case(check)
    assert sorted(records) == [
        "BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002", "BraTS2021_00003", "BraTS2021_00004",
    ]
    train = records["BraTS2021_00002"]
    assert train.channels == CANONICAL and train.source["channels"] == CHANNELS
    assert [Path(p).name for p in train.image] == [
        "BraTS2021_00002_t1.nii.gz", "BraTS2021_00002_t1ce.nii.gz",
        "BraTS2021_00002_t2.nii.gz", "BraTS2021_00002_flair.nii.gz",
    ]
    assert Path(train.mask).name == "BraTS2021_00002_seg.nii.gz"
    assert train.official_split == "train" and train.patient_id == "BraTS2021_00002"
    assert train.modality == "MR" and train.orientation == "LPS" and train.spacing == [1.0, 1.0, 1.0]
    assert train.metadata["sequences"] == {"T1": "t1", "T1ce": "t1ce", "T2": "t2", "FLAIR": "flair"}
    # the validation folder ships without _seg: unlabelled, official val, kept as val
    for case in ("BraTS2021_00001", "BraTS2021_00003"):
        assert records[case].mask is None and records[case].labels == {}
        assert records[case].official_split == "val" and records[case].split == "val"
    # BraTS21-17_Mapping.csv next to the training folder adds earlier ids and the site
    assert records["BraTS2021_00000"].metadata["release_mapping"] == {
        "BraTS2020": "BraTS20_Training_001", "Site No (represents the originating institution)": "2",
    }
    assert check.discovery.skipped == []
    assert brats2021.descriptor.channels == tuple(CHANNELS)
    assert brats2021.demo is True


def test_regions_are_merges_and_match_between_releases(brats2021, brats2023, tmp_path):
    r21 = by_case(check_plugin(brats2021, make_brats2021(tmp_path / "a", n_cases=1, seed=5)))
    r23 = by_case(check_plugin(brats2023, make_brats2023_gli(tmp_path / "b", n_cases=1, seed=5)))
    labels21 = r21["BraTS2021_00000"].labels
    labels23 = r23["BraTS-GLI-00000-000"].labels
    assert labels21 == {
        "brain tumor": [1, 2, 4], "brain tumor core": [1, 4], "enhancing brain tumor": [4],
        "necrotic brain tumor core": [1], "peritumoral edema": [2],
    }
    assert labels23["enhancing brain tumor"] == [3] and labels23["brain tumor"] == [1, 2, 3]
    # same seed = same anatomy: every region selects the same voxels in both releases
    seg21 = np.asarray(nib.load(tmp_path / "a" / TRAINING_2021 / "BraTS2021_00000" /
                                "BraTS2021_00000_seg.nii.gz").dataobj)
    seg23 = np.asarray(nib.load(tmp_path / "b" / TRAINING_2023 / "BraTS-GLI-00000-000" /
                                "BraTS-GLI-00000-000-seg.nii.gz").dataobj)
    for name in labels21:
        region21 = np.isin(seg21, labels21[name])
        assert region21.any(), name
        assert np.array_equal(region21, np.isin(seg23, labels23[name])), name
    whole, core = np.isin(seg21, labels21["brain tumor"]), np.isin(seg21, labels21["brain tumor core"])
    assert core.sum() < whole.sum() and not (core & ~whole).any()


def test_brats2023_patient_and_timepoint(brats2023, tmp_path):
    check = check_plugin(brats2023, make_brats2023_gli(tmp_path, n_cases=2))
    records = by_case(check)
    assert sorted(records) == [
        "BraTS-GLI-00000-000", "BraTS-GLI-00000-001", "BraTS-GLI-00001-000", "BraTS-GLI-00002-000",
    ]
    first, second = records["BraTS-GLI-00000-000"], records["BraTS-GLI-00000-001"]
    assert first.patient_id == second.patient_id == "BraTS-GLI-00000"
    assert (first.metadata["timepoint"], second.metadata["timepoint"]) == ("000", "001")
    assert first.split == second.split  # one patient, one split
    assert [Path(p).name.rsplit("-", 1)[1] for p in first.image] == [
        "t1n.nii.gz", "t1c.nii.gz", "t2w.nii.gz", "t2f.nii.gz",
    ]
    assert first.channels == CANONICAL and brats2023.descriptor.channels == tuple(CHANNELS)
    assert records["BraTS-GLI-00001-000"].official_split == "val"
    assert records["BraTS-GLI-00001-000"].mask is None
    assert brats2023.demo is False


@pytest.mark.parametrize(("dataset", "value", "seg"), [
    ("brats2021", 3, "BraTS2021_00000_seg.nii.gz"),
    ("brats2023-gli", 4, "BraTS-GLI-00000-000-seg.nii.gz"),
])
def test_label_value_outside_the_release_is_a_label_error(catalog, tmp_path, dataset, value, seg):
    plugin = catalog.get(dataset)
    root = make_brats(tmp_path, release=dataset, n_cases=2, bad_label=(0, value))
    check = check_plugin(plugin, root, allow_errors=True)
    assert len(check.errors) == 1
    error = check.errors[0]
    assert error.kind == "label" and error.dataset == dataset
    assert error.case == seg.removesuffix("-seg.nii.gz").removesuffix("_seg.nii.gz")
    assert Path(error.file).name == seg
    assert f"[{value}]" in error.message and "not declared" in error.message
    # the other cases still go through (2021: 1 train + 1 val; 2023: + the -001 time point)
    assert len(check.records) == (2 if dataset == "brats2021" else 3)


def test_incomplete_cases_are_skipped_with_reasons(brats2021, tmp_path):
    root = make_brats2021(tmp_path, n_cases=3, missing_label=(1,), missing_channel=(2,))
    training = root / TRAINING_2021
    (training / "._BraTS2021_00000").write_bytes(b"\0")  # macOS AppleDouble
    (training / "notes.txt").write_text("downloaded 2021-07-16")
    found = discover(brats2021, root)
    assert sorted(c.case_id for c in found.cases) == ["BraTS2021_00000", "BraTS2021_00001"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "BraTS2021_00002_seg.nii.gz is missing from a training case" in reasons["BraTS2021_00002"]
    assert "BraTS2021_00004_flair.nii.gz" in reasons["BraTS2021_00004"]
    assert "AppleDouble" in reasons["._BraTS2021_00000"]
    assert "not a case folder" in reasons["notes.txt"]
    assert found.errors == []


def test_root_may_be_the_training_folder_or_a_parent(brats2021, tmp_path):
    root = make_brats2021(tmp_path / "download" / "BraTS2021", n_cases=2)
    direct = discover(brats2021, root / TRAINING_2021)
    assert sorted(c.case_id for c in direct.cases) == ["BraTS2021_00000", "BraTS2021_00002"]
    nested = discover(brats2021, tmp_path / "download")  # two levels above the case folders
    assert len(nested.cases) == 3 and nested.errors == []


def test_wrong_release_or_empty_root_is_a_clear_error(brats2021, brats2023, tmp_path):
    root = make_brats2023_gli(tmp_path / "gli", n_cases=1, n_validation=0)
    found = discover(brats2021, root)
    assert found.cases == [] and len(found.errors) == 1
    assert found.errors[0].kind == "discovery"
    assert "--dataset brats2023-gli" in found.errors[0].hint
    (tmp_path / "empty").mkdir()
    empty = discover(brats2023, tmp_path / "empty")
    assert "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData" in empty.errors[0].hint


def test_fabricate_hook_writes_the_release(brats2021, tmp_path):
    root = brats2021.fabricate(tmp_path, n_cases=2, seed=3)
    assert (root / TRAINING_2021 / "BraTS2021_00002" / "BraTS2021_00002_t1ce.nii.gz").is_file()
    image = nib.load(root / TRAINING_2021 / "BraTS2021_00000" / "BraTS2021_00000_t1.nii.gz")
    assert image.get_data_dtype() == np.int16 and "".join(nib.aff2axcodes(image.affine)) == "LPS"
    shutil.rmtree(root / TRAINING_2021 / "BraTS2021_00000")
    assert len(check_plugin(brats2021, root).records) == 2


def test_harmonize_run_keeps_four_channels(tmp_path):
    import json

    from typer.testing import CliRunner

    from harmonize.cli.app import app
    from harmonize.manifest.build import read_manifest

    root = make_brats2021(tmp_path / "brats", n_cases=2, n_validation=1)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-d", "brats2021", "-r", str(root), "-o", str(out),
                                      "-w", "1", "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True
    records = {r.case_id: r for r in read_manifest(out / "brats2021.jsonl")}
    assert sorted(records) == ["BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002"]
    for record in records.values():
        assert record.channels == CANONICAL and record.orientation == "RAS"
        image = nib.load(out / record.image)
        assert image.shape[:3] == (24, 24, 16) and image.shape[-1] == 4
    train = records["BraTS2021_00000"]
    mask = np.asarray(nib.load(out / train.mask).dataobj)
    assert set(np.unique(mask).tolist()) == {0, 1, 2, 4}
    assert records["BraTS2021_00001"].mask is None and records["BraTS2021_00001"].split == "val"
