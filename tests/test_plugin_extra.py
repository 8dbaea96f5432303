"""SEG.A. 2023 (a per-centre rescale: a layout group's own ``rescale``) and Prostate158 (three
channel files, zones, folder splits) as YAML-only descriptors, on fabricated copies of their
released layouts.

Oracles: the NRRD files read with SimpleITK (stored values; the offset SAT-DS's processor.py
subtracts per centre), the NIfTI files read with nibabel, voxel counts per value by numpy on
the written label files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from harmonize.plugins.fabricators.extra import SEGA_OFFSETS, make_sega
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.errors import DescriptorError
from harmonize.manifest.build import read_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.descriptor import load_descriptor
from harmonize.plugin.discovery import discover
from harmonize.read.case import read_case

RUNNER = CliRunner()


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def xyz(path: Path) -> np.ndarray:
    """The (X, Y, Z) voxels of an image file as stored (SimpleITK)."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).transpose(2, 1, 0)


SEGA_FILES = {"D1": "Dongyang/D1/D1", "D2": "Dongyang/D2/D2", "K1": "KiTS/K1/K1",
              "R1": "Rider/R1 (AD)/R1", "R10": "Rider/R10 (AD)/R10"}


def test_sega_discover_manifest_and_per_centre_rescale(tmp_path):
    """Case ids from the file names (a Rider folder's text after the space is not the id), every
    case train, the .seg.nrrd never an image; KiTS and Rider read as stored - 1000, Dongyang
    as stored (SAT-DS's processor.py), in the source manifest and through the plugin."""
    root = make_sega(tmp_path / "src")
    found = json.loads(_invoke("discover", "-d", "sega", "-r", str(root), "--format", "json"))
    assert not found["errors"] and not found["skipped"]
    assert {c["case_id"]: Path(c["label"]) for c in found["cases"]} == {
        case: root / f"{stem}.seg.nrrd" for case, stem in SEGA_FILES.items()}
    _invoke("manifest", "-d", "sega", "-r", str(root), "-o", str(tmp_path / "m"))
    manifest = tmp_path / "m" / "sega.jsonl"
    records = {r.case_id: r for r in read_manifest(manifest)}
    assert sorted(records) == sorted(SEGA_FILES)
    plugin = load_catalog(entry_points=False).get("sega")
    cases = {c.case_id: c for c in discover(plugin, root).cases}
    for case_id, record in records.items():
        stem = SEGA_FILES[case_id]
        offset = SEGA_OFFSETS[stem.split("/")[0]]
        assert record.official_split == "train" and record.patient_id == case_id
        assert record.extra.get("rescale") == (
            {"slope": 1.0, "intercept": -1000.0} if offset else None)
        stored = xyz(root / f"{stem}.nrrd").astype(np.float64)
        mask = xyz(root / f"{stem}.seg.nrrd")
        assert record.labels == {"aorta": [1]} and int((mask == 1).sum()) > 0
        for data in (read_case(record, base=manifest.parent),
                     read_case(cases[case_id], plugin=plugin)):
            np.testing.assert_allclose(data.image.data, stored - offset, rtol=0, atol=1e-3)
            assert ([op["op"] for op in data.image.operations].count("rescale")
                    == (1 if offset else 0))
            assert data.label is not None
            assert int((data.label.data == 1).sum()) == int((mask == 1).sum())


def _descriptor(tmp_path: Path, group_rescale: str, top: str = "") -> str:
    text = f"""
id: toy-rescale
name: Toy
modality: CT
licence: none
citation: none
homepage: https://example.org
{top}
values: {{0: background, 1: aorta}}
classes: {{aorta: [1]}}
layout:
  - {{images: "a/*.nrrd", label: "b/{{name}}"{group_rescale}}}
  - {{images: "c/*.nrrd", label: "d/{{name}}"}}
"""
    path = tmp_path / "toy.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_group_rescale_wins_over_the_descriptors_and_is_checked(tmp_path):
    """A group's rescale wins over the descriptor's (``intercept: 0`` undoes it); the other
    group keeps the descriptor's; a bad group rescale is an error naming its key path."""
    desc = load_descriptor(_descriptor(tmp_path, ", rescale: {intercept: 0}",
                                        "rescale: {slope: 2, intercept: -1024}"))
    assert desc.rescale == (2.0, -1024.0)
    assert [g.rescale for g in desc.layout] == [(1.0, 0.0), None]
    with pytest.raises(DescriptorError, match=r"layout\[0\]\.rescale"):
        load_descriptor(_descriptor(tmp_path, ", rescale: {slope: 0, intercept: 1}"))
    with pytest.raises(DescriptorError, match=r"layout\[0\]\.rescale"):
        load_descriptor(_descriptor(tmp_path, ", rescale: {offset: 1000}"))


def test_sega_run_raw_intensities_and_loader(tmp_path):
    """`harmonize run --intensity raw` writes HU for every centre (KiTS stored - 1000, Dongyang
    as stored, by SimpleITK on the release files, in the run's RAS voxel order via nibabel);
    the loader's aorta channel has the release mask's voxel count."""
    import nibabel as nib

    from harmonize.loader import HarmonizedDataset

    root = make_sega(tmp_path / "src", cases={"Dongyang": ("D1",), "KiTS": ("K1",)})
    out = tmp_path / "run"
    _invoke("run", "-d", "sega", "-r", str(root), "-o", str(out), "--spacing", "native",
            "--intensity", "raw", "--workers", "1", "--no-progress")
    files = {"D1": ("Dongyang/D1/D1", 0), "K1": ("KiTS/K1/K1", 1000)}
    for record in read_manifest(out / "sega.jsonl"):
        stem, offset = files[record.case_id]
        written = np.asarray(nib.load(out / record.image).dataobj, dtype=np.float64)
        stored = xyz(root / f"{stem}.nrrd").astype(np.float64)
        # NRRD is LPS with identity direction: RAS order flips the first two axes
        np.testing.assert_allclose(written, stored[::-1, ::-1, :] - offset, rtol=0, atol=1e-3)
    loader = HarmonizedDataset(out / "sega.jsonl", classes=["aorta"], patch_size=None)
    for index in range(len(loader)):
        sample = loader[index]
        mask = xyz(root / f"{files[sample['case_id']][0]}.seg.nrrd")
        assert int(sample["mask"][0].sum()) == int((mask == 1).sum())


def test_prostate158_channels_zones_and_folder_splits(tmp_path):
    """Three channel files per study in T2, ADC, DWI order; reader 1's zones (1 transition,
    2 peripheral) by nibabel; the folder is the split; tumour, reader-2 and CSV files are not
    images or labels of any case."""
    import nibabel as nib
    from harmonize.plugins.fabricators.extra import make_prostate158

    root = make_prostate158(tmp_path / "src")
    found = json.loads(_invoke("discover", "-d", "prostate158", "-r", str(root), "--format",
                               "json"))
    assert not found["errors"] and not found["skipped"]
    _invoke("manifest", "-d", "prostate158", "-r", str(root), "-o", str(tmp_path / "m"))
    manifest = tmp_path / "m" / "prostate158.jsonl"
    records = {r.case_id: r for r in read_manifest(manifest)}
    folders = {"020": "train", "021": "train", "101": "valid", "141": "test"}
    assert {c: r.official_split for c, r in records.items()} == {
        "020": "train", "021": "train", "101": "val", "141": "test"}
    for case_id, record in records.items():
        folder = root / folders[case_id] / case_id
        assert record.channels == ["T2", "ADC", "DWI"]
        assert [Path(p).name for p in record.image] == ["t2.nii.gz", "adc.nii.gz", "dwi.nii.gz"]
        stored = np.asarray(nib.load(folder / "t2_anatomy_reader1.nii.gz").dataobj)
        data = read_case(record, base=manifest.parent)
        for k, name in enumerate(("t2", "adc", "dwi")):  # channels last, in file order
            np.testing.assert_allclose(data.image.data[..., k],
                                       np.asarray(nib.load(folder / f"{name}.nii.gz").dataobj),
                                       rtol=0, atol=1e-4)
        assert data.label is not None
        for name, values in {"prostate transition zone": [1], "prostate peripheral zone": [2],
                             "prostate": [1, 2]}.items():
            assert record.labels[name] == values
            assert int(np.isin(data.label.data, values).sum()) == int(
                np.isin(stored, values).sum()), (case_id, name)
