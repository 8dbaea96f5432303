"""AMOS22: CT and MR as two datasets from one folder, official Tr/Va/Ts, dataset.json checked."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.amos import make_amos

from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin

ORGANS = {
    "spleen": [1], "right kidney": [2], "left kidney": [3], "kidney": [2, 3], "gallbladder": [4],
    "esophagus": [5], "liver": [6], "stomach": [7], "aorta": [8], "inferior vena cava": [9],
    "pancreas": [10], "right adrenal gland": [11], "left adrenal gland": [12],
    "adrenal gland": [11, 12], "duodenum": [13], "urinary bladder": [14],
    "prostate or uterus": [15],
}


@pytest.fixture
def amos_root(tmp_path):
    return make_amos(tmp_path / "AMOS22", n_ct=3, n_mr=2, n_val=2, n_test=1, seed=2)


def by_case(check):
    return {r.case_id: r for r in check.records}


def test_ct_and_mr_are_split_by_case_id(catalog, amos_root):
    ct = by_case(check_plugin(catalog.get("amos-ct"), amos_root))
    mr = by_case(check_plugin(catalog.get("amos-mr"), amos_root))
    assert sorted(ct) == ["amos_0001", "amos_0002", "amos_0004", "amos_0005", "amos_0008", "amos_0013"]
    assert sorted(mr) == ["amos_0501", "amos_0507", "amos_0508", "amos_0544", "amos_0545"]
    assert all(int(c.split("_")[1]) <= 500 for c in ct) and all(int(c.split("_")[1]) > 500 for c in mr)
    assert {r.modality for r in ct.values()} == {"CT"} and {r.modality for r in mr.values()} == {"MR"}
    on_disk = {p.name.removesuffix(".nii.gz") for p in amos_root.glob("amos22/images*/*.nii.gz")}
    assert set(ct) | set(mr) == on_disk
    # the other modality is reported once per folder, not dropped silently
    skipped = {s.path.name: s.reason for s in discover(catalog.get("amos-ct"), amos_root).skipped}
    assert "2 scan(s) of the other modality in imagesTr" in skipped["imagesTr"]
    assert "--dataset amos-mr" in skipped["imagesTr"]


def test_official_train_val_test_are_kept(catalog, amos_root):
    ct = by_case(check_plugin(catalog.get("amos-ct"), amos_root))
    assert {c: r.official_split for c, r in ct.items()} == {
        "amos_0001": "train", "amos_0004": "train", "amos_0005": "train",
        "amos_0008": "val", "amos_0013": "val", "amos_0002": "test",
    }
    for case in ("amos_0008", "amos_0013"):
        assert ct[case].split == "val" and ct[case].mask.endswith(f"labelsVa/{case}.nii.gz")
    test = ct["amos_0002"]
    assert test.split == "test" and test.mask is None and test.labels == {}
    assert ct["amos_0001"].patient_id == "amos_0001"


def test_fifteen_organs_mapped_with_merges(catalog, amos_root):
    plugin = catalog.get("amos-mr")
    records = by_case(check_plugin(plugin, amos_root))
    assert records["amos_0507"].labels == ORGANS
    assert plugin.descriptor.values[8] == "arota" and plugin.descriptor.values[9] == "postcava"
    assert catalog.get("amos-ct").descriptor.ct_window == (-160.0, 240.0)
    label = nib.load(amos_root / "amos22" / "labelsTr" / "amos_0507.nii.gz")
    values = set(np.unique(np.asarray(label.dataobj)).tolist())
    assert {2, 3, 15} <= values <= set(plugin.descriptor.values)


def test_dataset_json_labels_are_cross_checked(catalog, tmp_path):
    labels = {str(k): v for k, v in catalog.get("amos-ct").descriptor.values.items()}
    labels["8"] = "aorta"  # a relabelled copy, not the release
    labels["16"] = "kidney tumor"
    root = make_amos(tmp_path, n_ct=1, n_mr=1, labels=labels)
    found = discover(catalog.get("amos-ct"), root)
    assert found.cases == [] and len(found.errors) == 1
    error = found.errors[0]
    assert error.file.endswith("amos22/dataset.json")
    assert "8: 'aorta' (descriptor: 'arota')" in error.message
    assert "16: 'kidney tumor' (descriptor: None)" in error.message


def test_nnunet_v2_style_labels_and_no_dataset_json(catalog, tmp_path):
    labels = {name: int(k) for k, name in catalog.get("amos-mr").descriptor.values.items()}
    root = make_amos(tmp_path / "v2", n_ct=1, n_mr=1, labels=labels)
    assert len(discover(catalog.get("amos-mr"), root).cases) == 3
    bare = make_amos(tmp_path / "bare", n_ct=1, n_mr=1, dataset_json=False, metadata_csv=False)
    found = discover(catalog.get("amos-mr"), bare / "amos22")  # root may be amos22/ itself
    assert len(found.cases) == 3 and found.errors == []
    assert all(c.metadata == {} for c in found.cases)


def test_incomplete_download_is_reported(catalog, tmp_path):
    root = make_amos(tmp_path, n_ct=2, n_mr=1, missing_label=(4,))
    (root / "amos22" / "imagesVa" / "amos_0008.nii.gz").unlink()
    (root / "amos22" / "imagesTr" / "._amos_0001.nii.gz").write_bytes(b"\0")
    found = discover(catalog.get("amos-ct"), root)
    assert sorted(c.case_id for c in found.cases) == ["amos_0001", "amos_0002"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert reasons["amos_0004.nii.gz"] == "no label labelsTr/amos_0004.nii.gz"
    assert reasons["amos_0008.nii.gz"] == "listed in dataset.json (val) but not on disk"
    assert "AppleDouble" in reasons["._amos_0001.nii.gz"]
    (tmp_path / "nothing").mkdir()
    assert discover(catalog.get("amos-ct"), tmp_path / "nothing").errors[0].kind == "discovery"


def test_scan_metadata_and_undeclared_values(catalog, tmp_path):
    root = make_amos(tmp_path, n_ct=2, n_mr=1, n_val=0, n_test=0)
    records = by_case(check_plugin(catalog.get("amos-ct"), root))
    assert records["amos_0001"].metadata["scan"]["Patient's Sex"] == "M"
    assert records["amos_0004"].metadata["scan"]["Patient's Sex"] == "F"
    path = root / "amos22" / "labelsTr" / "amos_0004.nii.gz"
    image = nib.load(path)
    data = np.asarray(image.dataobj).copy()
    data[0, 0, 0] = 16
    nib.save(nib.Nifti1Image(data, image.affine, image.header), path)
    check = check_plugin(catalog.get("amos-ct"), root, allow_errors=True)
    assert [(e.kind, e.case) for e in check.errors] == [("label", "amos_0004")]
    assert check.errors[0].file == str(path) and "[16]" in check.errors[0].message


def test_fabricate_hook(catalog, tmp_path):
    plugin = catalog.get("amos-mr")
    root = plugin.fabricate(tmp_path, n_cases=2)
    assert json.loads((root / "amos22" / "dataset.json").read_text())["labels"]["15"] == "prostate/uterus"
    assert len(check_plugin(plugin, root).records) == 4
    assert plugin.demo is False and catalog.get("amos-ct").demo is False


def test_harmonize_run_amos_mr(tmp_path):
    from typer.testing import CliRunner

    from harmonize.cli.app import app
    from harmonize.manifest.build import read_manifest

    root = make_amos(tmp_path / "AMOS22", n_ct=1, n_mr=2, n_val=1, n_test=1)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-d", "amos-mr", "-r", str(root), "-o", str(out),
                                      "-w", "1", "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = {r.case_id: r for r in read_manifest(out / "amos-mr.jsonl")}
    assert sorted(records) == ["amos_0501", "amos_0507", "amos_0508", "amos_0544"]
    assert {r.modality for r in records.values()} == {"MR"}
    assert records["amos_0501"].mask is None and records["amos_0501"].split == "test"
    train = records["amos_0507"]
    assert train.orientation == "RAS" and train.labels["prostate or uterus"] == [15]
    mask = np.asarray(nib.load(out / train.mask).dataobj)
    assert mask.shape == nib.load(out / train.image).shape and 15 in np.unique(mask)
