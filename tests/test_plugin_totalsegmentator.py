"""TotalSegmentator v2 plugin on a fabricated copy of ``Totalsegmentator_dataset_v201``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.totalsegmentator import (
    FOLDER,
    make_totalsegmentator,
    reference_label_map,
)

from harmonize.labels.vocabulary import load_vocabulary
from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin, write_nifti

# class_map["total"] of totalsegmentator/map_to_binary.py (v2), written out independently of the
# descriptor so that a reordered or renamed value is caught.
V2_NAMES = (
    ["spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
     "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left",
     "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus",
     "trachea", "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate",
     "kidney_cyst_left", "kidney_cyst_right", "sacrum", "vertebrae_S1"]
    + [f"vertebrae_L{i}" for i in range(5, 0, -1)]
    + [f"vertebrae_T{i}" for i in range(12, 0, -1)]
    + [f"vertebrae_C{i}" for i in range(7, 0, -1)]
    + ["heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery_right",
       "subclavian_artery_left", "common_carotid_artery_right", "common_carotid_artery_left",
       "brachiocephalic_vein_left", "brachiocephalic_vein_right", "atrial_appendage_left",
       "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein",
       "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right",
       "humerus_left", "humerus_right", "scapula_left", "scapula_right", "clavicula_left",
       "clavicula_right", "femur_left", "femur_right", "hip_left", "hip_right", "spinal_cord",
       "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left",
       "gluteus_medius_right", "gluteus_minimus_left", "gluteus_minimus_right",
       "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right", "brain", "skull"]
    + [f"rib_left_{i}" for i in range(1, 13)] + [f"rib_right_{i}" for i in range(1, 13)]
    + ["sternum", "costal_cartilages"]
)
#: classes that hold more than their hierarchy gives: a kidney includes its cysts painted over it
EXTRA_MEMBERS = {"left kidney": {23}, "right kidney": {24}}


@pytest.fixture(scope="module")
def ts_root(tmp_path_factory) -> Path:
    return make_totalsegmentator(tmp_path_factory.mktemp("ts"), n_cases=3, seed=2)


@pytest.fixture
def plugin(catalog):
    return catalog.get("totalsegmentator")


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_descriptor_has_the_117_v2_structures_in_class_map_order(plugin):
    assert len(V2_NAMES) == 117
    assert plugin.structures == dict(enumerate(V2_NAMES, start=1))
    assert plugin.descriptor.values[0] == "background"


def test_every_structure_resolves_into_the_vocabulary_with_its_hierarchy(plugin):
    vocab = load_vocabulary()
    classes = plugin.descriptor.classes
    canonical = {v: vocab.resolve(name) for v, name in plugin.structures.items()}
    for value, name in canonical.items():
        assert value in classes[name], (value, name)  # each structure is its own class
    lineage = {v: {name, *vocab.ancestors(name)} for v, name in canonical.items()}
    for cls, members in classes.items():
        expected = {v for v, names in lineage.items() if vocab.resolve(cls) in names}
        assert expected <= set(members), (cls, expected - set(members))
        assert set(members) - expected == EXTRA_MEMBERS.get(cls, set()), cls
    assert vocab.ancestors(canonical[31]) == ["lumbar vertebra", "vertebra", "spine"]
    assert canonical[31] == "vertebra L1"
    assert canonical[92] == "left rib 1"
    assert vocab.ancestors("left rib 1") == ["left rib", "rib 1", "rib"]  # its side and its level
    assert vocab.ancestors(canonical[10]) == ["left lung", "lung upper lobe", "lung"]
    assert canonical[23] == "left kidney cyst" and "kidney" in vocab.ancestors(canonical[23])
    assert canonical[75] == "left femur" and "femoral head" not in vocab.ancestors("left femur")
    assert vocab.ancestors(canonical[80]) == ["gluteus maximus", "gluteal muscle"]
    assert vocab.ancestors(canonical[61]) == ["left atrium", "heart atrium", "heart"]
    assert classes["lung"] == tuple(range(10, 15))
    assert classes["vertebra"] == tuple(range(27, 51))
    assert classes["kidney"] == (2, 3, 23, 24)


def test_discovery_official_split_metadata_and_records(plugin, ts_root):
    check = check_plugin(plugin, ts_root)
    assert check.discovery.skipped == []
    records = {r.case_id: r for r in check.records}
    assert sorted(records) == ["s0000", "s0001", "s0002"]
    assert [records[s].official_split for s in sorted(records)] == ["train", "val", "test"]
    assert records["s0002"].split == "test" and records["s0001"].split == "val"
    record = records["s0000"]
    assert record.patient_id == "s0000" and record.orientation == "RAS"
    assert record.spacing == [1.5, 1.5, 1.5]
    assert record.mask.endswith(f"{FOLDER}/s0000/segmentations")
    assert len(record.labels) == len(plugin.descriptor.classes)
    assert record.labels["vertebra L1"] == [31] and record.labels["heart"] == [51, 61]
    meta = record.metadata["meta"]
    assert isinstance(meta["age"], int) and meta["gender"] in ("m", "f")
    assert meta["kvp"] in (100, 120) and meta["pathology_location"] is None
    assert "missing_structures" not in record.metadata
    assert records["s0001"].metadata["missing_structures"] == V2_NAMES[::7]


def test_label_map_equals_an_independent_per_structure_reference(plugin, ts_root, tmp_path):
    root = copy_tree(ts_root, tmp_path / "ts")
    # one structure stored as float32 (some tools write masks that way): still a binary mask
    spleen = root / FOLDER / "s0000/segmentations/spleen.nii.gz"
    img = nib.load(spleen)
    write_nifti(spleen, np.asanyarray(img.dataobj).astype(np.float32), img.affine)
    cases = discover(plugin, root).cases
    assert len(cases) == 3
    for case in cases:
        volume = plugin.read_label(case)
        reference = reference_label_map(case.label, V2_NAMES)
        assert volume.kind == "label" and volume.data.dtype == np.uint8
        np.testing.assert_array_equal(volume.data, reference)
        np.testing.assert_allclose(volume.affine, nib.load(case.images[0]).affine)
        found = set(np.unique(volume.data).tolist())
        assert found <= set(range(118)) and len(found) > 40
        for name in case.metadata.get("missing_structures", []):
            assert V2_NAMES.index(name) + 1 not in found
    # overlapping structures: the later one wins, as in the official converter
    case = cases[0]
    segs = case.label
    cyst = np.asanyarray(nib.load(segs / "kidney_cyst_left.nii.gz").dataobj) > 0
    kidney = np.asanyarray(nib.load(segs / "kidney_left.nii.gz").dataobj) > 0
    assert (cyst & kidney).any()
    painted = plugin.read_label(case).data[cyst & kidney]
    assert (painted >= 23).all() and (painted == 23).any()  # never the kidney's 3 under a cyst


def test_structure_off_the_ct_grid_is_a_clear_error(plugin, ts_root, tmp_path):
    root = copy_tree(ts_root, tmp_path / "ts")
    liver = root / FOLDER / "s0000/segmentations/liver.nii.gz"
    write_nifti(liver, np.zeros((10, 10, 10), dtype=np.uint8), np.diag([1.5, 1.5, 1.5, 1.0]))
    aorta = root / FOLDER / "s0002/segmentations/aorta.nii.gz"
    img = nib.load(aorta)
    shifted = img.affine.copy()
    shifted[0, 3] += 3.0
    write_nifti(aorta, np.asanyarray(img.dataobj), shifted)
    check = check_plugin(plugin, root, allow_errors=True)
    assert [r.case_id for r in check.records] == ["s0001"]
    errors = {e.case: e for e in check.errors}
    assert errors["s0000"].kind == "label" and errors["s0000"].file.endswith("liver.nii.gz")
    assert "not on the CT's grid" in errors["s0000"].message and errors["s0000"].hint
    assert errors["s0002"].file.endswith("aorta.nii.gz") and "3 mm" in errors["s0002"].message


def test_unknown_and_v1_structure_files_are_reported(plugin, ts_root, tmp_path):
    root = copy_tree(ts_root, tmp_path / "ts")
    data = root / FOLDER
    empty = np.zeros((4, 4, 4), dtype=np.uint8)
    write_nifti(data / "s0000/segmentations/lung_vessels.nii.gz", empty, np.eye(4))
    (data / "s0000/segmentations/notes.txt").write_text("x")
    write_nifti(data / "s0002/segmentations/heart_myocardium.nii.gz", empty, np.eye(4))
    (data / "readme.txt").write_text("x")
    result = discover(plugin, root)
    assert [c.case_id for c in result.cases] == ["s0000", "s0001"]
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert "not one of the 117" in reasons["lung_vessels.nii.gz"]
    assert "not one of the 117" in reasons["notes.txt"]
    assert "v1 structures (heart_myocardium)" in reasons["s0002"]
    assert "not a subject folder" in reasons["readme.txt"]
    assert all(s.hint for s in result.skipped)


def test_meta_csv_problems_are_reported(plugin, ts_root, tmp_path):
    root = copy_tree(ts_root, tmp_path / "ts")
    data = root / FOLDER
    shutil.rmtree(data / "s0001")
    meta = (data / "meta.csv").read_text(encoding="utf-8-sig")
    assert meta.splitlines()[0].startswith("image_id;age;gender;institute;study_type;split;")
    result = discover(plugin, root)
    assert "listed in meta.csv but the subject folder is missing" in result.skipped[0].reason
    (data / "meta.csv").unlink()
    result = discover(plugin, data)  # the root may also be the release folder itself
    assert [c.official_split for c in result.cases] == [None, None]
    assert "meta.csv is missing" in result.skipped[0].reason
    (data / "meta.csv").write_text(meta.replace(";test;", ";holdout;"), encoding="utf-8-sig")
    result = discover(plugin, root)
    assert result.cases == [] and "holdout" in result.errors[0].message


def test_missing_files_and_wrong_roots(plugin, ts_root, tmp_path):
    root = copy_tree(ts_root, tmp_path / "ts")
    (root / FOLDER / "s0000/ct.nii.gz").unlink()
    shutil.rmtree(root / FOLDER / "s0001/segmentations")
    result = discover(plugin, root)
    assert [c.case_id for c in result.cases] == ["s0002"]
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert "ct.nii.gz is missing" in reasons["s0000"]
    assert "segmentations/ is missing" in reasons["s0001"]
    (tmp_path / "empty").mkdir()
    result = discover(plugin, tmp_path / "empty")
    assert result.errors and "no meta.csv and no s#### subject folders" in result.errors[0].message


def test_harmonize_run_writes_one_label_map_per_case(ts_root, tmp_path):
    from typer.testing import CliRunner

    from harmonize.cli.app import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-d", "totalsegmentator", "-r", str(ts_root),
                                      "-o", str(out), "--workers", "1", "--no-progress",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    records = {r["case_id"]: r for r in map(json.loads, (out / "totalsegmentator.jsonl").open())}
    assert sorted(records) == ["s0000", "s0001", "s0002"]
    for case_id, record in records.items():
        mask = nib.load(out / "totalsegmentator" / case_id / "mask.nii.gz")
        reference = reference_label_map(ts_root / FOLDER / case_id / "segmentations", V2_NAMES)
        assert nib.aff2axcodes(mask.affine) == ("R", "A", "S")
        assert set(np.unique(np.asanyarray(mask.dataobj)).tolist()) == set(
            np.unique(reference).tolist())
        labels = {item["name"]: item["values"] for item in record["labels"]}  # schema 3: a list
        assert labels["left rib"] == list(range(92, 104))
