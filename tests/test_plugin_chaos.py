"""CHAOS CT and MR plugins on fabricated copies of the release (DICOM series + Ground PNG stacks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins._dicom import read_series
from harmonize.plugins.chaos import map_mr_grey
from harmonize.plugins.fabricators.chaos import CT_LIVER_HU, MR_SIGNAL, make_chaos
from PIL import Image

from harmonize.errors import DiscoveryError, LabelError
from harmonize.plugin.discovery import discover
from harmonize.read.volume import read_volume
from harmonize.testing import check_plugin

MR_CLASSES = {"liver": [1], "right kidney": [2], "left kidney": [3], "kidney": [2, 3], "spleen": [4]}
ORGAN_VALUE = {"liver": 1, "right kidney": 2, "left kidney": 3, "spleen": 4}
SEQUENCE = {"t1dual_inphase": "inphase", "t1dual_outphase": "outphase", "t2spir": "t2spir"}


@pytest.fixture(scope="module")
def ct_root(tmp_path_factory) -> Path:
    return make_chaos(tmp_path_factory.mktemp("chaos") / "chaos", modality="CT", n_cases=2, seed=3)


@pytest.fixture(scope="module")
def mr_root(tmp_path_factory) -> Path:
    return make_chaos(tmp_path_factory.mktemp("chaos") / "chaos", modality="MR", n_cases=2, seed=5)


def centroid_ras(volume, mask: np.ndarray) -> np.ndarray:
    return (volume.affine @ [*np.argwhere(mask).mean(axis=0), 1.0])[:3]


def test_ct_cases_splits_and_labels(catalog, ct_root):
    check = check_plugin(catalog.get("chaos-ct"), ct_root)
    records = {r.case_id: r for r in check.records}
    assert sorted(records) == ["1", "2", "3"]  # train 1, 2; test 3
    train = records["2"]
    assert train.patient_id == "2" and train.official_split == "train"
    assert train.labels == {"liver": [1]} and train.mask.endswith("Train_Sets/CT/2/Ground")
    test = records["3"]
    assert test.mask is None and test.annotated == [] and test.official_split == test.split == "test"
    assert check.discovery.skipped == []


def test_ct_mask_lies_on_the_liver_in_world_coordinates(catalog, ct_root):
    plugin = catalog.get("chaos-ct")
    case = next(c for c in discover(plugin, ct_root).cases if c.case_id == "1")
    label, image = plugin.read_label(case), read_volume(case.images[0])
    assert np.allclose(label.affine, image.affine) and label.data.shape == image.data.shape
    liver = label.data == 1
    assert liver.sum() > 100 and np.array_equal(liver, image.data == CT_LIVER_HU)
    centre = image.affine @ [*(np.array(image.shape) - 1) / 2, 1.0]
    assert centroid_ras(image, liver)[0] > centre[0]  # on the patient's right (RAS +x)
    # the quirk: file names run from the top slice down, so the name order is the reverse of the
    # reader's position order, and the PNG stack must not be pasted in position order
    series = read_series(case.images[0])
    assert [s.index for s in series.by_name()] == list(range(len(series.slices)))[::-1]
    pngs = sorted((case.label).glob("*.png"))
    wrong = series.paste([(s, np.asarray(Image.open(p))) for s, p in zip(series.by_position(), pngs)])
    assert not np.array_equal(wrong.data > 0, liver)


def test_ct_ground_pngs_are_one_bit(ct_root):
    png = ct_root / "Train_Sets" / "CT" / "1" / "Ground" / "liver_GT_005.png"
    assert Image.open(png).mode == "1"
    assert (ct_root / "Train_Sets" / "CT" / "1" / "DICOM_anon" / "i0005,0000b.dcm").is_file()


def test_mr_cases_share_patient_and_ground(catalog, mr_root):
    check = check_plugin(catalog.get("chaos-mr"), mr_root)
    records = {r.case_id: r for r in check.records}
    assert sorted(records) == sorted(f"{n}_{s}" for n in (1, 2, 4) for s in SEQUENCE)
    for number in ("1", "2", "4"):
        group = [r for r in records.values() if r.patient_id == number]
        assert len(group) == 3 and len({r.split for r in group}) == 1
    inphase, outphase, t2 = (records[f"1_{s}"] for s in SEQUENCE)
    assert inphase.mask == outphase.mask and inphase.mask.endswith("MR/1/T1DUAL/Ground")
    assert t2.mask.endswith("MR/1/T2SPIR/Ground") and inphase.image != outphase.image
    assert inphase.labels == MR_CLASSES and inphase.metadata["phase"] == "in"
    assert records["4_t2spir"].mask is None and records["4_t2spir"].official_split == "test"


def test_mr_organs_lie_on_the_image_in_world_coordinates(catalog, mr_root):
    plugin = catalog.get("chaos-mr")
    for case in (c for c in discover(plugin, mr_root).cases if c.patient_id == "2"):
        label, image = plugin.read_label(case), read_volume(case.images[0])
        assert np.allclose(label.affine, image.affine)
        signal = MR_SIGNAL[SEQUENCE[case.case_id.split("_", 1)[1]]]
        for organ, value in ORGAN_VALUE.items():
            mask = label.data == value
            assert mask.sum() > 20 and np.array_equal(mask, image.data == signal[organ]), organ
        x = {organ: centroid_ras(label, label.data == v)[0] for organ, v in ORGAN_VALUE.items()}
        assert x["right kidney"] > x["left kidney"] and x["liver"] > x["spleen"]


def test_mr_placement_does_not_follow_dicom_file_names(catalog, mr_root, tmp_path):
    """MR PNG k belongs to the k-th slice by position; renaming the DICOM files changes nothing."""
    plugin = catalog.get("chaos-mr")
    root = tmp_path / "chaos"
    shutil.copytree(mr_root / "Train_Sets" / "MR" / "1", root / "Train_Sets" / "MR" / "1")
    case = next(c for c in discover(plugin, root).cases if c.case_id == "1_t2spir")
    before = plugin.read_label(case).data
    files = sorted(case.images[0].glob("*.dcm"))
    for path, name in zip(files, reversed([f.name for f in files])):
        path.rename(path.with_name("tmp-" + name))
    for path in case.images[0].glob("tmp-*"):
        path.rename(path.with_name(path.name[4:]))
    assert np.array_equal(plugin.read_label(case).data, before)


def test_mr_grey_ranges():
    grey = np.array([[0, 56, 63, 70, 111, 126, 135], [176, 189, 200, 241, 252, 255, 0]])
    assert map_mr_grey(grey, Path("x.png")).tolist() == [[0, 1, 1, 1, 2, 2, 2], [3, 3, 3, 4, 4, 4, 0]]
    for stray in (55, 90, 110, 201):  # lower bounds are exclusive, as in nnU-Net and SAT-DS
        with pytest.raises(LabelError, match=str(stray)):
            map_mr_grey(np.array([[0, stray]]), Path("x.png"))


def test_in_range_grey_values_map_to_their_organ(catalog, mr_root, tmp_path):
    plugin = catalog.get("chaos-mr")
    root = tmp_path / "chaos"
    shutil.copytree(mr_root / "Train_Sets" / "MR" / "1", root / "Train_Sets" / "MR" / "1")
    case = next(c for c in discover(plugin, root).cases if c.case_id == "1_t1dual_inphase")
    reference = plugin.read_label(case).data
    for png in sorted(case.label.glob("*.png")):
        grey = np.asarray(Image.open(png)).copy()
        grey[grey == 63], grey[grey == 126], grey[grey == 252] = 58, 133, 241
        Image.fromarray(grey).save(png)
    assert np.array_equal(plugin.read_label(case).data, reference)


def test_stray_grey_value_is_a_label_error_naming_the_png(catalog, mr_root, tmp_path):
    root = tmp_path / "chaos"
    shutil.copytree(mr_root / "Train_Sets" / "MR" / "2", root / "Train_Sets" / "MR" / "2")
    png = sorted((root / "Train_Sets" / "MR" / "2" / "T2SPIR" / "Ground").glob("*.png"))[4]
    grey = np.asarray(Image.open(png)).copy()
    grey[0, 0] = 90
    Image.fromarray(grey).save(png)
    check = check_plugin(catalog.get("chaos-mr"), root, allow_errors=True)
    assert [r.case_id for r in check.records] == ["2_t1dual_inphase", "2_t1dual_outphase"]
    (error,) = check.errors
    assert error.kind == "label" and error.case == "2_t2spir" and error.file.endswith(png.name)
    assert "[90]" in error.message and error.hint


def test_missing_ground_png_names_both_folders(catalog, ct_root, tmp_path):
    root = tmp_path / "chaos"
    shutil.copytree(ct_root / "Train_Sets" / "CT" / "1", root / "Train_Sets" / "CT" / "1")
    (root / "Train_Sets" / "CT" / "1" / "Ground" / "liver_GT_003.png").unlink()
    check = check_plugin(catalog.get("chaos-ct"), root, allow_errors=True)
    (error,) = check.errors
    assert error.kind == "label" and error.file.endswith("CT/1/Ground")
    assert "PNG(s)" in error.message and "DICOM_anon" in error.message


def test_two_series_in_one_folder_is_a_read_error(catalog, ct_root, tmp_path):
    root = tmp_path / "chaos"
    shutil.copytree(ct_root / "Train_Sets" / "CT" / "1", root / "Train_Sets" / "CT" / "1")
    extra = root / "Train_Sets" / "CT" / "1" / "DICOM_anon"
    for path in (ct_root / "Test_Sets" / "CT" / "3" / "DICOM_anon").glob("*.dcm"):
        shutil.copy(path, extra / f"x{path.name}")
    check = check_plugin(catalog.get("chaos-ct"), root, allow_errors=True)
    (error,) = check.errors
    assert error.kind == "read" and "2 DICOM series in one folder" in error.message
    assert error.file.endswith("DICOM_anon")


def test_zip_folder_hidden_files_and_missing_ground(catalog, ct_root, tmp_path):
    root = tmp_path / "download"
    shutil.copytree(ct_root / "Train_Sets", root / "CHAOS_Train_Sets" / "Train_Sets")
    shutil.rmtree(root / "CHAOS_Train_Sets" / "Train_Sets" / "CT" / "2" / "Ground")
    (root / "CHAOS_Train_Sets" / "Train_Sets" / "CT" / "._1").write_bytes(b"\0")
    (root / "CHAOS_Train_Sets" / "Train_Sets" / "CT" / "notes.txt").write_text("x")
    found = discover(catalog.get("chaos-ct"), root)
    assert [c.case_id for c in found.cases] == ["1"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "hidden" in reasons["._1"] and "not a CHAOS patient" in reasons["notes.txt"]
    assert "Ground folder missing" in reasons["Ground"]


def test_root_without_chaos_is_a_clear_error(catalog, tmp_path):
    (tmp_path / "Train_Sets" / "MR").mkdir(parents=True)
    with pytest.raises(DiscoveryError, match="Train_Sets/CT") as info:
        list(catalog.get("chaos-ct").discover(tmp_path))
    assert "Test_Sets" in info.value.hint


def test_descriptors_and_demo_flags(catalog):
    ct, mr = catalog.get("chaos-ct"), catalog.get("chaos-mr")
    assert ct.descriptor.modality == "CT" and ct.descriptor.ct_window and not ct.demo
    assert mr.descriptor.modality == "MR" and mr.demo and mr.can_fabricate
    for desc in (ct.descriptor, mr.descriptor):
        assert desc.licence and desc.citation and desc.homepage and desc.download
        assert desc.expected_root and desc.cases in (40, 120)


def test_harmonize_run_chaos_mr(mr_root, tmp_path):
    from typer.testing import CliRunner

    from harmonize.cli.app import app
    from harmonize.manifest.build import read_manifest

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-d", "chaos-mr", "-r", str(mr_root), "-o", str(out),
                                      "-w", "1", "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    records = {r.case_id: r for r in read_manifest(out / "chaos-mr.jsonl")}
    assert len(records) == 9 and records["4_t1dual_inphase"].mask is None
    record = records["1_t2spir"]
    assert record.orientation == "RAS" and record.labels == MR_CLASSES
    mask = np.asarray(nib.load(out / record.mask).dataobj)
    image = nib.load(out / record.image)
    data = np.asarray(image.dataobj)
    liver = mask == 1
    assert np.unique(np.round(data[liver], 4)).size == 1  # the mask covers exactly one tissue
    x = {v: np.argwhere(mask == v)[:, 0].mean() for v in (1, 2, 3, 4)}
    assert x[2] > x[3] and x[1] > x[4]  # RAS: larger x index = further to the patient's right
