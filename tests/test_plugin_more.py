"""PI-CAI, TopCoW 2023 (CTA and MRA) and ATM'22: YAML-only datasets outside SAT-DS.

Layouts and values as the descriptors cite them (picai_labels README, TopCoW_Eval_Metrics
constants.py, the ATM'22 training layout). Oracles: the fabricated files read back with
SimpleITK / nibabel and the fabricator's own tables, never the layout reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from harmonize.plugins.fabricators.more import (
    AORTA_ZONES,
    PICAI_STUDIES,
    TOPCOW_VALUES,
    make_aortaseg24,
    make_atm22,
    make_lnq2023,
    make_picai,
    make_topcow,
)
from harmonize.plugins.fabricators.more_dicom import IRCADB_PATIENTS, make_ircadb
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.loader import HarmonizedDataset
from harmonize.manifest.build import read_manifest
from harmonize.plugin.layout import LayoutDataset

runner = CliRunner()
DATASETS = ["pi-cai", "topcow2023-ct", "topcow2023-mr", "atm22", "ircadb", "lnq2023",
            "aortaseg24"]
TOPCOW_NAMES = {1: "basilar artery", 2: "right posterior cerebral artery",
                3: "left posterior cerebral artery", 4: "right internal carotid artery",
                5: "right middle cerebral artery", 6: "left internal carotid artery",
                7: "left middle cerebral artery", 8: "right posterior communicating artery",
                9: "left posterior communicating artery", 10: "anterior communicating artery",
                11: "right anterior cerebral artery", 12: "left anterior cerebral artery",
                15: "third a2 segment"}


def invoke(*args: str) -> str:
    done = runner.invoke(app, list(args))
    assert done.exit_code == 0, done.output
    return done.stdout


def manifest(dataset: str, root: Path, out: Path, *extra: str) -> dict[str, object]:
    invoke(*extra, "manifest", "-d", dataset, "-r", str(root), "-o", str(out))
    return {r.case_id: r for r in read_manifest(out / f"{dataset}.jsonl")}


@pytest.mark.parametrize("dataset", DATASETS)
def test_descriptor_alone_is_the_plugin(catalog, dataset):
    plugin = catalog.get(dataset)
    assert type(plugin) is LayoutDataset and plugin.source == "built-in"
    assert plugin.descriptor.sat_ds == () and plugin.descriptor.layout


def itk_values(path: Path) -> set[int]:
    return set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).tolist())


def test_picai_studies_of_one_patient_labels_from_the_extra_root(tmp_path):
    images, labels = make_picai(tmp_path)
    extra = ("--extra-root", f"picai_labels={labels}")
    found = json.loads(invoke(*extra, "discover", "-d", "pi-cai", "-r", str(images),
                              "--format", "json"))
    skipped = {Path(s["path"]).name for s in found["skipped"]}
    assert skipped == {"10005_1000005_t2w.mha"}  # no human_expert delineation: not used
    records = manifest("pi-cai", images, tmp_path / "m", *extra)
    want = {f"{p}_{s}": (p, v) for _, p, s, v in PICAI_STUDIES if v is not None}
    assert sorted(records) == sorted(want)
    for case_id, record in records.items():
        patient, values = want[case_id]
        assert record.patient_id == patient and record.official_split == "train"
        assert Path(record.image).name == f"{case_id}_t2w.mha"  # T2W only: ADC/HBV off-grid
        assert list(record.channels) == ["T2"]
        mask = labels / "csPCa_lesion_delineations/human_expert/resampled" / f"{case_id}.nii.gz"
        assert itk_values(mask) == {0, *values}
        assert record.labels == {"prostate tumor": [1, 2, 3, 4, 5]}
        t2w = sitk.ReadImage(str(next(images.glob(f"*/{patient}/{case_id}_t2w.mha"))))
        assert record.spacing == pytest.approx(t2w.GetSpacing(), abs=1e-6)
    # both studies of patient 11054 land in one split
    assert records["11054_1001074"].split == records["11054_1001075"].split


def test_picai_run_and_loader_give_the_lesions(tmp_path):
    images, labels = make_picai(tmp_path)
    out = tmp_path / "out"
    invoke("--extra-root", f"picai_labels={labels}", "run", "-d", "pi-cai", "-r", str(images),
           "-o", str(out), "-w", "1", "--no-progress")
    dataset = HarmonizedDataset(out / "pi-cai.jsonl", patch_size=None, classes=["prostate tumor"])
    assert len(dataset) == 3
    for i in range(len(dataset)):
        sample, record = dataset[i], dataset.records[i]
        mask = labels / "csPCa_lesion_delineations/human_expert/resampled" / f"{record.case_id}.nii.gz"
        values = np.asarray(nib.as_closest_canonical(nib.load(mask)).dataobj)
        np.testing.assert_array_equal(sample["mask"][0].numpy().astype(bool), values > 0,
                                      err_msg=record.case_id)
        lesions = {v for _, p, s, v in PICAI_STUDIES if f"{p}_{s}" == record.case_id}.pop()
        assert int(sample["mask"][0].sum()) == int(np.isin(values, lesions).sum())
        assert bool(sample["label_present"][0])


@pytest.mark.parametrize("modality", ["ct", "mr"])
def test_topcow_whole_scans_with_multiclass_labels(tmp_path, modality):
    root = make_topcow(tmp_path)
    records = manifest(f"topcow2023-{modality}", root, tmp_path / "m")
    assert sorted(records) == [f"topcow_{modality}_whole_001", f"topcow_{modality}_whole_002"]
    batch = root / "topcow_batch-1_40pairMRCT_30062023"
    for case_id, record in records.items():
        assert record.patient_id == case_id[-3:] and record.official_split == "train"
        assert Path(record.mask).parent.name == "mul_labelsTr"
        values = set(np.unique(np.asarray(nib.load(batch / "mul_labelsTr" /
                                                   f"{case_id}.nii.gz").dataobj)).tolist())
        expected = set(TOPCOW_VALUES) if case_id.endswith("1") else set(TOPCOW_VALUES) - {10, 15}
        assert values == {0, *expected}
        assert {record.labels[TOPCOW_NAMES[v]][0] for v in TOPCOW_VALUES} == set(TOPCOW_VALUES)
        assert record.labels["circle of willis"] == sorted(TOPCOW_VALUES)
        image = nib.load(batch / "imagesTr" / f"{case_id}_0000.nii.gz")
        assert tuple(record.shape[:3]) == image.shape  # the whole scan, not the _roi_ crop
    # the folders' _roi_ and other-modality labels are not strays; a label without its image is
    (batch / "imagesTr" / f"topcow_{modality}_whole_002_0000.nii.gz").unlink()
    found = json.loads(invoke("discover", "-d", f"topcow2023-{modality}", "-r", str(root),
                              "--format", "json"))
    assert [Path(s["path"]).name for s in found["skipped"]] == [f"topcow_{modality}_whole_002.nii.gz"]
    assert found["skipped"][0]["reason"] == "label file without a matching image"


def test_atm22_label_keeps_the_image_suffix_and_case_164_is_excluded(tmp_path):
    root = make_atm22(tmp_path)
    assert (root / "TrainBatch1" / "imagesTr" / "ATM_164_0000.nii.gz").is_file()
    found = json.loads(invoke("discover", "-d", "atm22", "-r", str(root), "--format", "json"))
    assert [(Path(s["path"]).name, s["case"]) for s in found["skipped"]] == [
        ("ATM_164_0000.nii.gz", "ATM_164")]
    assert "excluded by the descriptor" in found["skipped"][0]["reason"]
    records = manifest("atm22", root, tmp_path / "m")
    assert sorted(records) == ["ATM_001", "ATM_002"]
    for case_id, record in records.items():
        assert record.patient_id == case_id and record.official_split == "train"
        label = root / "TrainBatch1" / "labelsTr" / f"{case_id}_0000.nii.gz"
        assert Path(record.mask).name == label.name
        assert set(np.unique(np.asarray(nib.load(label).dataobj)).tolist()) == {0, 1}
        assert record.labels == {"airway": [1]}


def dicom_mask(folder: Path) -> np.ndarray:
    """A DICOM mask series as a boolean (X, Y, Z) array in RAS voxel order (SimpleITK reads it
    in LPS index order with an identity direction here, so x and y are flipped)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    assert np.allclose(image.GetDirection(), np.eye(3).ravel())
    return (sitk.GetArrayFromImage(image).transpose(2, 1, 0) > 0)[::-1, ::-1, :]


def test_ircadb_dicom_structure_series_united_per_class(tmp_path):
    root = make_ircadb(tmp_path)
    found = json.loads(invoke("discover", "-d", "ircadb", "-r", str(root), "--format", "json"))
    assert {Path(s["path"]).name for s in found["skipped"]} == {"bone", "tumor"}  # not liver
    out = tmp_path / "out"
    invoke("run", "-d", "ircadb", "-r", str(root), "-o", str(out), "-w", "1", "--no-progress")
    classes = ["liver", "liver tumor", "portal vein"]
    dataset = HarmonizedDataset(out / "ircadb.jsonl", patch_size=None, classes=classes)
    assert sorted(r.case_id for r in dataset.records) == ["3Dircadb1.1", "3Dircadb1.7"]
    for i in range(len(dataset)):
        sample, record = dataset[i], dataset.records[i]
        masks = root / record.case_id / "MASKS_DICOM"
        number = int(record.case_id.rsplit(".", 1)[1])
        tumours = [n for n in IRCADB_PATIENTS[number] if n.startswith("livertumor")]
        want = {"liver": dicom_mask(masks / "liver"), "portal vein": dicom_mask(masks / "portalvein")}
        if tumours:
            want["liver tumor"] = np.logical_or.reduce([dicom_mask(masks / n) for n in tumours])
        for k, name in enumerate(classes):
            assert bool(sample["label_present"][k]) == (name in want), (record.case_id, name)
            if name in want:
                np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool), want[name],
                                              err_msg=f"{record.case_id} {name}")
        assert (want["liver"] & want["portal vein"]).any()  # overlap kept: both come back


def test_lnq2023_nrrd_pairs_and_the_off_size_seg_is_an_error(tmp_path):
    root = make_lnq2023(tmp_path)
    done = runner.invoke(app, ["manifest", "-d", "lnq2023", "-r", str(root), "-o",
                               str(tmp_path / "m")])
    assert "lnq2023-train-0003-seg.nrrd" in done.output  # refused, named, never resampled
    records = {r.case_id: r for r in read_manifest(tmp_path / "m" / "lnq2023.jsonl")}
    assert sorted(records) == ["lnq2023-train-0001", "lnq2023-train-0002"]  # val/ not read
    for case_id, record in records.items():
        assert record.official_split == "train" and Path(record.mask).name == f"{case_id}-seg.nrrd"
        assert itk_values(root / "train" / f"{case_id}-seg.nrrd") == {0, 1}
        assert record.labels == {"mediastinal lymph node": [1]}
    seg, ct = (sitk.ReadImage(str(root / "train" / f"lnq2023-train-0003-{k}.nrrd"))
               for k in ("seg", "ct"))
    assert seg.GetSize() != ct.GetSize()


def test_aortaseg24_zones_and_branches(tmp_path):
    root = make_aortaseg24(tmp_path)
    records = manifest("aortaseg24", root, tmp_path / "m")
    assert sorted(records) == ["subject001", "subject002"]
    for case_id, record in records.items():
        values = itk_values(root / "masks" / f"{case_id}_label.mha")
        missing = {15} if case_id == "subject002" else set()
        assert values == set(range(24)) - missing
        assert record.labels["aorta"] == sorted(AORTA_ZONES)
        assert record.labels["right renal artery"] == [15]
        assert record.labels["left aortic zone 11"] == [23]
        assert record.labels["superior mesenteric artery"] == [13]
        assert record.official_split == "train" and record.spacing == pytest.approx((1, 1, 1))
