"""DICOM-SEG in (harmonize/read/dicom_seg.py), out (harmonize export dicom-seg), validate-dicom.

Oracles: analytic shapes written into SEG files by highdicom directly
(:mod:`harmonize.testing.dicom_seg`), read back by highdicom and by pydicom decoding the
bit-packed PixelData frames by hand; CT headers are copies of pydicom's real CT_small.dcm.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.errors import HarmonizeError, ReadError
from harmonize.labels.overlap import structure_masks
from harmonize.labels.vocabulary import load_vocabulary
from harmonize.read.dicom_scan import select_series
from harmonize.read.dicom_seg import FRACTIONAL_THRESHOLD, read_seg
from harmonize.testing.dicom_seg import SegmentSpec, ball, box, real_ct_series, write_seg

runner = CliRunner()
AS = ("SCT", "123037004", "Anatomical Structure")
MAS = ("SCT", "49755003", "Morphologically Abnormal Structure")
LUNG = ("SCT", "39607008", "Lung")
LEFT = ("SCT", "7771000", "Left")
SHAPE = (6, 128, 128)  # (Z, rows, cols) of the fabricated CT
NAMES = ["left lung", "right lung", "lung tumor"]


def specs() -> list[SegmentSpec]:
    return [
        SegmentSpec("Lung-Left", AS, LUNG, box(SHAPE, (1, 10, 64), (5, 100, 120)), modifier=LEFT),
        SegmentSpec("GTV-1", MAS, ("SCT", "108369006", "Neoplasm"), ball(SHAPE, (3, 50, 80), 2.5),
                    region=LUNG),
        SegmentSpec("right lung", AS, ("SCT", "260787004", "Physical object"),  # by label
                    box(SHAPE, (0, 10, 4), (6, 90, 60))),
        SegmentSpec("Couch", AS, ("SCT", "260787004", "Physical object"),
                    box(SHAPE, (0, 120, 0), (6, 128, 128))),
    ]


def xyz(mask: np.ndarray) -> np.ndarray:
    """(Z, rows, cols) -> harmonize's (X = columns, Y = rows, Z)."""
    return np.asarray(mask).transpose(2, 1, 0)


@pytest.fixture()
def case(tmp_path):
    ct = real_ct_series(tmp_path / "ct", SHAPE[0], patient_id="P1", key="p1")
    return tmp_path, ct


def test_binary_seg_by_code_then_label_overlaps_kept_unmapped_reported(case):
    root, ct = case
    given = specs()
    write_seg(root / "seg" / "s.dcm", ct, given, key="p1")
    volume, infos = read_seg(root / "seg" / "s.dcm", select_series(root / "ct"),
                             vocabulary=load_vocabulary(), names=NAMES)
    masks = structure_masks(volume)
    assert set(masks) == set(NAMES)
    np.testing.assert_array_equal(masks["left lung"], xyz(given[0].mask))
    np.testing.assert_array_equal(masks["lung tumor"], xyz(given[1].mask))
    np.testing.assert_array_equal(masks["right lung"], xyz(given[2].mask))
    assert (masks["left lung"] & masks["lung tumor"]).any()  # the overlap survives
    how = {i.label: (i.name, i.matched_by) for i in infos}
    assert how == {"Lung-Left": ("left lung", "code"), "GTV-1": ("lung tumor", "code"),
                   "right lung": ("right lung", "label"), "Couch": (None, None)}
    couch = next(i for i in infos if i.label == "Couch")
    assert "match no vocabulary structure" in couch.reason and couch.voxels == 8 * 128 * 6
    op = volume.operations[0]
    assert op["op"] == "dicom_seg" and op["unmapped"] == [4]


def test_segment_labels_are_matched_like_rtstruct_roi_names(case):
    """Without usable codes, a label goes through the dataset's structure-name matcher: its
    classes' names and synonyms (separators ignored), then its ``roi_patterns``."""
    from harmonize.labels.roi_names import RoiMatcher
    from harmonize.plugin.descriptor import parse_descriptor

    root, ct = case
    thing = ("SCT", "260787004", "Physical object")  # codes that name no structure
    given = [SegmentSpec("GTV-1", AS, thing, ball(SHAPE, (3, 50, 80), 2.5)),
             SegmentSpec("LUNG_L", AS, thing, box(SHAPE, (1, 10, 64), (5, 100, 120)))]
    write_seg(root / "s.dcm", ct, given, key="p1")
    descriptor = parse_descriptor({
        "id": "seg-names", "name": "x", "modality": "CT",
        "values": {1: "lung tumor", 2: "left lung"}, "classes": {"lung tumor": [1], "left lung": [2]},
        "roi_patterns": {"lung tumor": ["gtv[ _-]?1"], "left lung": ["lung[ _-]?l(eft)?"]}})
    names = list(descriptor.classes)
    with pytest.raises(HarmonizeError, match="no segment of the DICOM-SEG maps"):
        read_seg(root / "s.dcm", select_series(root / "ct"), vocabulary=load_vocabulary(),
                 names=names)  # neither label is a vocabulary name
    volume, infos = read_seg(root / "s.dcm", select_series(root / "ct"),
                             vocabulary=load_vocabulary(), names=names,
                             matcher=RoiMatcher.from_descriptor(descriptor))
    assert [(i.name, i.matched_by) for i in infos] == [("lung tumor", "label"),
                                                       ("left lung", "label")]
    masks = structure_masks(volume)
    np.testing.assert_array_equal(masks["lung tumor"], xyz(given[0].mask))
    np.testing.assert_array_equal(masks["left lung"], xyz(given[1].mask))


def test_segment_outside_the_dataset_classes_is_reported(case):
    root, ct = case
    write_seg(root / "s.dcm", ct, specs()[:2], key="p1")
    _, infos = read_seg(root / "s.dcm", select_series(root / "ct"),
                        vocabulary=load_vocabulary(), names=["left lung"])
    gtv = next(i for i in infos if i.label == "GTV-1")
    assert gtv.name is None and "'lung tumor', which is not a class" in gtv.reason


def test_fractional_threshold_half(case):
    root, ct = case
    fraction = np.zeros(SHAPE, dtype=np.float32)
    fraction[2, 40:50, 40:50] = 0.8
    fraction[2, 60:70, 60:70] = 0.3
    fraction[3, 40:50, 40:50] = 0.55
    fraction[4, 40:50, 40:50] = 0.45
    write_seg(root / "f.dcm", ct, [SegmentSpec("Lung-Left", AS, LUNG, fraction, modifier=LEFT)],
              key="p1", fractional=True)
    volume, _ = read_seg(root / "f.dcm", select_series(root / "ct"),
                         vocabulary=load_vocabulary(), names=NAMES)
    assert FRACTIONAL_THRESHOLD == 0.5
    np.testing.assert_array_equal(structure_masks(volume)["left lung"], xyz(fraction >= 0.5))
    assert volume.operations[0]["segmentation_type"] == "FRACTIONAL"


def test_missing_referenced_instance_and_other_frame_of_reference(case):
    root, ct = case
    write_seg(root / "s.dcm", ct, specs()[:1], key="p1")
    other = real_ct_series(root / "other", SHAPE[0], patient_id="P1", key="other")
    with pytest.raises(ReadError, match="frame of reference") as err:
        read_seg(root / "s.dcm", select_series(root / "other"), vocabulary=load_vocabulary(),
                 names=NAMES)
    assert err.value.file == str(root / "s.dcm")
    del other
    (root / "ct" / f"{ct[2].SOPInstanceUID}.dcm").unlink()  # slice 2 holds the lung
    with pytest.raises(ReadError, match=r"references 1 instance\(s\) not in the image series"):
        read_seg(root / "s.dcm", select_series(root / "ct"), vocabulary=load_vocabulary(),
                 names=NAMES)


def test_validate_dicom_checks_seg(case):
    root, ct = case
    write_seg(root / "seg" / "s.dcm", ct, specs(), key="p1")
    result = runner.invoke(app, ["validate-dicom", str(root), "--format", "json"])
    seg = next(s for s in json.loads(result.stdout)["series"] if s["modality"] == "SEG")
    assert {c["check"]: c["status"] for c in seg["checks"]} == {
        "referenced_series": "PASS", "frame_of_reference": "PASS",
        "segments_non_empty": "PASS", "frames_inside": "PASS"}
    shutil.rmtree(root / "ct")
    result = runner.invoke(app, ["validate-dicom", str(root), "--format", "json"])
    seg = next(s for s in json.loads(result.stdout)["series"] if s["modality"] == "SEG")
    failed = {c["check"] for c in seg["checks"] if c["status"] == "FAIL"}
    assert failed == {"referenced_series", "frame_of_reference", "frames_inside"}


def test_validate_dicom_reports_an_undecodable_seg(case):
    root, ct = case
    write_seg(root / "seg" / "s.dcm", ct, specs(), key="p1")
    ds = pydicom.dcmread(root / "seg" / "s.dcm")
    ds.PixelData = ds.PixelData[:10]  # truncated frames
    ds.save_as(root / "seg" / "s.dcm")
    result = runner.invoke(app, ["validate-dicom", str(root), "--format", "json"])
    seg = next(s for s in json.loads(result.stdout)["series"] if s["modality"] == "SEG")
    assert [(c["check"], c["status"]) for c in seg["checks"]] == [("readable", "FAIL")]
    assert result.exit_code == 1


def test_validate_dicom_reports_an_empty_segment(case):
    root, ct = case
    empty = SegmentSpec("Heart", AS, ("SCT", "80891009", "Heart"), np.zeros(SHAPE, bool))
    write_seg(root / "seg" / "s.dcm", ct, [specs()[0], empty], key="p1",
              omit_empty_frames=False)
    result = runner.invoke(app, ["validate-dicom", str(root), "--format", "json"])
    seg = next(s for s in json.loads(result.stdout)["series"] if s["modality"] == "SEG")
    check = next(c for c in seg["checks"] if c["check"] == "segments_non_empty")
    assert check["status"] == "FAIL" and "[2]" in check["detail"]


def test_missing_highdicom_names_the_extra(monkeypatch, case):
    import builtins

    real = builtins.__import__

    def no_highdicom(name, *args, **kwargs):
        if name == "highdicom" or name.startswith("highdicom."):
            raise ImportError("no highdicom")
        return real(name, *args, **kwargs)

    root, ct = case
    write_seg(root / "s.dcm", ct, specs()[:1], key="p1")
    monkeypatch.setattr(builtins, "__import__", no_highdicom)
    with pytest.raises(HarmonizeError, match="highdicom") as err:
        read_seg(root / "s.dcm", select_series(root / "ct"), vocabulary=load_vocabulary(),
                 names=NAMES)
    assert "harmonize-med[dicom]" in err.value.hint


# ------------------------------------------------------------------------------ round trip


def lps_affine(headers: list) -> np.ndarray:
    """RAS affine of (X = columns, Y = rows, Z = slices by position) straight from the tags."""
    first, last = headers[0], headers[-1]
    iop = np.asarray(first.ImageOrientationPatient, float)
    dr, dc = (float(v) for v in first.PixelSpacing)
    step = (np.asarray(last.ImagePositionPatient, float)
            - np.asarray(first.ImagePositionPatient, float)) / (len(headers) - 1)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = iop[:3] * dc, iop[3:] * dr, step
    lps[:3, 3] = np.asarray(first.ImagePositionPatient, float)
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


DESCRIPTOR = """\
id: toy-dicom
name: Toy DICOM series with NIfTI masks
modality: CT
values: {0: background, 1: left lung, 2: right lung, 3: lung tumor}
classes:
  left lung: [1]
  right lung: [2]
  lung tumor: [3]
  lung: [1, 2, 3]
layout:
  - {images: "images/*", label: "labels/{case}.nii.gz"}
"""


def unpack_frames(ds) -> np.ndarray:
    """BINARY SEG PixelData decoded by hand: 1 bit per pixel, little-endian bit order."""
    n, rows, cols = int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)
    bits = np.unpackbits(np.frombuffer(ds.PixelData, np.uint8), bitorder="little")
    return bits[: n * rows * cols].reshape(n, rows, cols)


def test_round_trip_mask_to_seg_and_back(tmp_path):
    import highdicom as hd

    ct = real_ct_series(tmp_path / "root" / "images" / "case01", SHAPE[0], patient_id="P1",
                        key="rt", drop=("PatientBirthDate", "PatientSex", "StudyID"))
    label = np.zeros(SHAPE, np.uint8)  # (Z, rows, cols)
    label[box(SHAPE, (0, 10, 64), (6, 100, 120))] = 1
    label[box(SHAPE, (1, 10, 4), (5, 90, 60))] = 2
    label[ball(SHAPE, (3, 50, 30), 3)] = 3  # inside the right lung
    (tmp_path / "root" / "labels").mkdir()
    nib.save(nib.Nifti1Image(xyz(label), lps_affine(ct)),
             tmp_path / "root" / "labels" / "case01.nii.gz")
    (tmp_path / "toy.yaml").write_text(DESCRIPTOR)
    man = runner.invoke(app, ["manifest", "--descriptor", str(tmp_path / "toy.yaml"), "-d",
                              "toy-dicom", "-r", str(tmp_path / "root"), "-o",
                              str(tmp_path / "m")])
    assert man.exit_code == 0, man.output
    out = tmp_path / "seg"
    result = runner.invoke(app, ["export", "dicom-seg", "-m", str(tmp_path / "m" /
                                 "toy-dicom.jsonl"), "-o", str(out), "--no-progress",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    path = out / "case01.seg.dcm"
    expected = {"left lung": label == 1, "right lung": label == 2, "lung tumor": label == 3,
                "lung": label > 0}
    uids = [d.SOPInstanceUID for d in sorted(ct, key=lambda d: float(d.ImagePositionPatient[2]))]
    vocabulary = load_vocabulary()
    # 1. highdicom
    seg = hd.seg.segread(path)
    by_label = {seg.get_segment_description(n).segment_label: n for n in seg.segment_numbers}
    assert set(by_label) == set(expected)
    for name, number in by_label.items():
        got = seg.get_pixels_by_source_instance(uids, segment_numbers=[number],
                                                assert_missing_frames_are_empty=True)[..., 0]
        np.testing.assert_array_equal(got > 0, expected[name], err_msg=name)
    # 2. pydicom alone: frames decoded by hand, placed by their source instance
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert ds.PatientID == "P1" and ds.PatientBirthDate == ""  # absent type 2: empty
    assert ds.FrameOfReferenceUID == ct[0].FrameOfReferenceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == ct[0].SeriesInstanceUID
    frames = unpack_frames(ds)
    rebuilt = {n: np.zeros(SHAPE, bool) for n in by_label.values()}
    for k, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        rebuilt[number][uids.index(source)] = frames[k] > 0
    for name, number in by_label.items():
        np.testing.assert_array_equal(rebuilt[number], expected[name], err_msg=name)
    # segment codes are the vocabulary's, algorithm identified
    for item in ds.SegmentSequence:
        codes = vocabulary.code(str(item.SegmentLabel))
        kind = item.SegmentedPropertyTypeCodeSequence[0]
        assert (kind.CodingSchemeDesignator, kind.CodeValue) == codes.type.key
        cat = item.SegmentedPropertyCategoryCodeSequence[0]
        assert (cat.CodingSchemeDesignator, cat.CodeValue) == codes.category.key
        modifier = kind.get("SegmentedPropertyTypeModifierCodeSequence")
        assert (None if not modifier else (modifier[0].CodingSchemeDesignator,
                                           modifier[0].CodeValue)) == (
            codes.modifier.key if codes.modifier else None)
        region = item.get("AnatomicRegionSequence")
        assert (None if not region else (region[0].CodingSchemeDesignator, region[0].CodeValue)
                ) == (codes.region.key if codes.region else None)
        assert item.SegmentAlgorithmName == "harmonize"
    # 3. harmonize's own reader
    volume, infos = read_seg(path, select_series(tmp_path / "root" / "images" / "case01"),
                             vocabulary=vocabulary, names=["left lung", "right lung",
                                                           "lung tumor", "lung"])
    assert all(i.matched_by == "code" for i in infos)
    masks = structure_masks(volume)
    for name, mask in expected.items():
        np.testing.assert_array_equal(masks[name], xyz(mask), err_msg=name)
    report = json.loads(result.stdout)["cases"]["case01"]
    assert report["bytes"] == path.stat().st_size and report["frames"] == int(ds.NumberOfFrames)


def test_export_refuses_normalized_and_non_dicom_cases(tmp_path):
    from harmonize.export.dicom_seg import export_dicom_seg
    from harmonize.testing import write_nifti

    root = tmp_path / "root"
    write_nifti(root / "images" / "a.nii.gz", np.zeros((4, 4, 4), np.int16), np.eye(4))
    write_nifti(root / "labels" / "a.nii.gz", np.ones((4, 4, 4), np.uint8), np.eye(4))
    (tmp_path / "toy.yaml").write_text(DESCRIPTOR.replace("images/*", "images/*.nii.gz")
                                       .replace("{case}.nii.gz", "{name}"))
    assert runner.invoke(app, ["manifest", "--descriptor", str(tmp_path / "toy.yaml"), "-d",
                               "toy-dicom", "-r", str(root), "-o", str(tmp_path / "m")]
                         ).exit_code == 0
    result = export_dicom_seg(tmp_path / "m" / "toy-dicom.jsonl", tmp_path / "out")
    assert not result.cases and len(result.errors) == 1
    assert "not a DICOM series folder" in result.errors[0].message
    from dataclasses import replace

    from harmonize.export import ExportError, load_entries
    from harmonize.export.dicom_seg import segmentation_of

    entry = load_entries(tmp_path / "m" / "toy-dicom.jsonl")[0]
    normalized = replace(entry, record=replace(entry.record, stage="normalized"))
    with pytest.raises(ExportError, match="normalized") as err:
        segmentation_of(normalized, load_vocabulary())
    assert "harmonize manifest" in err.value.hint


def test_yaml_only_descriptor_with_seg_labels_runs_to_the_loader(tmp_path):
    """discover -> run -> loader for a descriptor with no Python: the core reads the SEG."""
    from harmonize.engine.config import Target
    from harmonize.engine.pipeline import run
    from harmonize.loader import HarmonizedDataset
    from harmonize.plugin import LayoutDataset, parse_descriptor
    from harmonize.plugin.catalog import Catalog

    given = specs()
    written = {}
    for case_id in ("case1", "case2"):
        ct = real_ct_series(tmp_path / "rel" / "images" / case_id, SHAPE[0], patient_id=case_id,
                            key=case_id)
        write_seg(tmp_path / "rel" / "segs" / f"{case_id}.dcm", ct, given, key=case_id)
        written[case_id] = lps_affine(ct)
    descriptor = parse_descriptor({
        "id": "seg-toy", "name": "SEG toy", "modality": "CT", "ct_window": [-1000, 400],
        "values": {0: "background", 1: "left lung", 2: "right lung", 3: "lung tumor"},
        "classes": {"left lung": [1], "right lung": [2], "lung tumor": [3]},
        "layout": [{"images": "images/*", "label": "segs/{case}.dcm"}]})
    catalog = Catalog(datasets={"seg-toy": LayoutDataset(descriptor)}, errors=[])
    result = run([Target("seg-toy", tmp_path / "rel")], tmp_path / "out", workers=1,
                 progress=False, catalog=catalog)
    assert not result.errors
    dataset = HarmonizedDataset(result.manifests["seg-toy"], patch_size=None,
                                classes=["left lung", "right lung", "lung tumor"])
    expected = {"left lung": given[0].mask, "lung tumor": given[1].mask,
                "right lung": given[2].mask}
    assert len(dataset) == 2
    for i in range(len(dataset)):
        sample, record = dataset[i], dataset.records[i]
        assert any(op.get("op") == "dicom_seg" and op["unmapped"] == [4]
                   for op in record.extra["operations"])
        for k, name in enumerate(sample["classes"]):
            # the oracle: nibabel's own reorientation of the analytic mask to RAS
            ras = nib.as_closest_canonical(nib.Nifti1Image(
                xyz(expected[name]).astype(np.uint8), written[record.case_id])).get_fdata() > 0
            np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool), ras,
                                          err_msg=f"{record.case_id} {name}")


def test_export_refuses_datasets_whose_plugin_places_labels(catalog, tmp_path):
    from harmonize.export.dicom_seg import export_dicom_seg

    root = catalog.get("pancreas-ct").fabricate(tmp_path / "pc", n_cases=1)
    assert runner.invoke(app, ["manifest", "-d", "pancreas-ct", "-r", str(root), "-o",
                               str(tmp_path / "m")]).exit_code == 0
    result = export_dicom_seg(tmp_path / "m" / "pancreas-ct.jsonl", tmp_path / "out")
    assert not result.cases and "placed on the series by its plugin" in result.errors[0].message
