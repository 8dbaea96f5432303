"""RECIST dataset plugin on fabricated copies of both released layouts (final-formatted and final)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.recist import LESION_HU, make_recist, recist_lesions
from harmonize.plugins.recist import (
    CLASS_NAMES,
    normalize_subset,
    read_lesion_labels,
)

from harmonize.errors import DiscoveryError, LabelError
from harmonize.labels.vocabulary import load_vocabulary
from harmonize.manifest.build import build_manifest
from harmonize.manifest.splits import find_leaks
from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin

P1_BASE_THORAX = "001_1.3.12.2.1107.5.1.4.83504.300000000100112315883400041810"
P1_BASE_ABDOMEN = "001_1.3.12.2.1107.5.1.4.83504.300000000100212315883400041810"
P1_FOLLOW_ABDOMEN = "001_1.3.12.2.1107.5.1.4.83504.300000000100412315883400041810"
P7_ABDOMEN = "007_1.3.12.2.1107.5.1.4.83504.300000000700712315883400041810"


@pytest.fixture
def plugin(catalog):
    return catalog.get("recist")


@pytest.fixture
def formatted(tmp_path: Path) -> Path:
    return make_recist(tmp_path / "zenodo", n_patients=3)


def by_case(records):
    return {r.case_id: r for r in records}


def test_final_formatted_layout_records(plugin, formatted):
    assert formatted.name == "final-formatted"
    check = check_plugin(plugin, formatted)
    assert check.discovery.skipped == []
    records = by_case(check.records)
    assert len(records) == 7 and set(records) == set(recist_lesions(3))
    thorax = records[P1_BASE_THORAX]
    assert thorax.patient_id == "001" and thorax.official_split == "train"
    assert thorax.mask.endswith(f"images/thorax/train/masks/{P1_BASE_THORAX}.nii.gz")
    # instance values keep their gap (3 was removed by the release's small-object rule)
    assert thorax.labels["lesion"] == [1, 2, 4, 5]
    assert thorax.labels["lung metastasis"] == [1, 2] and thorax.labels["lung tumor"] == [1, 2, 4]
    assert thorax.labels["primary lung tumor"] == [4]
    assert thorax.labels["pathological lymph node"] == [5]
    assert thorax.labels["metastasis"] == [1, 2] and thorax.labels["liver metastasis"] == []
    assert thorax.labels["recist target lesion"] == [4]
    assert thorax.annotated == [*CLASS_NAMES, "recist target lesion"]
    meta = thorax.metadata
    assert meta["layout"] == "final-formatted" and meta["region"] == "thorax"
    assert meta["series_uid"] == P1_BASE_THORAX[4:]
    assert (meta["sex"], meta["age"], meta["diagnosis"], meta["histology"]) == (
        "F", 57, "lung cancer", "Adenocarcinoma")
    assert meta["study_date"] == "20230426" and meta["study_order"] == "baseline"
    assert meta["ct_window_name"] == "lung" and thorax.ct_window == [-1200.0, 200.0]
    assert "ct_window" not in meta  # a typed record field, not free metadata
    assert meta["lesion_labels"] == {"1": "m,lung", "2": "m,lung", "4": "t,lung", "5": "n,mediastinum"}
    assert meta["recist_targets"] == [{"value": 4, "alias": "A", "measurement_mm": 13}]
    abdomen = records[P1_BASE_ABDOMEN]
    assert abdomen.ct_window == [-135.0, 215.0]
    assert abdomen.labels["liver tumor"] == [1] and abdomen.labels["recist target lesion"] == [1, 2]
    assert records["003_1.3.12.2.1107.5.1.4.83504.300000000300512315883400041810"].metadata[
        "histology"] is None  # empty NCIt term in patients.csv


def test_studies_of_one_patient_share_the_patient_and_never_straddle_splits(plugin, formatted, tmp_path):
    result = build_manifest(plugin, discover(plugin, formatted), tmp_path / "manifests", seed=5)
    assert result.errors == []
    records = by_case(result.records)
    patient1 = [r for r in result.records if r.patient_id == "001"]
    assert len(patient1) == 4
    assert {(r.metadata["study_order"], r.metadata["region"]) for r in patient1} == {
        ("baseline", "thorax"), ("baseline", "abdomen"),
        ("follow-up-1", "thorax"), ("follow-up-1", "abdomen"),
    }
    assert len({r.split for r in patient1}) == 1
    assert {r.split for r in result.records if r.patient_id == "003"} == {"test"}
    assert find_leaks(result.records) == []
    splits = json.loads((tmp_path / "manifests" / "splits.json").read_text())
    assert "recist:003" in splits["test"]
    # follow-up target lesions keep their alias while the mask value changes
    assert records[P1_FOLLOW_ABDOMEN].metadata["recist_targets"] == [
        {"value": 1, "alias": "C", "measurement_mm": 6}, {"value": 3, "alias": "B", "measurement_mm": 10}]
    # a study without RECIST rows: order from the study dates, target lesions not annotated
    late = records[P7_ABDOMEN]
    assert late.metadata["study_order"] == "follow-up-1"
    assert "recist target lesion" not in late.labels and late.metadata["recist_targets"] == []
    assert late.labels["rib metastasis"] == [2] and late.labels["bone metastasis"] == [2]


def test_unformatted_layout_gives_the_same_cases(plugin, formatted, tmp_path):
    final = make_recist(tmp_path / "old", layout="unformatted", n_patients=3)
    assert final.name == "final"
    assert (final / "images" / "train" / "images" / f"{P1_BASE_THORAX[4:]}.nii.gz").is_file()
    old = by_case(check_plugin(plugin, final).records)
    new = by_case(check_plugin(plugin, formatted).records)
    assert set(old) == set(new)
    for case_id, record in old.items():
        assert record.patient_id == new[case_id].patient_id
        assert record.labels == new[case_id].labels
        assert record.official_split == new[case_id].official_split
        meta = {k: v for k, v in record.metadata.items() if k != "layout"}
        assert meta == {k: v for k, v in new[case_id].metadata.items() if k != "layout"}
        assert record.metadata["layout"] == "final"


def test_instances_carry_features_that_match_the_fabricated_lesions(plugin, formatted):
    records = by_case(check_plugin(plugin, formatted).records)
    truth = recist_lesions(3)
    checked = 0
    for case_id, record in records.items():
        instances = record.extra["instances"]
        assert [i["value"] for i in instances] == [lesion.value for lesion in truth[case_id]]
        pixel = record.spacing[0]
        for inst, lesion in zip(instances, truth[case_id]):
            a, b, _ = lesion.semi_axes
            assert inst["label"] == lesion.label and inst["voxels"] >= 50
            assert abs(inst["long_axis_mm"] - 2 * a) <= 1.5 * pixel
            assert abs(inst["short_axis_mm"] - 2 * b) <= 1.5 * pixel
            # thorax images are stored with scl_inter -1024: features are in HU
            assert inst["mean_hu"] == pytest.approx(LESION_HU[lesion.label[0]], abs=3)
            if lesion.alias:
                target = inst["recist_target"]
                measured = inst["short_axis_mm" if lesion.label.startswith("n,") else "long_axis_mm"]
                assert target["alias"] == lesion.alias
                assert abs(measured - target["measurement_mm"]) <= 1.5
                checked += 1
            else:
                assert inst["recist_target"] is None
    assert checked == 8
    node = records[P1_BASE_THORAX].extra["instances"][3]
    assert (node["type"], node["site"], node["class"]) == (
        "lymph node", "mediastinum", "pathological lymph node")


def test_subset_spellings_are_normalised(plugin, formatted):
    assert [normalize_subset(s) for s in ("training", "train", "Test", "testing", "val")] == [
        "train", "train", "test", "test", None]
    patients = formatted / "metadata" / "patients.csv"
    patients.write_text(patients.read_text().replace("training", "train"))  # notebook spelling
    found = discover(plugin, formatted)
    assert len(found.cases) == 7 and {c.official_split for c in found.cases} == {"train", "test"}
    patients.write_text(patients.read_text().replace(",train,", ",validation,", 1))
    broken = discover(plugin, formatted)
    assert broken.cases == [] and "unknown subset 'validation'" in broken.errors[0].message
    assert broken.errors[0].file.endswith("patients.csv")


def _rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_bad_lesion_labels_are_reported_with_the_file(plugin, formatted, tmp_path):
    labels = formatted / "images" / "thorax" / "train" / "labels"
    (labels / f"{P1_BASE_THORAX}.json").unlink()
    unknown = labels / f"{'007_1.3.12.2.1107.5.1.4.83504.300000000700612315883400041810'}.json"
    _rewrite(unknown, "m,lung", "m,brain")
    with pytest.raises(LabelError, match="unknown lesion class 'm,brain'") as info:
        read_lesion_labels(unknown)
    assert info.value.file == str(unknown) and "LESION_CLASSES" in info.value.hint
    found = discover(plugin, formatted)
    skipped = {s.path.name: s for s in found.skipped}
    assert "lesion labels JSON is missing" in skipped[f"{P1_BASE_THORAX}.json"].reason
    assert "unknown lesion class 'm,brain'" in skipped[unknown.name].reason
    assert skipped[unknown.name].case_id and skipped[unknown.name].hint
    assert len(found.cases) == 5

    # a value in the mask that the JSON does not list: a label error naming the mask
    p3 = "003_1.3.12.2.1107.5.1.4.83504.300000000300512315883400041810"
    test_labels = formatted / "images" / "abdomen" / "test" / "labels" / f"{p3}.json"
    test_labels.write_text(json.dumps({"1": "m,liver", "2": "m,liver"}))
    result = build_manifest(plugin, discover(plugin, formatted), tmp_path / "m")
    [error] = [e for e in result.errors if e.case == p3]
    assert error.kind == "label" and "[3]" in error.message
    assert error.file.endswith(f"masks/{p3}.nii.gz")
    # a RECIST row naming a value the JSON lacks is caught at discovery
    abdomen_labels = formatted / "images" / "abdomen" / "train" / "labels" / f"{P1_BASE_ABDOMEN}.json"
    abdomen_labels.write_text(json.dumps({"1": "m,liver"}))
    skipped = {s.path.name: s.reason for s in discover(plugin, formatted).skipped}
    assert "names lesion value 2 (alias C)" in skipped[abdomen_labels.name]


def test_inconsistent_files_are_skipped_with_reasons(plugin, formatted):
    train = formatted / "images" / "abdomen" / "train"
    image = train / "images" / f"{P7_ABDOMEN}.nii.gz"
    image.rename(train / "images" / f"009_{P7_ABDOMEN[4:]}.nii.gz")  # prefix != series.json
    (train / "images" / "._x.nii.gz").write_bytes(b"\0")
    (train / "images" / "scan.nii.gz").write_bytes(b"\0")
    (train / "masks" / f"{P1_BASE_ABDOMEN}.nii.gz").unlink()
    (formatted / "README.txt").write_text("notes")
    p1_follow_thorax = "001_1.3.12.2.1107.5.1.4.83504.300000000100312315883400041810"
    (formatted / "images" / "thorax" / "train" / "images" / f"{p1_follow_thorax}.nii.gz").unlink()
    found = discover(plugin, formatted)
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "says 7" in reasons[f"009_{P7_ABDOMEN[4:]}.nii.gz"]
    assert "hidden" in reasons["._x.nii.gz"]
    assert "file name is not" in reasons["scan.nii.gz"]
    assert "mask is missing" in reasons[f"{P1_BASE_ABDOMEN}.nii.gz"]
    assert "no image" in reasons[f"{P7_ABDOMEN}.nii.gz"]  # the orphaned mask
    assert "not part of the release layout" in reasons["README.txt"]
    assert f"series {p1_follow_thorax[4:]} is listed in series.json" in reasons["series.json"]
    assert "no image" in reasons[f"{p1_follow_thorax}.json"]
    assert len(found.cases) == 4
    # a patient moved to the other subset folder disagrees with patients.csv
    test = formatted / "images" / "abdomen" / "test"
    for kind in ("images", "masks", "labels"):
        for f in (test / kind).iterdir():
            f.rename(train / kind / f.name)
    moved = discover(plugin, formatted)
    assert any("patients.csv puts patient 3 in 'test'" in s.reason for s in moved.skipped)


def test_missing_or_malformed_metadata_is_a_clear_error(plugin, formatted, tmp_path):
    windows = formatted / "metadata" / "windows_mapping.json"
    mapping = json.loads(windows.read_text())
    mapping[next(iter(mapping))] = "soft tissue"
    windows.write_text(json.dumps(mapping))
    with pytest.raises(DiscoveryError, match="window 'soft tissue'"):
        list(plugin.discover(formatted))
    (formatted / "metadata" / "series.json").unlink()
    result = discover(plugin, formatted)
    assert result.cases == [] and result.errors[0].file.endswith("series.json")
    with pytest.raises(DiscoveryError, match="no images/ and metadata/"):
        list(plugin.discover(tmp_path))
    # the parent folder of final-formatted/ is accepted as the root
    fresh = make_recist(tmp_path / "again", n_patients=1)
    assert len(discover(plugin, fresh.parent).cases) == 4


def test_recist_csv_columns_and_values_are_as_released(formatted):
    with open(formatted / "recist_measurements.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "patient_id", "subset", "study_date", "study_uuid", "uuid", "filename", "region",
        "final_3d_objects", "lesion_label_value", "lesion_label_alias", "recist_measurement_mm",
        "study_order"]
    assert {r["subset"] for r in rows} == {"training", "test"}
    assert all(r["filename"] == f"{int(r['patient_id']):03d}_{r['uuid']}.nii.gz" for r in rows)
    image = nib.load(formatted / "images" / "thorax" / "train" / "images" / f"{P1_BASE_THORAX}.nii.gz")
    assert image.get_data_dtype() == np.int16 and nib.aff2axcodes(image.affine) == ("L", "A", "S")
    assert image.dataobj.inter == -1024  # raw stored values, as dcm2niix writes them


def test_catalog_entry_and_demo_fabricator(catalog, tmp_path):
    plugin = catalog.get("recist")
    desc = plugin.descriptor
    assert desc.licence == "CC BY 4.0" and "10.5281/zenodo.17788162" in desc.download
    assert plugin.can_fabricate and plugin.demo
    vocabulary = load_vocabulary()
    assert plugin.label_names == [*CLASS_NAMES, "recist target lesion"]
    assert all(vocabulary.resolve(name) == name for name in plugin.label_names)
    assert "liver tumor" in vocabulary.ancestors("liver metastasis")
    assert "lesion" in vocabulary.ancestors("pathological lymph node")
    assert vocabulary.resolve("adenopathy") == "pathological lymph node"
    root = plugin.fabricate(tmp_path / "demo", n_cases=4, seed=0)
    check = check_plugin(plugin, root)
    assert len({r.patient_id for r in check.records}) == 4 and len(check.records) == 8


def test_harmonize_run_uses_series_windows_and_writes_instances(tmp_path):
    from harmonize.engine.normalize import Settings
    from harmonize.engine.pipeline import Target, run

    root = make_recist(tmp_path / "src", n_patients=2)
    result = run([Target("recist", root)], tmp_path / "out", Settings(), workers=1, progress=False)
    assert result.errors == []
    records = by_case(result.records)
    assert len(records) == 5
    thorax, abdomen = records[P1_BASE_THORAX], records[P1_BASE_ABDOMEN]
    assert thorax.extra["intensity"]["clip"] == [-1200.0, 200.0]
    assert abdomen.extra["intensity"]["clip"] == [-135.0, 215.0]
    assert {thorax.extra["intensity"]["window_source"], abdomen.extra["intensity"]["window_source"]} == {"series"}
    # features are measured on the source volumes (HU), not on the scaled outputs
    assert [i["value"] for i in thorax.extra["instances"]] == [1, 2, 4, 5]
    assert thorax.extra["instances"][2]["mean_hu"] == pytest.approx(LESION_HU["t"], abs=3)
    mask = nib.load(tmp_path / "out" / thorax.mask)
    assert sorted(np.unique(np.asarray(mask.dataobj)).tolist()) == [0, 1, 2, 4, 5]  # never relabelled
