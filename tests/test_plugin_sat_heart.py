"""MM-WHS MRI, MyoPS 2020, LAScarQS 2022 (tasks 1, 2) and CMRxMotion: YAML-only SAT-DS datasets.

Layouts, file names and values from SAT-DS ``processor.py``/``loader.py`` and its
``data/jsonl/<name>.jsonl`` (see the descriptors); fabricated by
``harmonize.plugins.fabricators.sat_heart``. Oracles: the fabricated files read back with
nibabel (unique values; ``nib.as_closest_canonical`` for the loader's RAS grid), never the
layout reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.sat_heart import (
    make_cmrxmotion,
    make_lascarqs22,
    make_mm_whs_mri,
    make_myops2020,
)
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.loader import HarmonizedDataset
from harmonize.manifest.build import read_manifest
from harmonize.plugin.layout import LayoutDataset

runner = CliRunner()
SAT_NAMES = {"mm-whs-mri": "MM_WHS_MRI", "myops2020": "MyoPS2020",
             "lascarqs22-task1": "LAScarQS22_Task1", "lascarqs22-task2": "LAScarQS22_Task2",
             "cmrxmotion": "CMRxMotion"}
MMWHS = {"myocardium": [205], "left atrium": [420], "left ventricle": [500],
         "right atrium": [550], "right ventricle": [600], "ascending aorta": [820],
         "pulmonary artery": [850], "heart atrium": [420, 550], "heart ventricle": [500, 600]}
MYOPS = {"right ventricle": [600], "myocardial scar": [2221], "myocardial edema": [1220],
         "myocardium": [200, 1220, 2221], "left ventricle": [500], "heart ventricle": [500, 600]}
CMRX = {"left ventricle": [1], "myocardium": [2], "right ventricle": [3], "heart ventricle": [1, 3]}


def cli(*args: str) -> dict:
    done = runner.invoke(app, [*args, "--format", "json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def manifest(dataset: str, root: Path, out: Path) -> dict[str, object]:
    done = runner.invoke(app, ["manifest", "-d", dataset, "-r", str(root), "-o", str(out)])
    assert done.exit_code == 0, done.output
    return {r.case_id: r for r in read_manifest(out / f"{dataset}.jsonl")}


def values_of(path: Path) -> set[int]:
    return set(np.unique(np.asarray(nib.load(path).dataobj)).tolist())


@pytest.mark.parametrize("dataset", list(SAT_NAMES))
def test_descriptor_alone_is_the_plugin(catalog, dataset):
    plugin = catalog.get(dataset)
    assert type(plugin) is LayoutDataset and plugin.source == "built-in"
    assert plugin.descriptor.sat_ds == (SAT_NAMES[dataset],) and plugin.descriptor.layout


def test_mm_whs_mri_keeps_the_release_values(tmp_path):
    root = make_mm_whs_mri(tmp_path, cases=(1001, 1002, 1020))
    records = manifest("mm-whs-mri", root, tmp_path / "m")
    assert sorted(records) == ["mr_train_1001", "mr_train_1002", "mr_train_1020"]
    for case_id, record in records.items():
        assert record.patient_id == case_id and record.official_split == "train"
        label = root / "MM-WHS" / "mr_train" / f"{case_id}_label.nii.gz"
        assert Path(record.mask).name == label.name
        assert values_of(label) == {0, 205, 420, 500, 550, 600, 820, 850}
        assert {n: record.labels[n] for n in MMWHS} == MMWHS


def test_myops_three_sequences_are_one_case_with_values_above_255(tmp_path):
    root = make_myops2020(tmp_path, cases=(101, 125), test_cases=(201,))
    records = manifest("myops2020", root, tmp_path / "m")
    assert sorted(records) == ["myops_training_101", "myops_training_125"]  # test20: not read
    for case_id, record in records.items():
        assert record.patient_id == case_id and record.official_split == "train"
        # the release's C0 / DE named by their canonical channels (channel_synonyms)
        assert record.channels == ["bSSFP", "LGE", "T2"]
        assert [Path(p).name for p in record.image] == [f"{case_id}_{s}.nii.gz"
                                                          for s in ("C0", "DE", "T2")]
        label = root / "train25_myops_gd" / f"{case_id}_gd.nii.gz"
        # as released: no uint8 wrap-around (SAT-DS's astype(uint8) reads 600 as 88)
        assert values_of(label) == {0, 200, 500, 600, 1220, 2221}
        assert {n: record.labels[n] for n in MYOPS} == MYOPS


def test_myops_run_and_loader_stack_the_sequences(tmp_path):
    root = make_myops2020(tmp_path, cases=(101,), test_cases=())
    out = tmp_path / "out"
    cli("run", "-d", "myops2020", "-r", str(root), "-o", str(out), "-w", "1", "--no-progress",
        "--spacing", "native")
    dataset = HarmonizedDataset(out / "myops2020.jsonl", patch_size=None, classes=list(MYOPS))
    sample = dataset[0]
    gt = np.asarray(nib.as_closest_canonical(
        nib.load(root / "train25_myops_gd" / "myops_training_101_gd.nii.gz")).dataobj)
    assert tuple(sample["image"].shape) == (3, *gt.shape)
    for k, name in enumerate(sample["classes"]):
        np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool),
                                      np.isin(gt, MYOPS[name]), err_msg=name)
    # every channel is its own sequence: LGE (DE) is brightest in the scar, bSSFP (C0) in blood
    image = sample["image"].numpy()
    scar, blood = gt == 2221, np.isin(gt, [500, 600])
    assert sample["channels"] == ["T2", "bSSFP", "LGE"]  # canonical order (channels.yaml)
    lge, bssfp = sample["channels"].index("LGE"), sample["channels"].index("bSSFP")
    assert image[lge][scar].mean() > image[lge][blood].mean()
    assert image[bssfp][blood].mean() > image[bssfp][scar].mean()


def _structure_masks(folder: Path, names: dict[str, str]) -> dict[str, np.ndarray]:
    return {cls: np.asarray(nib.as_closest_canonical(nib.load(folder / f"{f}.nii.gz")).dataobj) > 0
            for f, cls in names.items() if (folder / f"{f}.nii.gz").exists()}


@pytest.mark.parametrize("task", [1, 2])
def test_lascarqs_cavity_and_scar_come_back_exactly(task, tmp_path):
    """Scar and cavity overlap in part: each structure's voxels come back exactly."""
    dataset_id = f"lascarqs22-task{task}"
    root = make_lascarqs22(tmp_path, task1=(1, 10) if task == 1 else (),
                           task2=(2, 3) if task == 2 else ())
    found = cli("discover", "-d", dataset_id, "-r", str(root))
    want = ["train_1", "train_10"] if task == 1 else ["train_2", "train_3"]
    assert sorted(c["case_id"] for c in found["cases"]) == want and found["skipped"] == []
    out = tmp_path / "out"
    cli("run", "-d", dataset_id, "-r", str(root), "-o", str(out), "-w", "1", "--no-progress",
        "--spacing", "native")
    names = {"atriumSegImgMO": "left atrium", "scarSegImgM": "left atrial scar"}
    classes = ["left atrium", "left atrial scar"][:3 - task]
    loaded = HarmonizedDataset(out / f"{dataset_id}.jsonl", patch_size=None, classes=classes)
    assert len(loaded) == 2
    overlap_seen = False
    for i in range(len(loaded)):
        sample, record = loaded[i], loaded.records[i]
        assert record.patient_id == record.case_id and record.official_split == "train"
        folder = (root / "LAScarQS2022_released_training_data" / f"task{task}" / "train_data"
                  / record.case_id)
        masks = _structure_masks(folder, names)
        assert sorted(masks) == sorted(classes)
        # the written label map: each structure's voxels exactly, overlaps kept
        written = np.asarray(nib.as_closest_canonical(nib.load(out / record.mask)).dataobj)
        for name, mask in masks.items():
            np.testing.assert_array_equal(np.isin(written, record.labels[name]), mask,
                                          err_msg=f"{record.case_id} {name}")
        # the loader: a parent takes its parts (vocabulary: the scar is part of the atrium)
        parts = {"left atrium": masks["left atrium"] | masks.get("left atrial scar", False),
                 "left atrial scar": masks.get("left atrial scar")}
        for k, name in enumerate(sample["classes"]):
            np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool), parts[name],
                                          err_msg=f"{record.case_id} {name}")
        if task == 1:
            both = masks["left atrium"] & masks["left atrial scar"]
            outside = masks["left atrial scar"] & ~masks["left atrium"]
            overlap_seen |= bool(both.any() and outside.any())
    assert overlap_seen or task == 2  # the fixture really has scar inside and outside the cavity


def test_cmrxmotion_frames_scans_and_unlabelled_scans(tmp_path):
    root = make_cmrxmotion(tmp_path, volunteers=(1, 2), unlabelled=("P001-4",), scans=(1, 4))
    found = cli("discover", "-d", "cmrxmotion", "-r", str(root))
    skipped = sorted(Path(s["path"]).name for s in found["skipped"])
    assert skipped == ["P001-4-ED.nii.gz", "P001-4-ES.nii.gz"]
    assert all("no label file" in s["reason"] for s in found["skipped"])
    records = manifest("cmrxmotion", root, tmp_path / "m")
    want = sorted(f"P{v:03d}-{s}-{f}" for v in (1, 2) for s in (1, 4) for f in ("ED", "ES")
                  if (v, s) != (1, 4))
    assert sorted(records) == want
    splits: dict[str, set[str | None]] = {}
    for case_id, record in records.items():
        assert record.patient_id == case_id[:4] and record.official_split == "train"
        assert record.metadata.get("session") == case_id.split("-")[1]
        splits.setdefault(record.patient_id, set()).add(record.split)
        image = nib.load(root / "segmentation" / "data" / case_id[:6] / f"{case_id}.nii.gz")
        assert image.shape[-1] == 1 and len(image.shape) == 4  # as released: a trailing axis
        assert record.shape[:3] == list(image.shape[:3])
        label = root / "segmentation" / "data" / case_id[:6] / f"{case_id}-label.nii.gz"
        assert values_of(label) == {0, 1, 2, 3}
        assert {n: record.labels[n] for n in CMRX} == CMRX
    assert all(len(s) == 1 for s in splits.values())  # a volunteer's scans share one split
    # `harmonize run` drops the trailing axis: 3D images and masks (one labelled scan)
    one = make_cmrxmotion(tmp_path / "one", volunteers=(1,), unlabelled=(), scans=(1,))
    out = tmp_path / "out"
    cli("run", "-d", "cmrxmotion", "-r", str(one), "-o", str(out), "-w", "1", "--no-progress",
        "--spacing", "native")
    for record in read_manifest(out / "cmrxmotion.jsonl"):
        image = nib.load(out / record.image)
        assert image.shape == (20, 20, 6) and record.shape == [20, 20, 6]
        assert nib.load(out / record.mask).shape == (20, 20, 6)
