"""MRSpineSeg (sagittal spine MR, NIfTI) and SKI10 (knee MR, MetaImage): YAML-only SAT-DS datasets.

Layouts, file names and values from SAT-DS ``processor.py``/``loader.py`` and ``data/jsonl``
(see the descriptors); fabricated by ``harmonize.plugins.fabricators.sat_heart_mr``. Oracles:
the label files read back with nibabel / SimpleITK, never the layout reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from harmonize.plugins.fabricators.sat_heart_mr import make_mrspineseg, make_ski10
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.loader import HarmonizedDataset
from harmonize.manifest.build import read_manifest
from harmonize.plugin.layout import LayoutDataset

runner = CliRunner()
SAT_NAMES = {"mrspineseg": "MRSpineSeg", "ski10": "SKI10"}


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


def test_mrspineseg_levels_and_a_short_field_of_view(tmp_path):
    from harmonize.labels.sat_ds import load_sat_ds
    from harmonize.labels.vocabulary import load_vocabulary

    root = make_mrspineseg(tmp_path, cases=(17, 113, 185), short=(113,))
    records = manifest("mrspineseg", root, tmp_path / "m")
    assert sorted(records) == ["Case113", "Case17", "Case185"]
    # SAT-DS loader.py: mask == i + 1 is its i-th label name (19 names)
    vocabulary, sat = load_vocabulary(), load_sat_ds()["MRSpineSeg"]
    for case_id, record in records.items():
        assert record.patient_id == case_id and record.official_split == "train"
        mask = root / "train" / "Mask" / f"mask_case{case_id[4:]}.nii.gz"  # lower-case "case"
        assert Path(record.mask).name == mask.name
        values = set(np.unique(np.asarray(nib.load(mask).dataobj)).tolist())
        assert values == (set(range(20)) - {9, 10, 18, 19} if case_id == "Case113"
                          else set(range(20)))
        for i, name in enumerate(sat.label[:19]):
            assert record.labels[vocabulary.resolve(name)] == [i + 1], name
        assert record.labels["intervertebral disc"] == list(range(11, 20))


def test_ski10_metaimage_splits_run_and_loader(tmp_path):
    root = make_ski10(tmp_path, training=(1, 28), validation=(79,))
    found = cli("discover", "-d", "ski10", "-r", str(root))
    assert found["skipped"] == []  # roi-079.mhd is neither an image nor a label
    out = tmp_path / "out"
    cli("run", "-d", "ski10", "-r", str(root), "-o", str(out), "-w", "1", "--no-progress",
        "--spacing", "native")
    classes = {"femur": 1, "femoral cartilage": 2, "tibia": 3, "tibial cartilage": 4}
    loaded = HarmonizedDataset(out / "ski10.jsonl", patch_size=None, classes=list(classes))
    splits = {}
    for i in range(len(loaded)):
        sample, record = loaded[i], loaded.records[i]
        splits[record.case_id] = record.official_split
        folder = {"train": "training", "val": "validation"}[record.official_split]
        label = sitk.ReadImage(str(root / folder / f"labels-{record.case_id[6:]}.mhd"))
        assert label.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # LPS
        ras = sitk.GetArrayFromImage(label).transpose(2, 1, 0)[::-1, ::-1, :]
        assert set(np.unique(ras).tolist()) == {0, 1, 2, 3, 4}
        assert tuple(sample["spacing"]) == pytest.approx(label.GetSpacing(), abs=1e-6)
        for k, name in enumerate(sample["classes"]):
            np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool),
                                          ras == classes[name], err_msg=f"{record.case_id} {name}")
    assert splits == {"image-001": "train", "image-028": "train", "image-079": "val"}
