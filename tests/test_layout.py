"""YAML-only datasets: a descriptor with a layout section is a complete plugin."""

from __future__ import annotations

import json
import textwrap

import numpy as np
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover
from harmonize.testing import check_plugin, write_nifti

DESCRIPTOR = textwrap.dedent("""
    id: toy-organs
    name: Toy organs
    modality: CT
    licence: CC BY 4.0
    citation: nobody
    homepage: https://example.org
    values: {0: background, 1: liver, 2: spleen}
    classes: {liver: [1], spleen: [2]}
    layout:
      - {images: "imagesTr/*_0000.nii.gz", label: "labelsTr/{case}.nii.gz", split: train}
      - {images: "imagesTs/*_0000.nii.gz", split: test}
    case_id: '^(?P<id>toy_\\d{3})_0000'
    patient_id: '^(?P<id>toy_\\d{2})'
""")


def make_tree(root):
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    for i in range(3):
        write_nifti(root / f"imagesTr/toy_{i:03d}_0000.nii.gz", np.zeros((8, 9, 10), np.int16), affine)
        if i != 2:
            write_nifti(root / f"labelsTr/toy_{i:03d}.nii.gz", np.ones((8, 9, 10), np.uint8), affine)
    write_nifti(root / "imagesTs/toy_100_0000.nii.gz", np.zeros((8, 9, 10), np.int16), affine)
    (root / "imagesTr/notes_0000.nii.gz").write_text("x")
    return root


def test_yaml_only_dataset_end_to_end(tmp_path):
    desc = tmp_path / "toy-organs.yaml"
    desc.write_text(DESCRIPTOR)
    catalog = load_catalog(descriptors=[desc], entry_points=False)
    plugin = catalog.get("toy-organs")
    assert plugin.source == f"descriptor {desc}"
    root = make_tree(tmp_path / "data")
    check = check_plugin(plugin, root)
    by_id = {r.case_id: r for r in check.records}
    assert sorted(by_id) == ["toy_000", "toy_001", "toy_100"]
    assert by_id["toy_000"].patient_id == "toy_00" and by_id["toy_000"].official_split == "train"
    assert by_id["toy_100"].mask is None and by_id["toy_100"].split == "test"
    assert by_id["toy_001"].labels == {"liver": [1], "spleen": [2]}
    reasons = {s.path.name: s.reason for s in check.discovery.skipped}
    assert "no label file labelsTr/toy_002.nii.gz" in reasons["toy_002_0000.nii.gz"]
    assert "does not match the case_id pattern" in reasons["notes_0000.nii.gz"]


def test_yaml_only_dataset_through_env_and_cli(tmp_path, monkeypatch):
    folder = tmp_path / "descriptors"
    folder.mkdir()
    (folder / "toy-organs.yaml").write_text(DESCRIPTOR)
    monkeypatch.setenv("HARMONIZE_DESCRIPTORS", str(folder))
    root = make_tree(tmp_path / "data")
    runner = CliRunner()
    result = runner.invoke(app, ["discover", "-d", "toy-organs", "-r", str(root), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["cases"]) == 3
    assert len(discover(load_catalog().get("toy-organs"), root).skipped) == 2


def test_empty_root_for_yaml_dataset(tmp_path):
    desc = tmp_path / "toy-organs.yaml"
    desc.write_text(DESCRIPTOR)
    plugin = load_catalog(descriptors=[desc], entry_points=False).get("toy-organs")
    (tmp_path / "empty").mkdir()
    result = discover(plugin, tmp_path / "empty")
    assert "no images match" in result.errors[0].message
