"""TotalSegmentator v1: SAT-DS's five TotalSegmentator subsets, described by YAML alone.

Layout from SAT-DS ``processor.py`` (``preprocess_TotalSegmentator``), values from
``class_map["total_v1"]`` (see the descriptor). Oracles: each structure file read with nibabel,
meta.csv read with the csv module, the v1 class map written out here; never the layout reader.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.sat_pet import TS_V1_OVERLAPS, make_totalsegmentator_v1
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.manifest.build import read_manifest
from harmonize.plugin.discovery import discover
from harmonize.read.case import read_case

#: class_map["total_v1"] of totalsegmentator/map_to_binary.py: a few values, written out here
V1_VALUES = {1: "spleen", 7: "aorta", 44: "heart_myocardium", 45: "heart_atrium_left",
             48: "heart_ventricle_right", 49: "pulmonary_artery", 93: "face", 104: "urinary_bladder"}


def manifest(dataset: str, root: Path, out: Path) -> dict:
    done = CliRunner().invoke(app, ["manifest", "-d", dataset, "-r", str(root), "-o", str(out)])
    assert done.exit_code == 0, done.output
    return {r.case_id: r for r in read_manifest(out / f"{dataset}.jsonl")}


@pytest.fixture(scope="module")
def ts_v1(tmp_path_factory):
    return make_totalsegmentator_v1(tmp_path_factory.mktemp("tsv1"), n_cases=2, seed=4)


def test_v1_descriptor_has_the_v1_class_map_and_sat_ds_subsets(catalog):
    desc = catalog.get("totalsegmentator-v1").descriptor
    assert len([v for v in desc.values if v]) == 104
    assert {v: desc.values[v] for v in V1_VALUES} == V1_VALUES
    assert desc.sat_ds == ("TotalSegmentator_Organs", "TotalSegmentator_Vertebrae",
                           "TotalSegmentator_Cardiac", "TotalSegmentator_Muscles",
                           "TotalSegmentator_Ribs")
    # v2 feeds only SAT-DS's TotalSegmentator_v2 (the structures v2 added)
    assert catalog.get("totalsegmentator").descriptor.sat_ds == ("TotalSegmentator_v2",)


def test_v1_cases_splits_and_every_structure_back_exactly(catalog, ts_v1):
    plugin = catalog.get("totalsegmentator-v1")
    found = discover(plugin, ts_v1)
    with open(ts_v1 / "meta.csv", encoding="utf-8", newline="") as fh:
        meta = {row["image_id"]: row["split"] for row in csv.DictReader(fh, delimiter=";")}
    assert [(c.case_id, c.patient_id, c.official_split) for c in found.cases] == [
        (s, s, meta[s]) for s in ("s0000", "s0001")]
    assert meta == {"s0000": "train", "s0001": "test"}
    assert not [s for s in found.skipped if "derived" in str(s.path)]
    desc = plugin.descriptor
    structure_class = {**{s: s for s in desc.values.values()}, **desc.structure_files}
    for case in found.cases:
        label = read_case(case, plugin=plugin).label
        files = sorted((ts_v1 / case.case_id / "segmentations").glob("*.nii.gz"))
        assert len(files) == (104 if case.case_id == "s0000" else 104 - 11)
        overlap = np.zeros(label.data.shape, bool)
        for path in files:
            expected = np.asanyarray(nib.load(path).dataobj) > 0
            name = structure_class[path.name[: -len(".nii.gz")]]
            got = np.isin(label.data, label.classes[name])
            np.testing.assert_array_equal(got, expected, err_msg=f"{case.case_id} {name}")
        for inner, outer in TS_V1_OVERLAPS:
            both = [np.asanyarray(nib.load(ts_v1 / case.case_id / "segmentations" /
                                           f"{s}.nii.gz").dataobj) > 0 for s in (inner, outer)]
            overlap |= both[0] & both[1]
        assert overlap.any()  # the quirk is exercised: shared voxels came back in both classes
        present = {structure_class[p.name[: -len(".nii.gz")]] for p in files}
        assert set(label.classes) == present  # a missing file: not annotated in that case


def test_v1_manifest_marks_missing_structures_not_annotated(catalog, ts_v1, tmp_path):
    records = manifest("totalsegmentator-v1", ts_v1, tmp_path)
    assert len(records) == 2
    assert len(records["s0000"].annotated) == 104 and len(records["s0001"].annotated) == 93
    assert "spleen" not in records["s0001"].annotated  # names[::10] starts at value 1
    assert records["s0000"].official_split == "train"


def test_v2_plugin_points_a_v1_subject_to_the_v1_id(catalog, ts_v1):
    found = discover(catalog.get("totalsegmentator"), ts_v1)
    assert not found.cases
    assert any("totalsegmentator-v1" in (s.hint or "") for s in found.skipped)


def test_v1_sample_path_is_a_real_file(ts_v1):
    assert (Path(ts_v1) / "s0000" / "ct.nii.gz").is_file()
