"""Datasets beyond SAT-DS's collection, each described by a YAML descriptor alone.

Oracles: the fabricated files read back with nibabel / SimpleITK, the case lists the fabricators
were given; never the layout reader.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators import beyond
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.manifest.build import read_manifest
from harmonize.plugin.discovery import discover
from harmonize.plugin.layout import LayoutDataset
from harmonize.read.case import read_case

BEYOND = ("abdomenatlas1.1", "flare23", "totalsegmentator-mri", "spider", "uls23", "liqa", "hnts-mrg")


def manifest(dataset: str, root: Path, out: Path) -> dict:
    done = CliRunner().invoke(app, ["manifest", "-d", dataset, "-r", str(root), "-o", str(out)])
    assert done.exit_code == 0, done.output
    return {r.case_id: r for r in read_manifest(out / f"{dataset}.jsonl")}


@pytest.mark.parametrize("dataset", BEYOND)
def test_yaml_only_and_not_a_sat_ds_dataset(catalog, dataset):
    plugin = catalog.get(dataset)
    assert type(plugin) is LayoutDataset and plugin.source == "built-in"
    assert plugin.descriptor.sat_ds == ()


def _structure_check(plugin, case, folder: Path) -> set[str]:
    """Every structure file's voxels come back exactly in its class; returns the classes."""
    desc = plugin.descriptor
    label = read_case(case, plugin=plugin).label
    names = set()
    for path in sorted((folder / "segmentations").glob("*.nii.gz")):
        stem = path.name[: -len(".nii.gz")]
        name = desc.structure_files.get(stem, stem)
        if name not in desc.classes:  # a file the release has but the dataset does not use
            continue
        expected = np.asanyarray(nib.load(path).dataobj) > 0
        np.testing.assert_array_equal(np.isin(label.data, label.classes[name]), expected,
                                      err_msg=f"{case.case_id} {name}")
        names.add(name)
    assert set(label.classes) == names
    return names


def test_abdomenatlas_partitions_structures_and_overlaps(catalog, tmp_path):
    root = beyond.make_abdomenatlas(tmp_path)
    plugin = catalog.get("abdomenatlas1.1")
    found = discover(plugin, root)
    assert sorted((c.case_id, c.patient_id) for c in found.cases) == sorted(
        (case, case) for _, case in beyond.ATLAS_CASES)
    assert all(c.official_split is None for c in found.cases)
    for case in found.cases:
        partition = next(p for p, c in beyond.ATLAS_CASES if c == case.case_id)
        folder = root / partition / case.case_id
        names = _structure_check(plugin, case, folder)
        assert ("prostate" in names) == (case.case_id != "BDMAP_00000002")
        liver = np.asanyarray(nib.load(folder / "segmentations" / "liver.nii.gz").dataobj) > 0
        vessel = np.asanyarray(nib.load(folder / "segmentations" /
                                        "hepatic_vessel.nii.gz").dataobj) > 0
        assert (liver & vessel).any()  # the overlap is exercised (checked above: both exact)
    records = manifest("abdomenatlas1.1", root, tmp_path / "m")
    assert "prostate" not in records["BDMAP_00000002"].annotated
    assert len(records["BDMAP_00000001"].annotated) == 25


def test_flare23_partial_labels_are_annotated_where_they_occur(tmp_path):
    root = beyond.make_flare23(tmp_path)
    records = manifest("flare23", root, tmp_path / "m")
    assert sorted(records) == sorted(beyond.FLARE23_CASES)
    organs = {1: "liver", 2: "right kidney", 3: "spleen", 4: "pancreas", 5: "aorta",
              6: "inferior vena cava", 7: "right adrenal gland", 8: "left adrenal gland",
              9: "gallbladder", 10: "esophagus", 11: "stomach", 12: "duodenum",
              13: "left kidney", 14: "lesion"}  # the release's table, written out here
    for case, record in records.items():
        values = set(np.unique(np.asarray(nib.load(root / "labelsTr2200" / f"{case}.nii.gz")
                                          .dataobj)).tolist()) - {0}
        assert values == set(beyond.FLARE23_CASES[case])
        want = {organs[v] for v in values}
        want |= {"kidney"} if {2, 13} <= values else set()
        want |= {"adrenal gland"} if {7, 8} <= values else set()
        assert set(record.annotated) == want, case
        assert record.official_split == "train"
        assert record.labels == {name: v for name, v in record.labels.items() if name in want}


def test_totalsegmentator_mri_structures_overlaps_and_unknown_files(catalog, tmp_path):
    root = beyond.make_totalsegmentator_mri(tmp_path)
    plugin = catalog.get("totalsegmentator-mri")
    found = discover(plugin, root)
    assert [(c.case_id, c.patient_id, c.official_split) for c in found.cases] == [
        ("s0001", "s0001", None), ("s0002", "s0002", None)]
    unknown = [s for s in found.skipped if "thigh_compartment_left" in str(s.path)]
    assert len(unknown) == 2 and all("maps to no class" in s.reason for s in unknown)
    for case in found.cases:
        names = _structure_check(plugin, case, root / case.case_id)
        assert len(names) == (50 if case.case_id == "s0001" else 40)
    vert = [np.asanyarray(nib.load(root / "s0001" / "segmentations" / f"{n}.nii.gz").dataobj) > 0
            for n in ("vertebrae", "intervertebral_discs")]
    assert (vert[0] & vert[1]).any()
    assert plugin.descriptor.values[19] == "vertebrae"  # class_map["total_mr"][19]


def test_spider_series_are_cases_of_their_patient_with_their_sequence(catalog, tmp_path):
    import SimpleITK as sitk

    root = beyond.make_spider(tmp_path)
    plugin = catalog.get("spider")
    found = discover(plugin, root)
    assert sorted(c.case_id for c in found.cases) == sorted(beyond.SPIDER_SERIES)
    assert not found.skipped
    levels = ["L5", "L4", "L3", "L2", "L1", "T12", "T11"]  # numbered from the bottom
    for case in found.cases:
        assert case.patient_id == case.case_id.split("_")[0]
        assert case.channel_names == (("T1",) if case.case_id.endswith("t1") else ("T2",))
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "masks" /
                                                          f"{case.case_id}.mha")))
        label = read_case(case, plugin=plugin).label
        assert sorted(np.unique(truth).tolist()) == sorted([0, *beyond.SPIDER_VALUES])
        classes = plugin.descriptor.classes
        for k, level in enumerate(levels, start=1):  # voxel counts: orientation-free oracle
            want = int(np.isin(truth, [k, 100 + k]).sum())
            assert int(np.isin(label.data, classes[f"vertebra {level}"]).sum()) == want
        assert int((label.data == 100).sum()) == int((truth == 100).sum())
        discs = np.isin(label.data, classes["intervertebral disc"]).sum()
        assert int(discs) == int(((truth >= 201) & (truth <= 206)).sum())


def test_uls23_labels_come_from_the_repository_root(tmp_path):
    root = beyond.make_uls23(tmp_path / "zenodo", tmp_path / "clone" / "annotations")
    out = tmp_path / "m"
    done = CliRunner().invoke(app, ["--extra-root", f"annotations={tmp_path / 'clone' / 'annotations'}",
                                    "manifest", "-d", "uls23", "-r", str(root), "-o", str(out)])
    assert done.exit_code == 0, done.output
    records = {r.case_id: r for r in read_manifest(out / "uls23.jsonl")}
    assert sorted(records) == sorted(stem for _, stem in beyond.ULS23_VOIS)
    patients = {"000010_02_02_100_lesion_01": "000010", "000010_03_01_058_lesion_01": "000010",
                "bone_00002_lesion_01": "bone_00002", "bone_00002_lesion_02": "bone_00002",
                "pancreas_00007_lesion_01": "pancreas_00007"}
    for stem, record in records.items():
        assert record.patient_id == patients[stem] and record.official_split == "train"
        folder = next(f for f, s in beyond.ULS23_VOIS if s == stem)
        label = (tmp_path / "clone" / "annotations" / "ULS23" / "novel_data" / folder /
                 "labels" / f"{stem}.nii.gz")
        assert set(np.unique(np.asarray(nib.load(label).dataobj)).tolist()) == {0, 1}
        assert Path(out / record.mask).resolve() == label.resolve()
        assert record.labels == {"lesion": [1]}


def test_liqa_cases_are_the_ged4_phase_with_its_mask(catalog, tmp_path):
    root = beyond.make_liqa(tmp_path)
    plugin = catalog.get("liqa")
    found = discover(plugin, root)
    labelled = [(v, c) for v, c, has in beyond.LIQA_CASES if has]
    assert sorted(c.case_id for c in found.cases) == sorted(c for _, c in labelled)
    skipped = [s for s in found.skipped if s.case_id == "1200-B2-S0"]
    assert len(skipped) == 1 and "mask_GED4" in skipped[0].reason
    for case in found.cases:
        vendor = next(v for v, c, _ in beyond.LIQA_CASES if c == case.case_id)
        folder = root / "train" / vendor / case.case_id
        assert case.images == (folder / "GED4.nii.gz",) and case.official_split == "train"
        assert case.patient_id == case.case_id.split("-")[0]
        assert case.channel_names == ("T1 contrast-enhanced",)
        label = read_case(case, plugin=plugin).label
        truth = np.asarray(nib.load(folder / "mask_GED4.nii.gz").dataobj)
        np.testing.assert_array_equal(np.isin(label.data, [1]), truth == 1)


def test_hnts_mrg_time_points_are_cases_of_one_patient(tmp_path):
    root = beyond.make_hnts_mrg(tmp_path)
    records = manifest("hnts-mrg", root, tmp_path / "m")
    want = {f"{p}_{t}": p for p in beyond.HNTS_PATIENTS for t in ("preRT", "midRT")}
    assert {c: r.patient_id for c, r in records.items()} == want
    for case, record in records.items():
        patient, timepoint = case.split("_")
        mask = np.asarray(nib.load(root / patient / timepoint / f"{case}_mask.nii.gz").dataobj)
        empty = case == "21_midRT"
        assert set(np.unique(mask).tolist()) == ({0} if empty else {0, 1, 2})
        assert record.labels == {"head and neck tumor": [1], "pathological lymph node": [2]}
        assert record.metadata["session"] == timepoint and record.channels == ["T2"]
        assert Path(record.image).name == f"{case}_T2.nii.gz"  # never a registered copy
    splits = {}
    for record in records.values():
        splits.setdefault(record.patient_id, set()).add(record.split)
    assert all(len(s) == 1 for s in splits.values())  # both time points in one split

