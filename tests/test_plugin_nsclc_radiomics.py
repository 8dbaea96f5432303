"""NSCLC-Radiomics (RTSTRUCT) plugin: discovery, ROI mapping, exact masks, run -> loader.

Oracle: the fabricator's analytic rectangles (harmonize.plugins.fabricators.nsclc_radiomics
.case_rois), filled with numpy slicing and XOR per slice; orientation to RAS by nibabel.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from harmonize.plugins.fabricators.nsclc_radiomics import (
    SHAPE,
    case_rois,
    geometry,
    make_nsclc_radiomics,
)
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.errors import ReadError
from harmonize.labels.overlap import structure_masks
from harmonize.loader import HarmonizedDataset
from harmonize.manifest.build import read_manifest
from harmonize.plugin import LayoutDataset, parse_descriptor
from harmonize.plugin.discovery import discover
from harmonize.read.case import read_case
from harmonize.read.dicom_scan import select_series
from harmonize.read.rtstruct_label import read_rtstruct_label
from harmonize.testing.rtstruct import voxel_box, write_rtstruct

CLASS_OF = {"GTV-1": "lung tumor", "Lung-Left": "left lung", "LUNG LEFT": "left lung",
            "Lung_L": "left lung", "Lung-Right": "right lung", "Esophagus": "esophagus",
            "Heart": "heart", "Spinal-Cord": "spinal cord"}


def expected_masks(n):
    out = {}
    for roi, contours in case_rois(n).items():
        if roi not in CLASS_OF:
            continue
        mask = np.zeros((SHAPE[1], SHAPE[0], SHAPE[2]), dtype=bool)  # (columns, rows, slices)
        for k, (i0, i1, j0, j1) in contours:
            mask[i0:i1 + 1, j0:j1 + 1, k] ^= True
        out[CLASS_OF[roi]] = mask
    return out


@pytest.fixture(scope="module")
def nsclc_root(tmp_path_factory):
    return make_nsclc_radiomics(tmp_path_factory.mktemp("nsclc"))


def test_discovery_pairs_each_rtstruct_with_the_series_it_references(catalog, nsclc_root):
    found = discover(catalog.get("nsclc-radiomics"), nsclc_root)
    assert not found.errors and not found.skipped
    assert [c.case_id for c in found.cases] == ["LUNG1-001", "LUNG1-002", "LUNG1-003"]
    for case in found.cases:
        assert case.images[0].name.startswith("0.000000-NA-")
        assert case.label.name == "1-1.dcm" and case.label.parent.name.startswith("3.000000-NA-")
    rois = {r["roi"]: (r["name"], r["by"]) for r in found.cases[0].metadata["rois"]}
    assert rois["Couch"] == (None, "unmatched") and rois["GTV-1"] == ("lung tumor", "synonym")
    third = {r["roi"]: (r["name"], r["by"]) for r in found.cases[2].metadata["rois"]}
    assert third["Lung_L"] == ("left lung", "pattern") and third["GTV-2"] == (None, "unmatched")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_structure_comes_back_exactly_overlaps_included(catalog, nsclc_root, n):
    plugin = catalog.get("nsclc-radiomics")
    case = next(c for c in discover(plugin, nsclc_root).cases if c.case_id == f"LUNG1-00{n}")
    data = read_case(case, plugin=plugin)
    assert data.label is not None and data.label.classes is not None
    expected = expected_masks(n)
    assert sorted(data.label.classes) == sorted(expected)  # Couch / GTV-2 are not annotated
    got = structure_masks(data.label)
    for name, mask in expected.items():
        assert mask.any()
        np.testing.assert_array_equal(got[name], mask, err_msg=name)
    assert (got["lung tumor"] & got["left lung"]).sum() == expected["lung tumor"].sum() > 0
    assert np.array_equal(data.label.affine, data.image.affine)


def test_a_missing_referenced_series_is_skipped_at_discovery_and_refused_at_reading(
        catalog, nsclc_root, tmp_path):
    root = tmp_path / "NSCLC-Radiomics"
    shutil.copytree(nsclc_root / "LUNG1-001", root / "LUNG1-001")
    plugin = catalog.get("nsclc-radiomics")
    case = discover(plugin, root).cases[0]
    ct = case.images[0]
    shutil.rmtree(ct)
    found = discover(plugin, root)
    assert not found.cases and "references CT series" in found.skipped[0].reason
    other = make_nsclc_radiomics(tmp_path / "other", n_cases=1, seed=5)
    shutil.copytree(next((other / "LUNG1-001").glob("*/0.000000-*")), ct)
    with pytest.raises(ReadError, match="which is not in") as info:
        read_case(case, plugin=plugin)
    assert str(case.label) in str(info.value)


def test_yaml_only_descriptor_reads_rtstruct_labels(tmp_path, nsclc_root):
    for n, patient in enumerate(sorted(nsclc_root.iterdir()), start=1):
        ct = next(patient.glob("*/0.000000-*"))
        shutil.copytree(ct, tmp_path / f"p{n}_ct")
        shutil.copy(next(patient.glob("*/3.000000-*/1-1.dcm")), tmp_path / f"p{n}_rt.dcm")
    plugin = LayoutDataset(parse_descriptor({
        "id": "rt-yaml", "name": "RT", "modality": "CT",
        "values": {0: "background", 1: "GTV", 2: "left lung lobe"},
        "classes": {"lung tumor": [1], "left lung": [2]},
        "roi_patterns": {"lung tumor": ["gtv[ _-]?1"], "left lung": ["lung[ _-]?l(eft)?"]},
        "layout": {"images": "*_ct", "label": "{case}_rt.dcm"}, "case_id": "^(?P<id>p\\d)_ct$"}))
    found = discover(plugin, tmp_path)
    assert [c.case_id for c in found.cases] == ["p1", "p2", "p3"]
    rows = {r["roi"]: (r["name"], r["by"]) for r in found.cases[0].metadata["rois"]}
    assert rows["GTV-1"] == ("lung tumor", "pattern") and rows["Heart"] == (None, "unmatched")
    assert rows["Lung-Left"] == ("left lung", "synonym")  # the vocabulary's "lung_left"
    for n, case in enumerate(found.cases, start=1):
        data = read_case(case, plugin=plugin)
        expected = expected_masks(n)
        got = structure_masks(data.label)
        assert sorted(got) == ["left lung", "lung tumor"]
        for name in got:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=f"p{n} {name}")


def test_cli_discover_shows_each_roi_and_its_mapping(nsclc_root):
    runner = CliRunner()
    result = runner.invoke(app, ["discover", "-d", "nsclc-radiomics", "-r", str(nsclc_root),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    summary = {(r["roi"], r["name"], r["by"]): r["cases"] for r in data["roi_names"]}
    assert summary[("Lung_L", "left lung", "pattern")] == 1
    assert summary[("Spinal-Cord", "spinal cord", "synonym")] == 3
    assert summary[("Couch", None, "unmatched")] == 1
    assert all("rois" in c for c in data["cases"])
    table = runner.invoke(app, ["discover", "-d", "nsclc-radiomics", "-r", str(nsclc_root)],
                          env={"COLUMNS": "80"}, terminal_width=80)
    assert table.exit_code == 0
    assert "ROI names" in table.output and "lung[ _-]?l(eft)?" in table.output
    assert max(len(line) for line in table.output.splitlines()) <= 80


def test_manifest_run_and_loader_on_the_fabricated_release(nsclc_root, tmp_path):
    runner = CliRunner()
    manifest = runner.invoke(app, ["manifest", "-d", "nsclc-radiomics", "-r", str(nsclc_root),
                                   "-o", str(tmp_path / "src")])
    assert manifest.exit_code == 0, manifest.output
    records = read_manifest(tmp_path / "src" / "nsclc-radiomics.jsonl")
    assert len(records) == 3 and all(len(r.annotated) == 6 for r in records)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "-d", "nsclc-radiomics", "-r", str(nsclc_root), "-o",
                                 str(out), "-w", "1", "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    classes = ["lung tumor", "left lung", "right lung", "esophagus", "heart", "spinal cord"]
    dataset = HarmonizedDataset(out / "nsclc-radiomics.jsonl", patch_size=None, classes=classes)
    assert len(dataset) == 3
    for i in range(len(dataset)):
        sample, record = dataset[i], dataset.records[i]
        n = int(record.case_id[-1])
        source = nib.load(out / record.image)
        expected = expected_masks(n)
        # the source grid is LPS (DICOM); the output is RAS at native spacing: nibabel's
        # orientation transform of the analytic masks is the oracle
        case_folder = next((nsclc_root / record.case_id).glob("*/0.000000-*"))
        lps_affine = select_series(case_folder).affine()
        transform = nib.orientations.ornt_transform(
            nib.orientations.io_orientation(lps_affine),
            nib.orientations.io_orientation(source.affine))
        for k, name in enumerate(sample["classes"]):
            want = nib.orientations.apply_orientation(expected[name], transform)
            np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool), want,
                                          err_msg=f"{record.case_id} {name}")
        assert record.metadata["rois"][0]["roi"] == "GTV-1"


def test_rtstruct_file_with_only_a_point_roi_annotates_nothing_of_it(tmp_path, nsclc_root,
                                                                       catalog):
    plugin = catalog.get("nsclc-radiomics")
    ct = next((nsclc_root / "LUNG1-001").glob("*/0.000000-*"))
    files = sorted(ct.iterdir())
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    rt = write_rtstruct(tmp_path / "rt.dcm", geometry(1), files,
                        {"Heart": [(2, voxel_box(3, 4, 3, 4))],
                         "GTV-1": [(2, voxel_box(5, 6, 5, 6))]},
                        series_uid=str(first.SeriesInstanceUID),
                        study_uid=str(first.StudyInstanceUID),
                        frame_uid=str(first.FrameOfReferenceUID), patient_id="LUNG1-001",
                        kinds={"Heart": "POINT"})
    volume = read_rtstruct_label(rt, ct, plugin.descriptor)
    assert sorted(volume.classes) == ["lung tumor"]
    (op,) = volume.operations
    heart = next(r for r in op["rois"] if r["roi"] == "Heart")
    assert heart["by"] == "empty" and "POINT" in heart["detail"]


def test_rtstruct_cases_export_to_dicom_seg_and_read_back_exactly(catalog, nsclc_root, tmp_path):
    """RTSTRUCT in, DICOM-SEG out: the SEG, read back with highdicom's frames placed by
    harmonize's SEG reader, holds every structure of the structure set voxel for voxel."""
    from harmonize.export.dicom_seg import export_dicom_seg
    from harmonize.labels.vocabulary import load_vocabulary
    from harmonize.manifest.build import build_manifest
    from harmonize.read.dicom_scan import select_series
    from harmonize.read.dicom_seg import read_seg

    plugin = catalog.get("nsclc-radiomics")
    manifest = build_manifest(plugin, discover(plugin, nsclc_root), tmp_path / "m").path
    result = export_dicom_seg(manifest, tmp_path / "seg")
    assert not result.errors, result.errors
    for n in (1, 2, 3):
        case = next(c for c in discover(plugin, nsclc_root).cases if c.case_id == f"LUNG1-00{n}")
        seg = next((tmp_path / "seg").glob(f"*LUNG1-00{n}*.dcm"))
        expected = expected_masks(n)
        volume, _ = read_seg(seg, select_series(case.images[0]), vocabulary=load_vocabulary(),
                             names=sorted(expected))
        got = structure_masks(volume)
        assert sorted(got) == sorted(expected)
        for name, mask in expected.items():
            np.testing.assert_array_equal(got[name], mask, err_msg=f"LUNG1-00{n} {name}")
