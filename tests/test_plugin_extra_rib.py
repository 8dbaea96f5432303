"""RibFrac 2020 (one value per fracture instance, all read as `rib fracture`; an image without
its label skipped), RibSeg v2 (rib labels on RibFrac CT under another root) and ISBI 2015 (time
points, two raters, four channel files) as YAML-only descriptors, on fabricated copies of their
released layouts.

Oracles: the label arrays the fabricator wrote, checked against nibabel's reading of the files
(voxel counts per value by numpy).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.extra import make_ribfrac, make_ribseg
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


def test_ribfrac_instances_read_as_one_class_and_splits(tmp_path):
    root, written = make_ribfrac(tmp_path / "src")
    found = json.loads(_invoke("discover", "-d", "ribfrac", "-r", str(root), "--format", "json"))
    assert sorted(c["case_id"] for c in found["cases"]) == [
        "RibFrac1", "RibFrac2", "RibFrac301", "RibFrac421"]
    assert [Path(s["path"]).name for s in found["skipped"]] == ["RibFrac302-image.nii.gz"]
    _invoke("manifest", "-d", "ribfrac", "-r", str(root), "-o", str(tmp_path / "m"))
    manifest = tmp_path / "m" / "ribfrac.jsonl"
    records = {r.case_id: r for r in read_manifest(manifest)}
    assert {c: r.official_split for c, r in records.items()} == {
        "RibFrac1": "train", "RibFrac2": "train", "RibFrac301": "train", "RibFrac421": "val"}
    plugin = load_catalog(entry_points=False).get("ribfrac")
    cases = {c.case_id: c for c in discover(plugin, root).cases}
    for case_id, record in records.items():
        part = {"RibFrac421": "val", "RibFrac301": "train2"}.get(case_id, "train1")
        stored = np.asarray(nib.load(root / f"ribfrac-{part}-labels" / f"{case_id}-label.nii.gz")
                            .dataobj)
        assert np.array_equal(stored, written[case_id])
        assert int(stored.max()) == int(case_id[7:]) % 4 + 1  # instances 1..n as written
        assert record.patient_id == case_id and record.labels == {"rib fracture": [1]}
        # instance values are decoded by the dataset's value_ranges: read through its plugin
        label = read_case(cases[case_id], plugin=plugin, image_voxels=False).label
        assert label is not None
        assert set(np.unique(label.data).tolist()) == {0, 1}
        assert int((label.data == 1).sum()) == int((stored > 0).sum())


@pytest.mark.parametrize("flat", [False, True])
def test_ribseg_labels_on_ribfrac_images_under_an_extra_root(tmp_path, flat):
    """RibSeg's seg/ files on RibFrac images found under --extra-root ribfrac in SAT-DS's
    folders or one flat folder; a scan without a RibSeg file is skipped; values 1..24 are
    `rib`, a case missing two ribs reads without them."""
    ribseg, ribfrac, written = make_ribseg(tmp_path / "src", flat=flat)
    found = json.loads(_invoke("--extra-root", f"ribfrac={ribfrac}", "discover", "-d", "ribseg",
                               "-r", str(ribseg), "--format", "json"))
    assert sorted(c["case_id"] for c in found["cases"]) == sorted(written)
    assert [Path(s["path"]).name for s in found["skipped"]] == ["RibFrac2-image.nii.gz"]
    _invoke("--extra-root", f"ribfrac={ribfrac}", "manifest", "-d", "ribseg", "-r", str(ribseg),
            "-o", str(tmp_path / "m"))
    manifest = tmp_path / "m" / "ribseg.jsonl"
    records = {r.case_id: r for r in read_manifest(manifest)}
    assert sorted(records) == sorted(written)
    for case_id, record in records.items():
        stored = np.asarray(nib.load(ribseg / "seg" / f"{case_id}-rib-seg.nii.gz").dataobj)
        assert np.array_equal(stored, written[case_id])
        assert record.official_split is None
        assert record.labels == {"rib": list(range(1, 25))}
        present = sorted(v for v in range(1, 25) if v in stored)
        assert present == [v for v in range(1, 25) if case_id != "RibFrac301" or v not in (1, 13)]
        label = read_case(record, base=manifest.parent, image_voxels=False).label
        assert label is not None
        for value in range(25):
            assert int((label.data == value).sum()) == int((stored == value).sum()), value


def test_isbi2015_time_points_rater_one_and_four_channels(tmp_path):
    """One case per time point, the patient is its folder; rater 1's mask is the label (rater
    2's file is neither an error nor a stray label); FLAIR, T1 (MPRAGE), T2, PD in that order."""
    from harmonize.plugins.fabricators.extra import make_isbi2015

    root, masks = make_isbi2015(tmp_path / "src")
    found = json.loads(_invoke("discover", "-d", "isbi2015", "-r", str(root), "--format", "json"))
    assert not found["errors"] and not found["skipped"]
    _invoke("manifest", "-d", "isbi2015", "-r", str(root), "-o", str(tmp_path / "m"))
    records = {r.case_id: r for r in read_manifest(tmp_path / "m" / "isbi2015.jsonl")}
    assert {c: r.patient_id for c, r in records.items()} == {
        "training01_01": "training01", "training01_02": "training01",
        "training01_03": "training01", "training02_01": "training02"}
    plugin = load_catalog(entry_points=False).get("isbi2015")
    for case in discover(plugin, root).cases:
        record = records[case.case_id]
        assert record.official_split == "train" and record.channels == ["FLAIR", "T1", "T2", "PD"]
        assert [Path(p).name.split("_")[2] for p in record.image] == ["flair", "mprage", "t2", "pd"]
        rater1, rater2 = masks[case.case_id]
        stored = np.asarray(nib.load(root / "training" / record.patient_id / "masks"
                                     / f"{case.case_id}_mask1.nii").dataobj)
        assert np.array_equal(stored, rater1) and int((rater2 > rater1).sum()) > 0
        label = read_case(case, plugin=plugin, image_voxels=False).label
        assert label is not None
        assert np.array_equal(label.data == 1, stored == 1)
