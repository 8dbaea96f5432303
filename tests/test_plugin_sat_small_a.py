"""ACDC, SegTHOR and PROMISE12: SAT-DS datasets described by a YAML descriptor alone.

Layouts, file names and values from SAT-DS ``processor.py``/``loader.py`` and its
``data/jsonl/<name>.jsonl`` (see the descriptors). Oracles: the label files read back with
nibabel / SimpleITK (unique values, nibabel's own RAS reorientation), never the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from harmonize.plugins.fabricators.sat_small import make_acdc, make_promise12, make_segthor
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.loader import HarmonizedDataset
from harmonize.manifest.build import read_manifest
from harmonize.plugin.layout import LayoutDataset

runner = CliRunner()
SAT_NAMES = {"acdc": "ACDC", "segthor": "SegTHOR", "promise12": "PROMISE12"}


def cli(*args: str) -> dict:
    done = runner.invoke(app, [*args, "--format", "json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def manifest(dataset: str, root: Path, out: Path) -> dict[str, object]:
    done = runner.invoke(app, ["manifest", "-d", dataset, "-r", str(root), "-o", str(out)])
    assert done.exit_code == 0, done.output
    return {r.case_id: r for r in read_manifest(out / f"{dataset}.jsonl")}


@pytest.mark.parametrize("dataset", list(SAT_NAMES))
def test_descriptor_alone_is_the_plugin(catalog, dataset):
    plugin = catalog.get(dataset)
    assert type(plugin) is LayoutDataset and plugin.source == "built-in"
    assert plugin.descriptor.sat_ds == (SAT_NAMES[dataset],) and plugin.descriptor.layout


def test_acdc_frames_are_cases_of_one_patient(tmp_path):
    root = make_acdc(tmp_path, n_train=2, n_test=1)
    found = cli("discover", "-d", "acdc", "-r", str(root))
    gt = sorted(p.name for p in root.rglob("*_gt.nii.gz"))
    assert sorted(c["case_id"] + "_gt.nii.gz" for c in found["cases"]) == gt
    assert found["skipped"] == []
    records = manifest("acdc", root, tmp_path / "m")
    assert len(records) == 6
    for case_id, record in records.items():
        assert record.patient_id == case_id.split("_")[0]
        folder = Path(record.image).parent.parent.name  # training / testing
        assert record.official_split == {"training": "train", "testing": "test"}[folder]
        values = set(np.unique(np.asarray(nib.load(root / folder / record.patient_id /
                                                   f"{case_id}_gt.nii.gz").dataobj)).tolist())
        assert values == {0, 1, 2, 3}
        assert record.labels == {"left ventricle": [3], "right ventricle": [1], "myocardium": [2],
                                 "heart ventricle": [1, 3]}
    by_patient: dict[str, set[str]] = {}
    for record in records.values():
        by_patient.setdefault(record.patient_id, set()).add(record.split)
    assert sorted(by_patient) == ["patient001", "patient002", "patient101"]
    assert all(len(splits) == 1 for splits in by_patient.values())  # ED and ES together
    assert by_patient["patient101"] == {"test"}


def test_segthor_run_and_loader_give_the_written_organs(tmp_path):
    root = make_segthor(tmp_path, n_cases=2)
    records = manifest("segthor", root, tmp_path / "m")
    assert sorted(records) == ["Patient_01", "Patient_02"]
    assert {r.patient_id for r in records.values()} == {"Patient_01", "Patient_02"}
    assert {r.official_split for r in records.values()} == {"train"}
    out = tmp_path / "out"
    cli("run", "-d", "segthor", "-r", str(root), "-o", str(out), "-w", "1", "--no-progress")
    classes = ["esophagus", "heart", "trachea", "aorta"]
    dataset = HarmonizedDataset(out / "segthor.jsonl", patch_size=None, classes=classes)
    assert len(dataset) == 2
    for i in range(len(dataset)):
        sample, record = dataset[i], dataset.records[i]
        gt = nib.as_closest_canonical(nib.load(root / "train" / record.case_id / "GT.nii.gz"))
        values = np.asarray(gt.dataobj)  # RAS at native spacing: voxel for voxel
        assert set(np.unique(values).tolist()) == {0, 1, 2, 3, 4}
        for k, name in enumerate(sample["classes"]):
            want = values == classes.index(name) + 1  # SAT-DS loader.py: mask == i + 1
            np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool), want,
                                          err_msg=f"{record.case_id} {name}")


def test_promise12_metaimage_cases_of_three_parts(tmp_path):
    root = make_promise12(tmp_path, per_part=1)
    records = manifest("promise12", root, tmp_path / "m")
    assert sorted(records) == ["Case00", "Case26", "Case38"]
    for case_id, record in records.items():
        assert record.patient_id == case_id and record.official_split == "train"
        assert Path(record.mask).name == f"{case_id}_segmentation.mhd"
        label = sitk.ReadImage(str(next(root.glob(f"*/{case_id}_segmentation.mhd"))))
        assert set(np.unique(sitk.GetArrayFromImage(label)).tolist()) == {0, 1}
        assert record.labels == {"prostate": [1]}
        assert record.spacing == pytest.approx(label.GetSpacing(), abs=1e-6)


def test_export_sat_writes_sat_ds_names(tmp_path):
    manifests = []
    for dataset, make in (("acdc", make_acdc), ("segthor", make_segthor),
                          ("promise12", make_promise12)):
        manifest(dataset, make(tmp_path / dataset), tmp_path / "m")
        manifests += ["--manifest", str(tmp_path / "m" / f"{dataset}.jsonl")]
    done = cli("export", "sat", *manifests, "--out", str(tmp_path / "sat"), "--no-progress")
    # ACDC's SAT-DS loader takes value 3 first, a layout harmonize does not write: own id
    assert sorted(done["jsonl"]) == sorted(["acdc", "SegTHOR", "PROMISE12"])
    for name, path in done["jsonl"].items():
        lines = [json.loads(x) for x in Path(path).read_text().splitlines()]
        assert lines and {x["dataset"] for x in lines} == {name}
