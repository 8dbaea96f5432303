"""The MSD plugin (plugins/msd.py) on fabricated task folders in the released layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.msd import TASKS as SPECS
from harmonize.plugins.fabricators.msd import make_msd_task
from harmonize.plugins.msd import TASKS, MSDTask, read_dataset_json, strip_trailing_commas

from harmonize.errors import DiscoveryError, LabelError
from harmonize.manifest.records import Case
from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin

IDS = {folder: dataset_id for folder, dataset_id, _ in TASKS}


def plugin_for(catalog, folder: str) -> MSDTask:
    plugin = catalog.get(IDS[folder])
    assert isinstance(plugin, MSDTask)
    return plugin


def listed_names(task: Path, key: str) -> list[str]:
    info = json.loads((task / "dataset.json").read_text(encoding="utf-8"))
    entries = info[key]
    return sorted(Path(e["image"] if isinstance(e, dict) else e).name for e in entries)


#: canonical channels (registry/channels.yaml) of the MR tasks, in the release's channel order
CANONICAL = {
    "Task01_BrainTumour": ["FLAIR", "T1", "T1 contrast-enhanced", "T2"],
    "Task02_Heart": ["MR"],
    "Task04_Hippocampus": ["T1"],  # descriptor channel_synonyms {MRI: T1}
    "Task05_Prostate": ["T2", "ADC"],
}


@pytest.mark.parametrize("folder", [folder for folder, _, _ in TASKS])
def test_every_task_discovers_and_passes_check_plugin(catalog, tmp_path, folder):
    plugin = plugin_for(catalog, folder)
    task = make_msd_task(tmp_path, task=folder, n_train=3, n_test=1, seed=1)
    report = check_plugin(plugin, task)

    cases = {c.case_id: c for c in report.discovery.cases}
    train = [n.removesuffix(".nii.gz") for n in listed_names(task, "training")]
    test = [n.removesuffix(".nii.gz") for n in listed_names(task, "test")]
    assert sorted(cases) == sorted(train + test)
    assert len(report.records) == 4
    for record in report.records:
        assert record.dataset == IDS[folder]
        assert record.patient_id == record.case_id
        assert record.channels == CANONICAL.get(folder, ["CT"])
        assert record.source["channels"] == SPECS[folder].channels
        assert record.metadata["msd_task"] == folder
        if record.case_id in train:
            assert record.official_split == "train"
            assert record.mask.endswith(f"{folder}/labelsTr/{record.case_id}.nii.gz")
            assert record.labels == {k: list(v) for k, v in plugin.descriptor.classes.items()}
        else:
            assert record.official_split == record.split == "test"
            assert record.mask is None and record.labels == {} and record.annotated == []
    # every ._ file (one per file of the release) is reported, nothing else is skipped
    skipped = {s.path for s in report.discovery.skipped}
    apple = set(task.rglob("._*"))
    assert skipped == apple and len(apple) == 8
    assert all("AppleDouble" in s.reason for s in report.discovery.skipped)


def test_fabricated_labels_hold_every_declared_value(catalog, tmp_path):
    for folder, dataset_id, _ in TASKS:
        task = make_msd_task(tmp_path, task=folder, n_train=2, n_test=0, appledouble=False)
        declared = set(catalog.get(dataset_id).descriptor.values)
        for label in sorted((task / "labelsTr").glob("*.nii.gz")):
            assert set(np.unique(np.asanyarray(nib.load(label).dataobj))) == declared, label


def test_labels_map_to_the_vocabulary(catalog, tmp_path):
    liver = check_plugin(plugin_for(catalog, "Task03_Liver"),
                         make_msd_task(tmp_path, task="Task03_Liver", n_train=1, n_test=0))
    assert liver.records[0].labels == {"liver": [1, 2], "liver tumor": [2]}
    brain = check_plugin(plugin_for(catalog, "Task01_BrainTumour"),
                         make_msd_task(tmp_path, task="Task01_BrainTumour", n_train=1, n_test=0))
    assert brain.records[0].labels == {
        "brain tumor": [1, 2, 3], "brain tumor core": [2, 3], "enhancing brain tumor": [3],
        "necrotic brain tumor core": [2], "peritumoral edema": [1],
    }
    prostate = check_plugin(plugin_for(catalog, "Task05_Prostate"),
                            make_msd_task(tmp_path, task="Task05_Prostate", n_train=1, n_test=0))
    # dataset.json: 1 PZ, 2 TZ (SAT-DS has it backwards)
    assert prostate.records[0].labels["prostate peripheral zone"] == [1]
    assert prostate.records[0].labels["prostate transition zone"] == [2]


@pytest.mark.parametrize(("folder", "channels"), [
    ("Task01_BrainTumour", ["FLAIR", "T1w", "t1gd", "T2w"]),
    ("Task05_Prostate", ["T2", "ADC"]),
])
def test_4d_images_keep_their_channel_names(catalog, tmp_path, folder, channels):
    report = check_plugin(plugin_for(catalog, folder), make_msd_task(tmp_path, task=folder))
    for case in report.discovery.cases:
        assert case.channel_names == tuple(channels) and len(case.images) == 1
    for record in report.records:
        assert record.channels == CANONICAL[folder] and record.source["channels"] == channels
        assert len(record.shape) == 4 and record.shape[3] == len(channels)
        if record.mask is not None:
            label = nib.load(tmp_path / folder / "labelsTr" / f"{record.case_id}.nii.gz")
            assert label.ndim == 3 and label.shape == tuple(record.shape[:3])


def test_imagests_cases_are_official_test_without_labels(catalog, tmp_path):
    task = make_msd_task(tmp_path, task="Task09_Spleen", n_train=2, n_test=2)
    found = discover(plugin_for(catalog, "Task09_Spleen"), task)
    tests = [c for c in found.cases if c.official_split == "test"]
    assert sorted(c.case_id for c in tests) == ["spleen_1", "spleen_4"]
    assert all(c.label is None and c.images[0].parent.name == "imagesTs" for c in tests)
    assert all(c.official_split == "train" and c.label is not None
               for c in found.cases if c not in tests)


def test_ids_are_read_not_built(catalog, tmp_path):
    """Zero padding differs per task and ids are not contiguous: names come from the listing."""
    expected = {
        "Task03_Liver": ["liver_0", "liver_1", "liver_132"],
        "Task05_Prostate": ["prostate_00", "prostate_01", "prostate_08"],
        "Task06_Lung": ["lung_001", "lung_003", "lung_002"],
        "Task09_Spleen": ["spleen_2", "spleen_3", "spleen_1"],
    }
    for folder, names in expected.items():
        task = make_msd_task(tmp_path, task=folder, n_train=2, n_test=1, appledouble=False)
        found = discover(plugin_for(catalog, folder), task)
        assert sorted(c.case_id for c in found.cases) == sorted(names)


def test_appledouble_files_are_skipped_and_reported(catalog, tmp_path):
    task = make_msd_task(tmp_path, task="Task03_Liver", n_train=2, n_test=1)
    found = discover(plugin_for(catalog, "Task03_Liver"), task)
    reported = sorted(s.path.relative_to(task).as_posix() for s in found.skipped)
    assert reported == [
        "._dataset.json", "imagesTr/._liver_0.nii.gz", "imagesTr/._liver_1.nii.gz",
        "imagesTs/._liver_132.nii.gz", "labelsTr/._liver_0.nii.gz", "labelsTr/._liver_1.nii.gz",
    ]
    assert not any(p.name.startswith("._") for c in found.cases for p in c.files())
    assert (task / "imagesTr" / "._liver_0.nii.gz").read_bytes()[:4] == b"\x00\x05\x16\x07"


def test_lenient_dataset_json_with_trailing_commas_and_relase(catalog, tmp_path):
    task = make_msd_task(tmp_path, task="Task05_Prostate", n_train=2, n_test=1)
    path = task / "dataset.json"
    text = path.read_text(encoding="utf-8")
    assert '"relase": "1.0 04/05/2018"' in text
    text = text.replace('"TZ"\n }', '"TZ",\n }').replace('.nii.gz"}]', '.nii.gz"},]')
    text = text.replace('.nii.gz"]\n}', '.nii.gz",]\n}')
    assert text.count(",\n }") == 1 and '},]' in text and '",]' in text
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError):
        json.loads(text)
    info = read_dataset_json(path, dataset="msd-prostate")
    assert info["release"] == "1.0 04/05/2018" and info["labels"]["2"] == "TZ"
    found = discover(plugin_for(catalog, "Task05_Prostate"), task)
    assert not found.errors and len(found.cases) == 3
    assert found.cases[0].metadata["msd_release"] == "1.0 04/05/2018"


def test_strip_trailing_commas_leaves_strings_alone():
    text = '{"a": "x,]", "b": [1, 2,], "c": {"d": "\\",}",},}'
    assert json.loads(strip_trailing_commas(text)) == {"a": "x,]", "b": [1, 2], "c": {"d": '",}'}}


def test_root_may_be_the_task_folder_or_its_parent(catalog, tmp_path):
    make_msd_task(tmp_path, task="Task01_BrainTumour", n_train=1, n_test=1, appledouble=False)
    make_msd_task(tmp_path, task="Task03_Liver", n_train=2, n_test=1, appledouble=False)
    liver, brain = plugin_for(catalog, "Task03_Liver"), plugin_for(catalog, "Task01_BrainTumour")
    from_parent = discover(liver, tmp_path)
    from_task = discover(liver, tmp_path / "Task03_Liver")
    assert [c.case_id for c in from_parent.cases] == [c.case_id for c in from_task.cases]
    assert [c.case_id for c in from_parent.cases] == ["liver_0", "liver_1", "liver_132"]
    assert [c.case_id for c in discover(brain, tmp_path).cases] == ["BRATS_001", "BRATS_485"]
    with pytest.raises(DiscoveryError, match="Task01_BrainTumour, Task03_Liver"):
        list(plugin_for(catalog, "Task09_Spleen").discover(tmp_path))


def test_wrong_task_folder_is_a_label_error_naming_dataset_json(catalog, tmp_path):
    heart = make_msd_task(tmp_path, task="Task02_Heart", n_train=1, n_test=0)
    liver = plugin_for(catalog, "Task03_Liver")
    with pytest.raises(LabelError) as info:
        list(liver.discover(heart))
    assert info.value.file == str(heart / "dataset.json")
    assert "left atrium" in info.value.message and "Task03_Liver" in str(info.value)
    found = discover(liver, heart)
    assert not found.cases and found.errors[0].kind == "label"
    assert found.errors[0].file == str(heart / "dataset.json")


def test_renamed_labels_in_dataset_json_are_caught(catalog, tmp_path):
    task = make_msd_task(tmp_path, task="Task05_Prostate", n_train=1, n_test=0)
    path = task / "dataset.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"PZ"', '"XX"'), encoding="utf-8")
    with pytest.raises(LabelError, match="XX"):
        list(plugin_for(catalog, "Task05_Prostate").discover(task))


def test_label_value_outside_the_task_is_a_label_error_naming_the_file(catalog, tmp_path):
    task = make_msd_task(tmp_path, task="Task09_Spleen", n_train=2, n_test=0, appledouble=False)
    bad = task / "labelsTr" / "spleen_3.nii.gz"
    img = nib.load(bad)
    data = np.asanyarray(img.dataobj).copy()
    data[0, 0, 0] = 2  # spleen has only label 1
    nib.save(nib.Nifti1Image(data, img.affine, img.header), bad)
    report = check_plugin(plugin_for(catalog, "Task09_Spleen"), task, allow_errors=True)
    assert [r.case_id for r in report.records] == ["spleen_2"]
    (error,) = report.errors
    assert error.kind == "label" and error.case == "spleen_3" and error.file == str(bad)
    assert "[2]" in error.message


def test_listing_and_dataset_json_are_cross_checked(catalog, tmp_path):
    task = make_msd_task(tmp_path, task="Task03_Liver", n_train=4, n_test=2, appledouble=False)
    (task / "imagesTr" / "liver_1.nii.gz").unlink()                       # listed, image missing
    (task / "labelsTr" / "liver_2.nii.gz").unlink()                       # listed, label missing
    (task / "imagesTs" / "liver_133.nii.gz").unlink()                     # listed test missing
    shutil.copy(task / "imagesTr" / "liver_0.nii.gz", task / "imagesTr" / "liver_99.nii.gz")
    shutil.copy(task / "imagesTr" / "liver_0.nii.gz", task / "imagesTr" / "liver_0_0000.nii.gz")
    (task / "imagesTr" / "notes.txt").write_text("x")
    (task / "README.md").write_text("x")
    found = discover(plugin_for(catalog, "Task03_Liver"), task)
    assert not found.errors
    assert [c.case_id for c in found.cases] == ["liver_0", "liver_3", "liver_132"]
    reasons = {s.path.relative_to(task).as_posix(): s for s in found.skipped}
    assert set(reasons) == {
        "imagesTr/liver_1.nii.gz", "imagesTr/liver_2.nii.gz", "imagesTs/liver_133.nii.gz",
        "imagesTr/liver_99.nii.gz", "imagesTr/liver_0_0000.nii.gz", "imagesTr/notes.txt",
        "README.md", "labelsTr/liver_1.nii.gz",
    }
    assert "missing from imagesTr" in reasons["imagesTr/liver_1.nii.gz"].reason
    assert "labelsTr/liver_2.nii.gz is missing" in reasons["imagesTr/liver_2.nii.gz"].reason
    assert "missing from imagesTs" in reasons["imagesTs/liver_133.nii.gz"].reason
    assert "not listed" in reasons["imagesTr/liver_99.nii.gz"].reason
    assert "nnU-Net" in reasons["imagesTr/liver_0_0000.nii.gz"].hint
    assert "nnU-Net" not in reasons["imagesTr/liver_99.nii.gz"].hint
    assert "label without a listed image" in reasons["labelsTr/liver_1.nii.gz"].reason
    assert all(s.reason for s in found.skipped)


def test_3d_image_in_a_4d_task_is_skipped_with_the_reason(catalog, tmp_path):
    task = make_msd_task(tmp_path, task="Task01_BrainTumour", n_train=2, n_test=0, appledouble=False)
    path = task / "imagesTr" / "BRATS_002.nii.gz"
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[..., 0], img.affine), path)
    found = discover(plugin_for(catalog, "Task01_BrainTumour"), task)
    assert [c.case_id for c in found.cases] == ["BRATS_001"]
    (skipped,) = found.skipped
    assert skipped.case_id == "BRATS_002" and "4 channels" in skipped.reason


def test_missing_dataset_json_is_a_discovery_error(catalog, tmp_path):
    task = make_msd_task(tmp_path, task="Task10_Colon", n_train=1, n_test=0)
    (task / "dataset.json").unlink()
    found = discover(plugin_for(catalog, "Task10_Colon"), tmp_path)
    assert found.errors[0].kind == "discovery" and "dataset.json" in found.errors[0].message


def test_catalog_lists_ten_tasks_two_in_the_demo(catalog):
    msd = {i: p for i, p in catalog.datasets.items() if i.startswith("msd-")}
    assert sorted(msd) == sorted(IDS.values()) and len(msd) == 10
    assert sorted(i for i, p in msd.items() if p.demo) == ["msd-braintumour", "msd-liver"]
    for plugin in msd.values():
        desc = plugin.descriptor
        assert plugin.can_fabricate and desc.licence == "CC BY-SA 4.0" and desc.citation
        assert desc.expected_root.startswith(plugin.folder)
        assert (desc.ct_window is not None) == (desc.modality == "CT")


def test_fabricated_liver_is_on_the_patients_right(tmp_path):
    """The stored LPS-ish / feet-first affines are real geometry, not decoration."""
    task = make_msd_task(tmp_path, task="Task03_Liver", n_train=2, n_test=0, appledouble=False)
    for name in ("liver_0", "liver_1"):
        label = nib.as_closest_canonical(nib.load(task / "labelsTr" / f"{name}.nii.gz"))
        assert nib.aff2axcodes(label.affine) == ("R", "A", "S")
        data = np.asanyarray(label.dataobj)
        centre = np.argwhere(data > 0).mean(axis=0) / (np.array(data.shape) - 1)
        assert centre[0] > 0.6  # RAS: larger x index = patient's right


def test_fabricate_is_what_the_demo_uses(catalog, tmp_path):
    root = plugin_for(catalog, "Task01_BrainTumour").fabricate(tmp_path, n_cases=2, seed=3)
    assert root == tmp_path / "Task01_BrainTumour"
    found = discover(plugin_for(catalog, "Task01_BrainTumour"), root)
    assert sorted(c.official_split for c in found.cases if isinstance(c, Case)) == [
        "test", "train", "train"]


def test_harmonize_run_on_a_ct_task_and_the_4d_brain_task(tmp_path):
    """``harmonize run`` end to end: CT liver, and BrainTumour kept as one 4-channel image."""
    from typer.testing import CliRunner

    from harmonize.cli.app import app

    data, out = tmp_path / "msd", tmp_path / "out"
    make_msd_task(data, task="Task03_Liver", n_train=2, n_test=1)
    make_msd_task(data, task="Task01_BrainTumour", n_train=2, n_test=1)
    runner = CliRunner()
    for dataset in ("msd-liver", "msd-braintumour"):
        result = runner.invoke(app, ["run", "-d", dataset, "-r", str(data), "-o", str(out),
                                     "--workers", "1", "--no-progress", "--format", "json"])
        assert result.exit_code == 0, result.output
    records = {
        dataset: {r["case_id"]: r for r in map(json.loads, (out / f"{dataset}.jsonl").open())}
        for dataset in ("msd-liver", "msd-braintumour")
    }
    assert sorted(records["msd-liver"]) == ["liver_0", "liver_1", "liver_132"]
    assert sorted(records["msd-braintumour"]) == ["BRATS_001", "BRATS_002", "BRATS_485"]
    for dataset, cases in records.items():
        for case_id, record in cases.items():
            image = nib.load(out / dataset / case_id / "image.nii.gz")
            assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
            test_case = case_id in ("liver_132", "BRATS_485")
            assert record["official_split"] == ("test" if test_case else "train")
            if test_case:
                assert record["split"] == "test" and record["mask"] is None
                assert not (out / dataset / case_id / "mask.nii.gz").exists()
            if dataset == "msd-braintumour":
                assert image.ndim == 4 and image.shape[3] == 4
                assert record["channels"] == ["FLAIR", "T1", "T1 contrast-enhanced", "T2"]
                assert record["source"]["channels"] == ["FLAIR", "T1w", "t1gd", "T2w"]
            else:
                assert image.ndim == 3 and record["channels"] == ["CT"]
            if not test_case:
                mask = nib.load(out / dataset / case_id / "mask.nii.gz")
                assert mask.shape == image.shape[:3]
                values = {"msd-liver": {0, 1, 2}, "msd-braintumour": {0, 1, 2, 3}}[dataset]
                assert set(np.unique(np.asanyarray(mask.dataobj)).tolist()) == values
