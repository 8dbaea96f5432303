"""WORD, FLARE22 and AbdomenCT-1K: real datasets described by a YAML descriptor alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from harmonize.plugins.fabricators.abdomen import make_abdomenct1k, make_flare22, make_word

from harmonize.labels.rules import class_values
from harmonize.labels.vocabulary import load_vocabulary
from harmonize.plugin.discovery import discover
from harmonize.plugin.layout import LayoutDataset, label_glob
from harmonize.testing import check_plugin

YAML_ONLY = ("word", "flare22", "abdomenct-1k")


def by_case(check):
    return {r.case_id: r for r in check.records}


@pytest.mark.parametrize("dataset", YAML_ONLY)
def test_descriptor_alone_is_the_plugin(catalog, dataset):
    plugin = catalog.get(dataset)
    assert type(plugin) is LayoutDataset and plugin.source == "built-in"
    desc = plugin.descriptor
    assert desc.layout and desc.case_id and desc.modality == "CT" and desc.ct_window
    names = class_values(desc, load_vocabulary())  # every class is a vocabulary name
    assert len(names) == len(desc.classes)


def test_word_official_splits(catalog, tmp_path):
    root = make_word(tmp_path, n_train=2, n_val=2, n_test=2)
    records = by_case(check_plugin(catalog.get("word"), root))
    assert {c: (r.official_split, r.split) for c, r in records.items()} == {
        "word_0002": ("train", "train"), "word_0003": ("train", "train"),
        "word_0001": ("val", "val"), "word_0006": ("val", "val"),
        "word_0014": ("test", "test"), "word_0016": ("test", "test"),
    }
    labels = records["word_0014"].labels
    assert labels["adrenal gland"] == [12] and labels["small bowel"] == [11]
    assert labels["left femoral head"] == [15] and labels["femoral head"] == [15, 16]
    assert labels["kidney"] == [3, 4] and len(catalog.get("word").descriptor.values) == 17
    assert records["word_0002"].orientation == "LPS"
    assert records["word_0002"].spacing == pytest.approx([0.977, 0.977, 3.0])


def test_word_test_labels_are_optional(catalog, tmp_path):
    root = make_word(tmp_path, n_train=1, n_val=1, n_test=2, test_labels=False)
    check = check_plugin(catalog.get("word"), root)
    records = by_case(check)
    assert records["word_0014"].mask is None and records["word_0014"].split == "test"
    assert records["word_0002"].mask is not None and check.discovery.skipped == []


@pytest.mark.parametrize("folders", [("images", "labels"), ("imagesTr", "labelsTr")])
def test_flare22_both_folder_namings(catalog, tmp_path, folders):
    root = make_flare22(tmp_path, n_cases=3, folders=folders)
    records = by_case(check_plugin(catalog.get("flare22"), root))
    assert sorted(records) == ["FLARE22_Tr_0001", "FLARE22_Tr_0002", "FLARE22_Tr_0003"]
    record = records["FLARE22_Tr_0002"]
    assert Path(record.image).name == "FLARE22_Tr_0002_0000.nii.gz"
    assert record.mask.endswith(f"{folders[1]}/FLARE22_Tr_0002.nii.gz")
    assert record.labels["kidney"] == [2, 13] and record.labels["adrenal gland"] == [7, 8]
    assert record.official_split == "train"


def test_flare22_stray_files_are_reported(catalog, tmp_path):
    root = make_flare22(tmp_path, n_cases=3)
    (root / "images" / "FLARE22_Tr_0003_0000.nii.gz").unlink()  # an image missing: orphan label
    (root / "labels" / "FLARE22_Tr_0002.nii.gz").unlink()  # a label missing: image skipped
    (root / "images" / "README.txt").write_text("FLARE22 training set")
    found = discover(catalog.get("flare22"), root)
    assert [c.case_id for c in found.cases] == ["FLARE22_Tr_0001"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert reasons["FLARE22_Tr_0002_0000.nii.gz"] == "no label file labels/FLARE22_Tr_0002.nii.gz"
    assert reasons["FLARE22_Tr_0003.nii.gz"] == "label file without a matching image"
    assert "case_id pattern" in reasons["README.txt"]


@pytest.mark.parametrize("layout", ["release", "sat-ds"])
def test_abdomenct1k_layouts(catalog, tmp_path, layout):
    root = make_abdomenct1k(tmp_path, n_cases=3, layout=layout, unlabelled=(400,))
    check = check_plugin(catalog.get("abdomenct-1k"), root)
    records = by_case(check)
    assert sorted(records) == ["Case_00001", "Case_00799"]
    assert records["Case_00799"].labels == {"liver": [1], "kidney": [2], "spleen": [3], "pancreas": [4]}
    assert records["Case_00001"].official_split is None and records["Case_00001"].split is not None
    if layout == "release":
        assert "AbdomenCT-1K-ImagePart2/Case_00799_0000.nii.gz" in records["Case_00799"].image
        assert records["Case_00799"].mask.endswith("Mask/Case_00799.nii.gz")
    (skipped,) = check.discovery.skipped
    assert skipped.path.name == "Case_00400_0000.nii.gz" and skipped.reason.startswith("no label file")


def test_overlaps_are_recorded(catalog):
    def overlaps(dataset):
        return {o["dataset"] for o in catalog.get(dataset).descriptor.overlaps}

    assert {"msd-liver", "lits", "msd-pancreas", "msd-spleen", "kits19", "pancreas-ct",
            "flare22"} <= overlaps("abdomenct-1k")
    assert {"abdomenct-1k", "msd-pancreas"} <= overlaps("flare22")


def test_label_glob_covers_every_template_placeholder():
    assert label_glob("labelsTr/{name}") == "labelsTr/*"
    assert label_glob("Mask/{case}.nii.gz") == "Mask/*.nii.gz"
    assert label_glob("{parent}/{case}_seg.nii.gz") == "*/*_seg.nii.gz"


#: dataset -> (fabricator call, value of the patient's right kidney, value of the left one)
RUN_CASES = {
    "word": (lambda root: make_word(root, n_train=1, n_val=1, n_test=1), 4, 3),
    "flare22": (lambda root: make_flare22(root, n_cases=2), 2, 13),
    "abdomenct-1k": (lambda root: make_abdomenct1k(root, n_cases=2), None, None),
}


@pytest.mark.parametrize("dataset", YAML_ONLY)
def test_harmonize_run_on_the_released_layout(catalog, tmp_path, dataset):
    """`harmonize run` on each YAML-only dataset: every case written in RAS with the descriptor's
    label values, and the sided organs on the patient's correct side (the files are LPS)."""
    import nibabel as nib
    import numpy as np
    from typer.testing import CliRunner

    from harmonize.cli.app import app
    from harmonize.manifest.build import read_manifest

    make, right, left = RUN_CASES[dataset]
    root, out = make(tmp_path / "data"), tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-d", dataset, "-r", str(root), "-o", str(out),
                                      "-w", "1", "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = read_manifest(out / f"{dataset}.jsonl")
    assert len(records) == len(discover(catalog.get(dataset), root).cases) >= 2
    declared = set(catalog.get(dataset).descriptor.values)
    for record in records:
        assert record.orientation == "RAS" and record.extra["original"]["orientation"] == "LPS"
        mask = np.asarray(nib.load(out / record.mask).dataobj)
        assert set(np.unique(mask).tolist()) == declared  # every organ drawn, nothing else
        if right is not None:  # RAS: a larger x index is further to the patient's right
            assert np.argwhere(mask == right)[:, 0].mean() > np.argwhere(mask == left)[:, 0].mean()
