"""NSCLC-Radiomics through its DICOM-SEG series (IDC layout), read by the core reading layer."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom

from harmonize.labels.overlap import structure_masks
from harmonize.plugin.discovery import discover
from harmonize.read.case import read_case
from harmonize.testing import check_plugin

NAMES = {"GTV-1": "lung tumor", "Lung-Left": "left lung", "Lung-Right": "right lung",
         "Esophagus": "esophagus", "Heart": "heart", "Spinal-Cord": "spinal cord"}


def highdicom_masks(seg_file, ct_folder) -> dict[str, np.ndarray]:
    """Each segment as (X, Y, Z) decoded by highdicom, slices ordered by z from the headers."""
    import highdicom as hd

    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct_folder.iterdir()]
    uids = [h.SOPInstanceUID for h in sorted(headers, key=lambda h: float(
        h.ImagePositionPatient[2]))]
    seg = hd.seg.segread(seg_file)
    out = {}
    for number in seg.segment_numbers:
        label = seg.get_segment_description(number).segment_label
        pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[number],
                                                   assert_missing_frames_are_empty=True)
        out[NAMES[label]] = pixels[..., 0].transpose(2, 1, 0) > 0
    return out


def test_discovery_pairs_seg_with_its_ct(catalog, tmp_path):
    plugin = catalog.get("nsclc-radiomics-seg")
    root = plugin.fabricate(tmp_path / "nsclc", n_cases=3)
    found = discover(plugin, root)
    assert [c.case_id for c in found.cases] == ["LUNG1-001", "LUNG1-002"]
    assert [(s.case_id, s.reason) for s in found.skipped] == [
        ("LUNG1-003", "no DICOM-SEG series for this patient")]
    case = found.cases[0]
    assert case.images[0].name.startswith("CT_") and case.label.parent.name.startswith("SEG_")
    # a SEG whose CT series was not downloaded is skipped, naming the series
    shutil.rmtree(found.cases[1].images[0])
    again = discover(plugin, root)
    missing = [s for s in again.skipped if s.case_id == "LUNG1-002"]
    assert missing and "is not in the patient folder" in missing[0].reason


def test_core_reads_the_seg_with_overlaps(catalog, tmp_path):
    plugin = catalog.get("nsclc-radiomics-seg")
    assert type(plugin).read_label is type(plugin).__mro__[1].read_label  # the core reads it
    root = plugin.fabricate(tmp_path / "nsclc", n_cases=2)
    case = discover(plugin, root).cases[0]
    data = read_case(case, plugin=plugin)
    expected = highdicom_masks(case.label, case.images[0])
    masks = structure_masks(data.label)
    assert set(masks) == set(NAMES.values())
    for name, mask in expected.items():
        np.testing.assert_array_equal(masks[name], mask, err_msg=name)
    assert (masks["lung tumor"] & masks["right lung"]).any()  # GTV inside the lung: kept
    op = data.label.operations[0]
    assert op["op"] == "dicom_seg" and op["unmapped"] == []
    assert {s["label"]: s["matched_by"] for s in op["segments"]} == dict.fromkeys(NAMES, "code")


def test_manifest_of_the_seg_dataset(catalog, tmp_path):
    plugin = catalog.get("nsclc-radiomics-seg")
    root = plugin.fabricate(tmp_path / "nsclc", n_cases=2)
    records = {r.case_id: r for r in check_plugin(plugin, root).records}
    record = records["LUNG1-001"]
    assert set(record.annotated) == set(NAMES.values())
    assert 7 in record.labels["lung tumor"] and 7 in record.labels["right lung"]
    reading = record.extra["label_reading"][0]
    assert reading["op"] == "dicom_seg" and reading["unmapped"] == []


def test_source_record_rereads_the_seg_and_exports_it_again(catalog, tmp_path):
    import highdicom as hd
    from typer.testing import CliRunner

    from harmonize.cli.app import app
    from harmonize.manifest.build import read_manifest

    plugin = catalog.get("nsclc-radiomics-seg")
    root = plugin.fabricate(tmp_path / "nsclc", n_cases=1)
    runner = CliRunner()
    assert runner.invoke(app, ["manifest", "-d", "nsclc-radiomics-seg", "-r", str(root), "-o",
                               str(tmp_path / "m")]).exit_code == 0
    manifest = tmp_path / "m" / "nsclc-radiomics-seg.jsonl"
    record = read_manifest(manifest)[0]
    case = discover(plugin, root).cases[0]
    from_record = read_case(record, base=manifest.parent)
    from_plugin = read_case(case, plugin=plugin)
    np.testing.assert_array_equal(from_record.label.data, from_plugin.label.data)
    assert from_record.label.classes == from_plugin.label.classes == record.labels
    result = runner.invoke(app, ["export", "dicom-seg", "-m", str(manifest), "-o",
                                 str(tmp_path / "seg"), "--no-progress"])
    assert result.exit_code == 0, result.output
    again = hd.seg.segread(tmp_path / "seg" / "LUNG1-001.seg.dcm")
    assert {again.get_segment_description(n).segment_label for n in again.segment_numbers} \
        == set(NAMES.values())


def test_discover_shows_segments_and_their_mapping(catalog, tmp_path):
    import json

    from typer.testing import CliRunner

    from harmonize.cli.app import app

    root = catalog.get("nsclc-radiomics-seg").fabricate(tmp_path / "nsclc", n_cases=2)
    result = CliRunner().invoke(app, ["discover", "-d", "nsclc-radiomics-seg", "-r", str(root),
                                      "--format", "json"])
    segments = json.loads(result.stdout)["dicom_seg_segments"]
    assert {s["label"]: (s["name"], s["matched_by"], s["files"]) for s in segments} == {
        label: (name, "code", 2) for label, name in NAMES.items()}


def test_nbia_layout_is_found_by_headers(catalog, tmp_path):
    from harmonize.plugins.fabricators.nsclc_seg import make_nsclc_seg

    plugin = catalog.get("nsclc-radiomics-seg")
    root = make_nsclc_seg(tmp_path / "nbia", n_cases=2, layout="nbia")
    found = discover(plugin, root)
    assert [c.case_id for c in found.cases] == ["LUNG1-001", "LUNG1-002"]
    case = found.cases[0]
    assert case.label.name == "1-1.dcm" and case.images[0].name.startswith("0.000000-NA-")
    masks = structure_masks(read_case(case, plugin=plugin).label)
    for name, mask in highdicom_masks(case.label, case.images[0]).items():
        np.testing.assert_array_equal(masks[name], mask, err_msg=name)
