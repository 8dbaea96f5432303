"""CrossMoDA 2021 and MM-WHS CT: YAML-only datasets in their released layouts.

The oracle is the fabricated arrays themselves (read back with nibabel) and the layouts/values
SAT-DS's processor.py and data/jsonl read (transcribed in the fabricator), never the layout
reader: case ids from the file names written, voxel counts per value by ``np.isin``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.sat_small_b import (
    make_crossmoda2021,
    make_mm_whs_ct,
)
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.manifest.build import read_manifest

RUNNER = CliRunner()
#: dataset -> (fabricator, case ids written, label file of a case, values per class)
CASES = {
    "crossmoda2021": (make_crossmoda2021, ["crossmoda_1", "crossmoda_100", "crossmoda_105"],
                      "source_training/{}_Label.nii.gz",
                      {"vestibular schwannoma": [1], "cochlea": [2]}),
    "mm-whs-ct": (make_mm_whs_ct, ["ct_train_1001", "ct_train_1002", "ct_train_1003"],
                  "MM-WHS/ct_train/{}_label.nii.gz",
                  {"myocardium": [205], "left atrium": [420], "left ventricle": [500],
                   "right atrium": [550], "right ventricle": [600], "ascending aorta": [820],
                   "pulmonary artery": [850], "heart atrium": [420, 550],
                   "heart ventricle": [500, 600]}),
}
SAT_NAMES = {"crossmoda2021": "CrossMoDA2021", "mm-whs-ct": "MM_WHS_CT"}


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("dataset", sorted(CASES))
def test_discover_and_manifest_in_the_released_layout(dataset, tmp_path):
    make, case_ids, label_of, classes = CASES[dataset]
    root = make(tmp_path / "src")
    found = json.loads(_invoke("discover", "-d", dataset, "-r", str(root), "--format", "json"))
    assert sorted(c["case_id"] for c in found["cases"]) == sorted(case_ids)
    assert not found["skipped"] and not found["errors"]
    assert all(Path(c["label"]).as_posix().endswith(label_of.format(c["case_id"]))
               for c in found["cases"])
    _invoke("manifest", "-d", dataset, "-r", str(root), "-o", str(tmp_path / "m"))
    records = {r.case_id: r for r in read_manifest(tmp_path / "m" / f"{dataset}.jsonl")}
    assert sorted(records) == sorted(case_ids)
    for case_id, record in records.items():
        assert record.patient_id == case_id  # one scan per patient in each release
        assert record.official_split == "train" and record.split in ("train", "val", "test")
        assert Path(record.mask).as_posix().endswith(label_of.format(case_id))
        data = np.asarray(nib.load(root / label_of.format(case_id)).dataobj)
        present = {n for n, vs in classes.items() if np.isin(data, vs).any()}
        assert set(record.labels) >= present and present == set(classes)
        assert {n: record.labels[n] for n in classes} == classes


def test_mm_whs_run_loader_and_sat_export(tmp_path):
    """`harmonize run` keeps MM-WHS's 205...850 per class; the loader's masks count the voxels
    the release file has per value; `export sat` keeps the id mm-whs-ct (see below)."""
    from harmonize.loader import HarmonizedDataset

    make, case_ids, label_of, classes = CASES["mm-whs-ct"]
    root = make(tmp_path / "src")
    out = tmp_path / "run"
    _invoke("run", "-d", "mm-whs-ct", "-r", str(root), "-o", str(out), "--spacing", "native",
            "--workers", "1", "--no-progress")
    manifest = out / "mm-whs-ct.jsonl"
    names = sorted(classes)
    loader = HarmonizedDataset(manifest, classes=names, patch_size=None)
    assert len(loader) == len(case_ids)
    for index in range(len(loader)):
        sample = loader[index]
        data = np.asarray(nib.load(root / label_of.format(sample["case_id"])).dataobj)
        got = {n: int(sample["mask"][k].sum()) for k, n in enumerate(sample["classes"])}
        assert got == {n: int(np.isin(data, classes[n]).sum()) for n in names}
        assert all(got.values())
    sat = tmp_path / "sat"
    _invoke("export", "sat", "--manifest", str(manifest), "--out", str(sat), "--no-progress")
    # SAT-DS's MM_WHS_CT loader reads the release values 205...850, a layout harmonize does not
    # write: the records keep their own id rather than a SAT-DS name SAT-DS would misread
    assert not (sat / "jsonl" / "MM_WHS_CT.jsonl").exists()
    lines = [json.loads(t) for t in (sat / "jsonl" / "mm-whs-ct.jsonl").read_text().splitlines()]
    assert sorted(line["harmonize"]["case_id"] for line in lines) == case_ids
    assert {line["dataset"] for line in lines} == {"mm-whs-ct"}


@pytest.mark.parametrize("dataset", ["crossmoda2021"])
def test_sat_export_uses_sat_ds_name_and_values(dataset, tmp_path):
    """CrossMoDA2021: SAT-DS's loader reads ``mask == i + 1`` of the release's own
    label files; the export gives those values (the release's) under SAT-DS's name."""
    make, case_ids, label_of, classes = CASES[dataset]
    root = make(tmp_path / "src")
    _invoke("manifest", "-d", dataset, "-r", str(root), "-o", str(tmp_path / "m"))
    sat = tmp_path / "sat"
    _invoke("export", "sat", "--manifest", str(tmp_path / "m" / f"{dataset}.jsonl"),
            "--out", str(sat), "--no-progress")
    name = SAT_NAMES[dataset]
    lines = [json.loads(t) for t in (sat / "jsonl" / f"{name}.jsonl").read_text().splitlines()]
    assert {line["dataset"] for line in lines} == {name}
    for line in lines:
        case_id = line["harmonize"]["case_id"]
        source = np.asarray(nib.load(root / label_of.format(case_id)).dataobj)
        written = np.asarray(nib.load(sat / line["mask"]).dataobj)
        # same grid as the source: the released values come through unchanged
        assert written.shape == source.shape and np.array_equal(written, source)
