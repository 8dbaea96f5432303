"""ATLAS R2.0, ISLES 2022, WMH, FeTA 2022, ATLAS 2023, BrainPTM and the Hammers atlas: YAML-only
datasets in their released layouts (registry/datasets/*.yaml; fabricators in sat_brain_b.py).

Oracles: the case lists, folders and label tables transcribed from SAT-DS's processor.py and
data/jsonl into the fabricator and here, and the written label files read back with nibabel;
never the layout reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators import sat_brain_b as fab
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.loader import HarmonizedDataset
from harmonize.manifest.build import read_manifest

RUNNER = CliRunner()
ATLASR2 = "{0}_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz"
FETA = {"external cerebrospinal fluid": [1], "grey matter": [2], "white matter": [3],
        "brain ventricle": [4], "cerebellum": [5], "deep grey matter": [6], "brainstem": [7]}

#: dataset -> (fabricator, {case: (official split, label path under root)}, channels, labels)
EXPECTED = {
    "atlasr2": (fab.make_atlasr2, {
        s: ("train", f"ATLAS_2/Training/{site}/{s}/ses-1/anat/{ATLASR2.format(s)}")
        for site, subjects in fab.ATLASR2_SUBJECTS.items() for s in subjects},
        ["T1"], {"stroke lesion": [1]}),
    "isles2022": (fab.make_isles2022, {
        c: (None, f"derivatives/{c}/ses-0001/{c}_ses-0001_msk.nii.gz") for c in fab.ISLES_CASES},
        ["DWI", "ADC"], {"stroke lesion": [1]}),
    "wmh": (fab.make_wmh, {
        c: ({"training": "train", "test": "test"}[split], f"{split}/{site}/{c}/wmh.nii.gz")
        for (split, site), cases in fab.WMH_CASES.items() for c in cases},
        ["FLAIR"], {"white matter hyperintensity": [1], "other brain pathology": [2]}),
    "feta2022": (fab.make_feta2022, {
        s: ("train", f"{folder}/{s}/anat/{s}_rec-{rec}_dseg.nii.gz")
        for folder, cases in fab.FETA_CASES.items() for s, rec in cases},
        ["T2"], FETA),
    "atlas2023": (fab.make_atlas2023, {
        str(n): ("train", f"atlas-train-dataset-1.0.1/train/labelsTr/lb{n}.nii.gz")
        for n in range(2)}, ["T1 contrast-enhanced"], {"liver": [1, 2], "liver tumor": [2]}),
    "brain-atlas": (fab.make_brain_atlas, {
        f"a{n:02d}": (None, f"a{n:02d}-seg.nii.gz") for n in (1, 2)}, ["T1"], None),
}


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_discover_and_manifest_in_the_released_layout(dataset, tmp_path):
    make, cases, channels, labels = EXPECTED[dataset]
    root = make(tmp_path / "src")
    found = json.loads(_invoke("discover", "-d", dataset, "-r", str(root), "--format", "json"))
    assert sorted(c["case_id"] for c in found["cases"]) == sorted(cases)
    assert not found["skipped"] and not found["errors"]  # side files are not cases
    _invoke("manifest", "-d", dataset, "-r", str(root), "-o", str(tmp_path / "m"))
    records = {r.case_id: r for r in read_manifest(tmp_path / "m" / f"{dataset}.jsonl")}
    assert sorted(records) == sorted(cases)
    for case_id, record in records.items():
        split, label_path = cases[case_id]
        assert record.patient_id == case_id and record.official_split == split
        assert record.channels == channels
        assert (tmp_path / "m" / str(record.mask)).resolve() == (root / label_path).resolve()
        written = set(np.unique(np.asarray(nib.load(root / label_path).dataobj)).tolist())
        if labels is not None:
            assert record.labels == labels
            assert written == {0} | {v for vs in labels.values() for v in vs}
        else:  # the Hammers atlas: 95 regions, each its own value, all present
            assert written == set(range(96))
            single = {tuple(v) for v in record.labels.values() if len(v) == 1}
            assert single == {(v,) for v in range(1, 96)} and len(record.labels) == 108
            assert record.labels["left hippocampus"] == [1]
            assert record.labels["hippocampus"] == [1, 2]  # SAT-DS loader.py's merges
            assert record.labels["brainstem"] == [19, 74, 75]


def test_isles_flair_on_its_own_grid_is_not_a_channel(tmp_path):
    root = fab.make_isles2022(tmp_path / "src")
    _invoke("manifest", "-d", "isles2022", "-r", str(root), "-o", str(tmp_path / "m"))
    for record in read_manifest(tmp_path / "m" / "isles2022.jsonl"):
        names = [Path(p).name for p in record.image]
        assert names == [f"{record.case_id}_ses-0001_dwi.nii.gz",
                         f"{record.case_id}_ses-0001_adc.nii.gz"]
        dwi = nib.load(root / "rawdata" / record.case_id / "ses-0001" / names[0])
        assert record.shape == list(dwi.shape)


def test_wmh_other_pathology_is_its_own_class_and_scanner_folders_are_read(tmp_path):
    root = fab.make_wmh(tmp_path / "src")
    spaced = root / "test/Amsterdam/Philips_VU .PETMR_01./165/wmh.nii.gz"
    assert 2 in np.unique(np.asarray(nib.load(spaced).dataobj))
    _invoke("manifest", "-d", "wmh", "-r", str(root), "-o", str(tmp_path / "m"))
    splits = {r.case_id: r.official_split for r in read_manifest(tmp_path / "m" / "wmh.jsonl")}
    assert splits == {"0": "train", "50": "train", "100": "train", "165": "test"}


def test_brainptm_tracts_overlap_and_missing_tracts_are_not_annotated(tmp_path):
    root = fab.make_brainptm(tmp_path / "src")
    found = json.loads(_invoke("discover", "-d", "brainptm", "-r", str(root), "--format",
                               "json"))
    assert sorted(c["case_id"] for c in found["cases"]) == ["case_1", "case_2", "case_61"]
    assert not found["skipped"]  # brain_mask, Diffusion: not structures, not reported
    out = tmp_path / "out"
    _invoke("run", "-d", "brainptm", "-r", str(root), "-o", str(out), "-w", "1",
            "--no-progress")
    records = {r.case_id: r for r in read_manifest(out / "brainptm.jsonl")}
    assert records["case_61"].official_split == "test" and records["case_61"].mask is None
    tracts = {"OR_left": "left optic radiation", "OR_right": "right optic radiation",
              "CST_left": "left corticospinal tract", "CST_right": "right corticospinal tract"}
    assert sorted(records["case_2"].annotated) == sorted(
        name for file, name in tracts.items() if file != "CST_right")
    data = HarmonizedDataset(out / "brainptm.jsonl", patch_size=None,
                             classes=list(tracts.values()))
    overlap_seen = False
    for i in range(len(data)):
        record = data.records[i]
        if record.mask is None:
            continue
        sample = data[i]
        masks = {}
        for file, name in tracts.items():
            path = root / "sheba75_tracts_train" / record.case_id / f"{file}.nii.gz"
            if path.exists():  # 1.75 mm RAS as released: voxel for voxel
                masks[name] = np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj) > 0
        for k, name in enumerate(sample["classes"]):
            if name in masks:
                np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool),
                                              masks[name], err_msg=f"{record.case_id} {name}")
        overlap_seen |= bool((masks["left optic radiation"]
                              & masks["left corticospinal tract"]).any())
    assert overlap_seen  # the fabricated tracts do share voxels
