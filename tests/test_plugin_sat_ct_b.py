"""LNDb (several raters, MetaImage) and the Couinaud liver segments (labels on MSD Task08 images
under another root) as YAML-only descriptors, on fabricated copies of their released layouts.

Oracles: the rater masks as written (the union by brute force over the raters' arrays, any
non-zero value being nodule as SAT-DS's processor.py reads them) and the Couinaud label files read
with nibabel.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from harmonize.plugins.fabricators.sat_ct import make_couinaud
from harmonize.plugins.fabricators.sat_ct_b import make_lndb
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.manifest.build import read_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover
from harmonize.read.case import read_case

RUNNER = CliRunner()


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_lndb_raters_union_and_a_scan_without_masks(tmp_path):
    root, written = make_lndb(tmp_path / "src")
    found = json.loads(_invoke("discover", "-d", "lndb", "-r", str(root), "--format", "json"))
    assert sorted(c["case_id"] for c in found["cases"]) == ["LNDb-0001", "LNDb-0002", "LNDb-0312"]
    assert [Path(s["path"]).name for s in found["skipped"]] == ["LNDb-0100.mhd"]
    _invoke("manifest", "-d", "lndb", "-r", str(root), "-o", str(tmp_path / "m"))
    records = {r.case_id: r for r in read_manifest(tmp_path / "m" / "lndb.jsonl")}
    assert sorted(records) == ["LNDb-0001", "LNDb-0002", "LNDb-0312"]
    plugin = load_catalog(entry_points=False).get("lndb")
    for case in discover(plugin, root).cases:  # a folder of rater files: read through the plugin
        case_id, record = case.case_id, records[case.case_id]
        assert record.official_split == "train" and record.patient_id == case_id
        label = read_case(case, plugin=plugin).label
        assert label is not None and label.classes is not None
        union = np.zeros(written[case_id][0].shape, bool)
        for mask in written[case_id]:
            union |= mask > 0
        assert int(union.sum()) > 0
        got = np.isin(label.data, label.classes["lung nodule"])
        assert np.array_equal(got, union), case_id


def test_couinaud_labels_on_msd_images_under_an_extra_root(tmp_path, monkeypatch):
    labels, msd = make_couinaud(tmp_path / "src")
    moved = tmp_path / "elsewhere" / "Task08"
    moved.parent.mkdir()
    msd.rename(moved)
    monkeypatch.setenv("HARMONIZE_ROOTS", "")
    found = json.loads(_invoke("--extra-root", f"msd={moved}", "discover", "-d", "couinaud-liver",
                               "-r", str(labels), "--format", "json"))
    assert [c["case_id"] for c in found["cases"]] == ["hepaticvessel_001", "hepaticvessel_004"]
    for case in found["cases"]:
        assert Path(case["images"][0]).resolve() == (
            moved / "imagesTr" / f"{case['case_id']}.nii.gz").resolve()
    skipped = sorted(Path(s["path"]).name for s in found["skipped"])
    assert skipped == [".hepaticvessel_001.nii.gz", ".hepaticvessel_004.nii.gz",
                       "hepaticvessel_002.nii.gz"]
    _invoke("--extra-root", f"msd={moved}", "manifest", "-d", "couinaud-liver", "-r", str(labels),
            "-o", str(tmp_path / "m"))
    manifest = tmp_path / "m" / "couinaud-liver.jsonl"
    lobes = {"caudate lobe": [1], "left lobe of liver": [2, 3, 4],
             "right lobe of liver": [5, 6, 7, 8], "right anterior superior segment of liver": [8]}
    for record in read_manifest(manifest):
        assert {n: record.labels[n] for n in lobes} == lobes
        data = np.asarray(nib.load(labels / f"{record.case_id}.nii.gz").dataobj)
        assert set(np.unique(data)) == set(range(9))
        label = read_case(record, base=manifest.parent).label
        assert label is not None
        for name, values in lobes.items():
            assert np.array_equal(np.isin(label.data, record.labels[name]), np.isin(data, values))


def test_dap_atlas_labels_on_autopet_ct_with_ids_from_two_path_parts(tmp_path, monkeypatch):
    """DAP Atlas: AutoPET_<subject>_<study digits>.nii.gz on autoPET's CT.nii.gz; a subject
    with two studies gives two cases (case_template "{patient}_{num}") of one patient."""
    from harmonize.plugins.fabricators.sat_ct_b import make_dap_atlas

    masks, autopet = make_dap_atlas(tmp_path / "src")
    monkeypatch.setenv("HARMONIZE_ROOTS", "")
    args = ("--extra-root", f"autopet={autopet}")
    found = json.loads(_invoke(*args, "discover", "-d", "dap-atlas", "-r", str(masks),
                               "--format", "json"))
    ids = {c["case_id"]: c["patient_id"] for c in found["cases"]}
    assert ids == {"0011f3deaf_10445": "0011f3deaf", "0011f3deaf_56839": "0011f3deaf",
                   "ff1451316e_22165": "ff1451316e"}
    assert [s["reason"] for s in found["skipped"]] == [
        "no label file AutoPET_ff1451316e_31337.nii.gz"]
    _invoke(*args, "manifest", "-d", "dap-atlas", "-r", str(masks), "-o", str(tmp_path / "m"))
    manifest = tmp_path / "m" / "dap-atlas.jsonl"
    # the release's values (Data/label_name.csv), by class
    classes = {"liver": [13], "rectum": [11], "kidney": [15, 16], "left kidney": [15],
               "heart": [105, 106, 107, 108, 109, 110, 111], "left ventricle": [110]}
    for record in read_manifest(manifest):
        assert {n: record.labels[n] for n in classes} == classes
        data = np.asarray(nib.load(masks / f"AutoPET_{record.case_id}.nii.gz").dataobj)
        label = read_case(record, base=manifest.parent).label
        assert label is not None
        for name, values in classes.items():
            assert np.array_equal(np.isin(label.data, record.labels[name]),
                                  np.isin(data, values)), name
        assert not any(1 in vs for vs in record.labels.values())  # "left to annotate"


def test_case_template_placeholders_are_checked_at_load_time():
    import pytest

    from harmonize.errors import DescriptorError
    from harmonize.plugin.descriptor import parse_descriptor

    with pytest.raises(DescriptorError, match=r"layout\.case_template.*\{visit\}"):
        parse_descriptor({"id": "x", "name": "x", "modality": "CT", "values": {1: "liver"},
                          "classes": {"liver": [1]},
                          "layout": {"images": "{patient}/{num}/ct.nii.gz",
                                     "case_template": "{patient}_{visit}"}})
