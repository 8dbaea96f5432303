"""The layout language on tiny copies of real releases' layouts.

Layouts (never from memory): AbdomenAtlas 1.1 Mini and HaN-Seg from SAT-DS ``processor.py``
(``preprocess_AbdomenAtlas``: ``AbdomenAtlas1.1Mini_BDMAP_00000001_00000500/BDMAP_00000100/
ct.nii.gz`` + ``segmentations/<organ>.nii.gz``; ``preprocess_HAN_Seg``: ``case_xx/
case_xx_IMG_CT.nrrd`` + ``case_xx_OAR_<name>.seg.nrrd``), BraTS 2023 GLI from ``preprocess_BraTS2023``
(``<case>/<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz``), the RECIST dataset's final-formatted layout and
MSD's ``dataset.json`` from DATASETS.md sections 2 and 4. Oracles are the written arrays (read
back with nibabel / SimpleITK) and per-voxel brute force, never the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from harmonize.engine.config import Target
from harmonize.engine.pipeline import run
from harmonize.errors import DiscoveryError
from harmonize.loader import HarmonizedDataset
from harmonize.plugin.catalog import Catalog
from harmonize.plugin.descriptor import parse_descriptor
from harmonize.plugin.discovery import discover
from harmonize.plugin.layout import LayoutDataset
from harmonize.read.case import read_case
from harmonize.testing import write_nifti

SHAPE = (10, 9, 7)
AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])
BASE = {"modality": "CT", "licence": "test", "citation": "test", "homepage": "https://x.invalid"}


def plugin_of(**descriptor) -> LayoutDataset:
    return LayoutDataset(parse_descriptor({**BASE, **descriptor}))


def ball(centre: tuple[float, float, float], radius: float) -> np.ndarray:
    grid = np.indices(SHAPE).astype(float)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


# ------------------------------------------------------------------ AbdomenAtlas: ids from folders,
# one file per structure, overlaps kept

ATLAS_ORGANS = {"liver": "liver", "hepatic_vessel": "hepatic vessel", "kidney_left": "left kidney",
                "aorta": "aorta"}
ATLAS = {
    "id": "atlas-toy", "name": "AbdomenAtlas-like",
    "values": {0: "background", 1: "liver", 2: "hepatic vessel", 3: "left kidney", 4: "aorta"},
    "classes": {"liver": [1], "hepatic vessel": [2], "left kidney": [3], "aorta": [4]},
    "ct_window": [-200, 250],
    "layout": {"images": "AbdomenAtlas1.1Mini_*/{case:BDMAP_*}/ct.nii.gz",
               "structures": "{parent}/segmentations/{structure}.nii.gz"},
    "structure_files": {"hepatic_vessel": "hepatic vessel", "kidney_left": "left kidney"},
}


def atlas_masks() -> dict[str, np.ndarray]:
    """A vessel inside the liver, a kidney touching the liver, an aorta crossing both."""
    aorta = np.zeros(SHAPE, bool)
    aorta[3:7, 4, :] = True
    return {"liver": ball((4, 4, 3), 3.2), "hepatic_vessel": ball((4, 4, 3), 1.4),
            "kidney_left": ball((7, 4, 3), 2.2), "aorta": aorta}


def write_atlas(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Three cases in two partition folders; BDMAP_00000002 has no aorta file (not annotated)."""
    rng = np.random.default_rng(1)
    written = {}
    for partition, case, drop in (
            ("AbdomenAtlas1.1Mini_BDMAP_00000001_00000500", "BDMAP_00000001", None),
            ("AbdomenAtlas1.1Mini_BDMAP_00000001_00000500", "BDMAP_00000002", "aorta"),
            ("AbdomenAtlas1.1Mini_BDMAP_00000501_00001000", "BDMAP_00000501", None)):
        folder = root / partition / case
        write_nifti(folder / "ct.nii.gz", rng.integers(-200, 200, SHAPE).astype(np.int16), AFFINE)
        masks = {k: v for k, v in atlas_masks().items() if k != drop}
        for organ, mask in masks.items():
            write_nifti(folder / "segmentations" / f"{organ}.nii.gz", mask.astype(np.uint8), AFFINE)
        written[case] = {ATLAS_ORGANS[k]: v for k, v in masks.items()}
    return written


def test_case_ids_from_folders_and_structures_per_case(tmp_path):
    write_atlas(tmp_path)
    result = discover(plugin_of(**ATLAS), tmp_path)
    cases = {c.case_id: c for c in result.cases}
    assert sorted(cases) == ["BDMAP_00000001", "BDMAP_00000002", "BDMAP_00000501"]
    assert cases["BDMAP_00000002"].annotated == ("liver", "hepatic vessel", "left kidney")
    assert cases["BDMAP_00000001"].label == tmp_path / (
        "AbdomenAtlas1.1Mini_BDMAP_00000001_00000500/BDMAP_00000001/segmentations")
    assert not result.skipped


def test_overlapping_structure_files_come_back_exactly_after_run(tmp_path):
    written = write_atlas(tmp_path / "release")
    plugin = plugin_of(**ATLAS)
    catalog = Catalog(datasets={"atlas-toy": plugin}, errors=[])
    result = run([Target("atlas-toy", tmp_path / "release")], tmp_path / "out", workers=1,
                 progress=False, catalog=catalog)
    assert not result.errors
    names = list(ATLAS["classes"])
    dataset = HarmonizedDataset(result.manifests["atlas-toy"], patch_size=None, classes=names)
    assert len(dataset) == 3
    for i in range(len(dataset)):
        sample, record = dataset[i], dataset.records[i]
        masks = written[record.case_id]
        assert sorted(record.annotated) == sorted(masks)
        for k, name in enumerate(sample["classes"]):
            if name in masks:  # RAS at native spacing already: voxel for voxel
                np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool),
                                              masks[name], err_msg=f"{record.case_id} {name}")


def test_duplicate_case_ids_name_both_files(tmp_path):
    write_atlas(tmp_path)
    layout = {**ATLAS["layout"], "images": "*/*/ct.nii.gz"}  # the attempt: ids 'ct'
    with pytest.raises(DiscoveryError) as err:
        list(plugin_of(**{**ATLAS, "layout": layout}).discover(tmp_path))
    message = str(err.value)
    assert "'ct' is found twice" in message
    assert "BDMAP_00000001/ct.nii.gz" in message and "BDMAP_00000002/ct.nii.gz" in message


def test_duplicates_skip_lets_an_earlier_group_win(tmp_path):
    """A release's corrected copies (BraTS-MEN-Train-Fix beside BraTS-MEN-Train, SAT-DS
    preprocess_BraTS2023_MEN) listed first win; a repeat within one group stays an error."""
    for folder, cases in (("Train", ("c1", "c2")), ("Train-Fix", ("c2",))):
        for case in cases:
            label = np.zeros(SHAPE, np.uint8)
            label[ball((5, 4, 3), 2 if folder == "Train" else 3)] = 1
            write_nifti(tmp_path / folder / case / "img.nii.gz", np.zeros(SHAPE, np.int16), AFFINE)
            write_nifti(tmp_path / folder / case / "seg.nii.gz", label, AFFINE)
    base = {"id": "fix-toy", "name": "fix", "values": {0: "background", 1: "liver"},
            "classes": {"liver": [1]}}
    groups = [{"images": "Train-Fix/{case}/img.nii.gz", "label": "{parent}/seg.nii.gz"},
              {"images": "Train/{case}/img.nii.gz", "label": "{parent}/seg.nii.gz",
               "duplicates": "skip"}]
    result = discover(plugin_of(**base, layout=groups), tmp_path)
    assert {c.case_id: c.label for c in result.cases} == {
        "c1": tmp_path / "Train/c1/seg.nii.gz", "c2": tmp_path / "Train-Fix/c2/seg.nii.gz"}
    assert [(s.path, s.case_id) for s in result.skipped] == [
        (tmp_path / "Train/c2/img.nii.gz", "c2")]  # its label claimed: no orphan report
    assert "Train-Fix/c2/img.nii.gz" in result.skipped[0].reason
    with pytest.raises(DiscoveryError, match="'c2' is found twice"):  # default: error
        list(plugin_of(**base, layout=[groups[0], {**groups[1], "duplicates": "error"}])
             .discover(tmp_path))
    with pytest.raises(DiscoveryError, match="is found twice"):  # same group: still an error
        list(plugin_of(**base, layout=[{"images": "*/{case}/img.nii.gz",
                                        "label": "{parent}/seg.nii.gz",
                                        "duplicates": "skip"}]).discover(tmp_path))


def test_unknown_structure_file_is_reported(tmp_path):
    write_atlas(tmp_path)
    stray = next(tmp_path.glob("*/BDMAP_00000001/segmentations")) / "pancreas.nii.gz"
    write_nifti(stray, np.zeros(SHAPE, np.uint8), AFFINE)
    result = discover(plugin_of(**ATLAS), tmp_path)
    assert [(s.path, s.case_id) for s in result.skipped] == [(stray, "BDMAP_00000001")]
    assert "maps to no class" in result.skipped[0].reason


def test_case_without_any_structure_file_is_skipped(tmp_path):
    write_atlas(tmp_path)
    for path in tmp_path.glob("*/BDMAP_00000501/segmentations/*"):
        path.unlink()
    result = discover(plugin_of(**ATLAS), tmp_path)
    assert "BDMAP_00000501" not in {c.case_id for c in result.cases}
    assert "no structure file" in result.skipped[0].reason


# ------------------------------------------------------------------ HaN-Seg: .seg.nrrd per OAR


def test_hanseg_structure_files_in_nrrd(tmp_path):
    rng = np.random.default_rng(2)
    brainstem, cochlea = ball((5, 4, 3), 2.5), ball((5, 5, 3), 1.2)  # overlapping on purpose
    for case in ("case_01", "case_02"):
        folder = tmp_path / "set_1" / case
        folder.mkdir(parents=True)
        ct = sitk.GetImageFromArray(rng.integers(-100, 100, SHAPE[::-1]).astype(np.int16))
        ct.SetSpacing((1.5, 1.5, 3.0))
        sitk.WriteImage(ct, str(folder / f"{case}_IMG_CT.nrrd"))
        for name, mask in (("Brainstem", brainstem), ("Cochlea_L", cochlea)):
            seg = sitk.GetImageFromArray(mask.transpose(2, 1, 0).astype(np.uint8))
            seg.SetSpacing((1.5, 1.5, 3.0))
            sitk.WriteImage(seg, str(folder / f"{case}_OAR_{name}.seg.nrrd"))
    plugin = plugin_of(
        id="hanseg-toy", name="HaN-Seg-like",
        values={0: "background", 1: "brainstem", 2: "left cochlea"},
        classes={"brainstem": 1, "left cochlea": 2},
        layout={"images": "set_1/{case:case_*}/{case}_IMG_CT.nrrd",
                "structures": "{parent}/{case}_OAR_{structure}.seg.nrrd"},
        structure_files={"Brainstem": "brainstem", "Cochlea_L": "left cochlea"})
    result = discover(plugin, tmp_path)
    assert [c.case_id for c in result.cases] == ["case_01", "case_02"] and not result.skipped
    data = read_case(result.cases[0], plugin=plugin)
    values = data.label.classes
    got = {name: np.isin(data.label.data, vals) for name, vals in values.items()}
    np.testing.assert_array_equal(got["brainstem"], brainstem)
    np.testing.assert_array_equal(got["left cochlea"], cochlea)


# ------------------------------------------------------------------ BraTS 2023: one file per channel

BRATS_SEQ = ("t1n", "t1c", "t2w", "t2f")
BRATS = {
    "id": "brats-toy", "name": "BraTS-like", "modality": "MR",
    "values": {0: "background", 1: "NETC", 2: "SNFH", 3: "ET"},
    "classes": {"necrotic brain tumor core": 1, "peritumoral edema": 2,
                "enhancing brain tumor": 3},
    "layout": {"images": "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData/{case}/{case}-t1n.nii.gz",
               "channel_files": {"T1": "{parent}/{case}-t1n.nii.gz",
                                 "T1ce": "{parent}/{case}-t1c.nii.gz",
                                 "T2": "{parent}/{case}-t2w.nii.gz",
                                 "FLAIR": "{parent}/{case}-t2f.nii.gz"},
               "label": "{parent}/{case}-seg.nii.gz", "split": "train"},
    "patient_id": r"^(?P<id>BraTS-GLI-\d{5})-\d{3}$",
}


def test_brats_channels_from_one_file_each(tmp_path):
    top = tmp_path / "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData"
    rng = np.random.default_rng(3)
    for case in ("BraTS-GLI-00000-000", "BraTS-GLI-00000-001", "BraTS-GLI-00002-000"):
        for seq in BRATS_SEQ:
            if case.endswith("00002-000") and seq == "t2f":
                continue  # a missing channel skips the case
            write_nifti(top / case / f"{case}-{seq}.nii.gz",
                        rng.normal(size=SHAPE).astype(np.float32), AFFINE)
        write_nifti(top / case / f"{case}-seg.nii.gz",
                    rng.integers(0, 4, SHAPE).astype(np.uint8), AFFINE)
    plugin = plugin_of(**{**BASE, **BRATS})
    result = discover(plugin, tmp_path)
    assert [(c.case_id, c.patient_id) for c in result.cases] == [
        ("BraTS-GLI-00000-000", "BraTS-GLI-00000"), ("BraTS-GLI-00000-001", "BraTS-GLI-00000")]
    assert "no channel file" in result.skipped[0].reason and "t2f" in result.skipped[0].reason
    case = result.cases[1]
    data = read_case(case, plugin=plugin)
    assert data.channels == ("T1", "T1 contrast-enhanced", "T2", "FLAIR")  # canonical names
    for k, seq in enumerate(BRATS_SEQ):
        expected = nib.load(top / case.case_id / f"{case.case_id}-{seq}.nii.gz").get_fdata()
        np.testing.assert_allclose(data.channel(k), expected, atol=1e-6)


# ------------------------------------------------------------------ splits


def write_recist(root: Path) -> None:
    """final-formatted/images/<region>/<subset>/{images,masks}/<pid:03d>_<uid>.nii.gz"""
    for region, subset, name in (("abdomen", "train", "001_1.2.3.4"),
                                 ("thorax", "train", "001_1.2.3.9"),
                                 ("thorax", "test", "002_1.2.5.1")):
        for kind in ("images", "masks"):
            write_nifti(root / "images" / region / subset / kind / f"{name}.nii.gz",
                        np.zeros(SHAPE, np.uint8), AFFINE)


RECIST = {"id": "recist-toy", "name": "RECIST-like",
          "values": {0: "background", 1: "lesion"}, "classes": {"lesion": 1},
          "layout": {"images": "images/{region}/{split}/images/{case}.nii.gz",
                     "label": "images/{region}/{split}/masks/{case}.nii.gz"},
          "patient_id": r"^(?P<id>\d{3})_"}


def test_split_from_folder_and_free_placeholders(tmp_path):
    write_recist(tmp_path)
    result = discover(plugin_of(**RECIST), tmp_path)
    got = {(c.case_id, c.patient_id, c.official_split, c.label.parent.parent.parent.name)
           for c in result.cases}
    assert got == {("001_1.2.3.4", "001", "train", "abdomen"),
                   ("001_1.2.3.9", "001", "train", "thorax"),
                   ("002_1.2.5.1", "002", "test", "thorax")}
    assert not result.skipped


def test_split_folder_names_are_mapped_or_reported(tmp_path):
    write_recist(tmp_path)
    (tmp_path / "images/thorax/test").rename(tmp_path / "images/thorax/Testing")
    result = discover(plugin_of(**RECIST), tmp_path)
    assert "'Testing' names no split" in result.skipped[0].reason
    result = discover(plugin_of(**RECIST, split_names={"Testing": "test"}), tmp_path)
    assert {c.official_split for c in result.cases} == {"train", "test"}


def write_msd(root: Path) -> None:
    """Task02_Heart with its dataset.json (training: objects, test: paths)."""
    for folder, name in (("imagesTr", "la_003"), ("imagesTr", "la_004"), ("imagesTs", "la_001")):
        write_nifti(root / folder / f"{name}.nii.gz", np.zeros(SHAPE, np.int16), AFFINE)
    for name in ("la_003", "la_004"):
        write_nifti(root / "labelsTr" / f"{name}.nii.gz", np.zeros(SHAPE, np.uint8), AFFINE)
    (root / "dataset.json").write_text(json.dumps({
        "name": "LeftAtrium", "labels": {"0": "background", "1": "left atrium"},
        "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"}
                     for n in ("la_003", "la_004")],
        "test": ["./imagesTs/la_001.nii.gz"]}))


MSD = {"id": "msd-toy", "name": "MSD-like", "modality": "MR",
       "values": {0: "background", 1: "left atrium"}, "classes": {"left heart atrium": 1},
       "layout": [{"images": "imagesTr/*.nii.gz", "label": "labelsTr/{name}"},
                  {"images": "imagesTs/*.nii.gz"}],
       "split_file": {"path": "dataset.json", "id_key": "image",
                      "id_pattern": r"(?P<id>[^/]+)\.nii\.gz$"},
       "split_names": {"training": "train"}}


def test_split_from_a_json_file_and_from_ids(tmp_path):
    write_msd(tmp_path)
    result = discover(plugin_of(**MSD), tmp_path)
    assert {c.case_id: c.official_split for c in result.cases} == {
        "la_003": "train", "la_004": "train", "la_001": "test"}
    result = discover(plugin_of(**MSD, split_ids={"val": ["la_004"]}), tmp_path)
    assert {c.case_id: c.official_split for c in result.cases}["la_004"] == "val"


def test_split_from_a_csv_by_patient(tmp_path):
    write_recist(tmp_path)
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata/patients.csv").write_text(
        "patient_id,subset,sex\n001,training,M\n002,test,F\n")
    layout = {"images": "images/{region}/*/images/{case}.nii.gz",
              "label": "{parent}/../masks/{case}.nii.gz"}
    with pytest.raises(Exception, match="outside the dataset root|layout"):
        plugin_of(**{**RECIST, "layout": layout})  # '..' is refused at load time
    layout["label"] = "images/{region}/*/masks/{case}.nii.gz".replace("*", "{sub}")
    layout["images"] = "images/{region}/{sub}/images/{case}.nii.gz"
    plugin = plugin_of(**{**RECIST, "layout": layout}, split_names={"training": "train"},
                       split_file={"path": "metadata/patients.csv", "id_column": "patient_id",
                                   "split_column": "subset", "by": "patient"})
    result = discover(plugin, tmp_path)
    assert {c.case_id: c.official_split for c in result.cases} == {
        "001_1.2.3.4": "train", "001_1.2.3.9": "train", "002_1.2.5.1": "test"}


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the split file"),
    ("patient_id,subset\n001,holdout\n", "'holdout' (for '001') is not train, val or test"),
    ("patient,subset\n001,test\n", "no column(s) ['patient_id']"),
])
def test_bad_split_files_name_the_file(tmp_path, content, message):
    write_recist(tmp_path)
    if content is not None:
        (tmp_path / "patients.csv").write_text(content)
    plugin = plugin_of(**RECIST, split_file={"path": "patients.csv", "id_column": "patient_id",
                                             "split_column": "subset", "by": "patient"})
    with pytest.raises(DiscoveryError) as err:
        list(plugin.discover(tmp_path))
    assert message in str(err.value) and "patients.csv" in str(err.value)


# ------------------------------------------------------------------ what a descriptor cannot say


STRUCTURES = {"values": {0: "background", 1: "liver", 2: "aorta"},
              "classes": {"liver": 1, "aorta": 2},
              "layout": {"images": "{case}/ct.nii.gz",
                         "structures": "{parent}/segmentations/{structure}.nii.gz"}}


@pytest.mark.parametrize("change, key, message", [
    ({"layout": {"images": "{name}/ct.nii.gz"}}, "layout.images", "{name}"),
    ({"layout": {"images": "{case/ct.nii.gz"}}, "layout.images", "braces"),
    ({"layout": {"images": "{case}/ct.nii.gz", "label": "{parent}/{session}.nii.gz"}},
     "layout.label", "{session}"),
    ({"layout": {"images": "{case}/ct.nii.gz", "label": ["a.nii.gz", "b.nii.gz"]}},
     "layout.label", "must be a string or null"),
    ({"layout": {"images": "{case}/ct.nii.gz", "label": "{parent}/seg.nii.gz",
                 "structures": "{parent}/{structure}.nii.gz"}}, "layout", "'label' or 'structures', not both"),
    ({**STRUCTURES, "layout": {"images": "{case}/ct.nii.gz",
                               "structures": "{structure}/mask.nii.gz"}},
     "layout.structures", "exactly once, in the file name"),
    ({**STRUCTURES, "values": {0: "background", 1: "liver", 3: "aorta"},
      "classes": {"liver": 1, "aorta": 3}}, "values", "1..N"),
    ({**STRUCTURES, "classes": {"liver": [1, 2]}}, "classes.liver", "exactly one value"),
    ({**STRUCTURES, "structure_files": {"Liver": "livr"}}, "structure_files.Liver",
     "not a class"),
    ({"layout": {"images": "{case}/ct.nii.gz"}, "structure_files": {"a": "liver"}},
     "structure_files", "no layout group has 'structures'"),
    ({"layout": {"images": "{case}/ct.nii.gz"}, "split_file": {"path": "meta.csv"}},
     "split_file.id_column", "needs id_column"),
    ({"layout": {"images": "{case}/ct.nii.gz"},
      "split_file": {"path": "d.json", "id_pattern": "(.+)"}}, "split_file.id_pattern",
     "(?P<id>...)"),
    ({"layout": {"images": "{case}/ct.nii.gz"}, "split_file": {"path": "split.xlsx"}},
     "split_file.path", "a split file is one of"),
    ({"layout": {"images": "{case}/ct.nii.gz"}, "split_ids": {"val": ["a"], "test": ["a"]}},
     "split_ids.", "'a' is also listed in split_ids."),
    ({"split_names": {"Tr": "train"}}, "split_names", "only a YAML-only dataset"),
    ({"layout": {"images": "{case}.nii.gz", "label_root": "msd"}}, "layout.label_root",
     "'msd' is not a root named in 'roots'"),
    ({"layout": {"images": "{case}.mhd", "label": "m/{case}.mhd", "raters": "union"}},
     "layout.label", "needs {rater} exactly once"),
    ({"layout": {"images": "{case}.mhd", "label": "m/{case}_rad{rater}.mhd"}},
     "layout.raters", "{rater} needs raters"),
    ({"layout": {"images": "{case}.mhd", "label": "{rater}/{case}.mhd", "raters": "majority"}},
     "layout.label", "{rater} exactly once, in the file name"),
    ({"layout": {"images": "{case}.mhd", "label": "m/{case}.mhd", "raters": "vote"}},
     "layout.raters", "must be one of ['union', 'majority'], got 'vote'"),
    ({"layout": [{"images": "{case}/t1.nii.gz",
                  "channel_files": {"T7": "{parent}/t7.nii.gz"}}]},
     "layout[0].channel_files.T7", "T7"),
])
def test_what_a_descriptor_cannot_say_is_named_at_load(tmp_path, change, key, message):
    import yaml

    from harmonize.errors import DescriptorError
    from harmonize.plugin.descriptor import load_descriptor

    data = {**BASE, "id": "bad-toy", "name": "Bad", "values": {0: "background", 1: "liver"},
            "classes": {"liver": 1}, **change}
    path = tmp_path / "bad-toy.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DescriptorError) as err:
        load_descriptor(path)
    text = str(err.value)
    assert str(path) in text and key in text and message in text, text


# ------------------------------------------------------------------ odd label encodings


def test_grey_value_ranges_chaos_values(tmp_path):
    """CHAOS MR grey values (DATASETS.md section 6: liver 63 (55-70), right kidney 126 (110-135),
    left kidney 189 (175-200), spleen 252 (240-255)), here saved as a NIfTI mask."""
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 5, SHAPE).astype(np.uint8)
    ranges = {1: (55, 70), 2: (110, 135), 3: (175, 200), 4: (240, 255)}
    grey = np.zeros(SHAPE, np.uint8)
    for value, (low, high) in ranges.items():
        grey[truth == value] = rng.integers(low, high + 1, int((truth == value).sum()))
    write_nifti(tmp_path / "MR/1/T2SPIR/image.nii.gz", np.zeros(SHAPE, np.int16), AFFINE)
    write_nifti(tmp_path / "MR/1/T2SPIR/ground.nii.gz", grey, AFFINE)
    plugin = plugin_of(
        id="chaos-toy", name="CHAOS-like", modality="MR",
        values={0: "background", 1: "liver", 2: "right kidney", 3: "left kidney", 4: "spleen"},
        classes={"liver": 1, "right kidney": 2, "left kidney": 3, "spleen": 4},
        layout={"images": "MR/{patient}/{case}/image.nii.gz", "label": "{parent}/ground.nii.gz"},
        value_ranges={k: list(v) for k, v in ranges.items()})
    (case,) = discover(plugin, tmp_path).cases
    np.testing.assert_array_equal(read_case(case, plugin=plugin).label.data, truth)
    grey[0, 0, 0] = 90  # between liver and right kidney
    write_nifti(tmp_path / "MR/1/T2SPIR/ground.nii.gz", grey, AFFINE)
    with pytest.raises(Exception, match=r"grey value\(s\) in no value range: \[90\]"):
        read_case(case, plugin=plugin)


@pytest.mark.parametrize("encoding", ["one-hot", "one-hot-with-background"])
def test_one_hot_label_segrap_layout(tmp_path, encoding):
    """SegRap2023 (SAT-DS preprocess_SegRap2023_Task1): images under
    SegRap2023_Training_Set_120cases/<case>/image_contrast.nii.gz, one-hot labels under
    SegRap2023_Training_Set_120cases_OneHot_Labels/Task001/<case>.nii.gz; overlapping channels."""
    masks = {"brain": ball((5, 4, 3), 3.5), "brainstem": ball((5, 4, 3), 1.5),
             "optic chiasm": ball((8, 4, 3), 1.2)}
    layers = list(masks.values())
    if encoding == "one-hot-with-background":
        layers.insert(0, ~np.any(layers, axis=0))
    write_nifti(tmp_path / "SegRap2023_Training_Set_120cases/segrap_0001/image_contrast.nii.gz",
                np.zeros(SHAPE, np.int16), AFFINE)
    write_nifti(tmp_path / "SegRap2023_Training_Set_120cases_OneHot_Labels/Task001/"
                "segrap_0001.nii.gz", np.stack(layers, axis=-1).astype(np.uint8), AFFINE)
    plugin = plugin_of(
        id="segrap-toy", name="SegRap-like",
        values={0: "background", 1: "brain", 2: "brainstem", 3: "optic chiasm"},
        classes={"brain": 1, "brainstem": 2, "optic chiasm": 3}, label_encoding=encoding,
        layout={"images": "SegRap2023_Training_Set_120cases/{case:segrap_*}/image_contrast.nii.gz",
                "label": "SegRap2023_Training_Set_120cases_OneHot_Labels/Task001/{case}.nii.gz"})
    (case,) = discover(plugin, tmp_path).cases
    label = read_case(case, plugin=plugin).label
    for name, mask in masks.items():
        np.testing.assert_array_equal(np.isin(label.data, label.classes[name]), mask, err_msg=name)


def test_myops_style_values_are_plain_values(tmp_path):
    """MyoPS 2020 test labels use 200/500/600/1220/2221 (SAT-DS preprocess_MyoPS2020:
    test20/<case>_C0.nii.gz, test_data_gd/<case>_gdencrypt.nii.gz): the descriptor's values say
    so and the label is read as is."""
    rng = np.random.default_rng(5)
    raw = rng.choice(np.array([0, 200, 500, 600, 1220, 2221], np.uint16), SHAPE)
    write_nifti(tmp_path / "test20/myops_test_201_C0.nii.gz", np.zeros(SHAPE, np.int16), AFFINE)
    write_nifti(tmp_path / "test_data_gd/myops_test_201_gdencrypt.nii.gz", raw, AFFINE)
    plugin = plugin_of(
        id="myops-toy", name="MyoPS-like", modality="MR",
        values={0: "background", 200: "LV blood pool", 500: "RV blood pool", 600: "LV myocardium",
                1220: "edema", 2221: "scar"},
        classes={"left heart ventricle": 200, "right heart ventricle": 500, "myocardium": 600,
                 "myocardial edema": 1220, "myocardial scar": 2221},
        layout={"images": "test20/myops_test_{case}_C0.nii.gz",
                "label": "test_data_gd/myops_test_{case}_gdencrypt.nii.gz"})
    (case,) = discover(plugin, tmp_path).cases
    np.testing.assert_array_equal(read_case(case, plugin=plugin).label.data, raw)


@pytest.mark.parametrize("change, key, message", [
    ({"value_ranges": {1: [55, 70], 2: [60, 80]}}, "value_ranges.2", "overlaps the range of 1"),
    ({"value_ranges": {5: [55, 70]}}, "value_ranges.5", "not a foreground value"),
    ({"label_encoding": "one-hot", "classes": {"liver": [1, 2]}}, "classes.liver",
     "exactly one value"),
])
def test_bad_encodings_are_named_at_load(change, key, message):
    from harmonize.errors import DescriptorError

    data = {**BASE, "id": "enc-toy", "name": "Enc", "values": {0: "bg", 1: "liver", 2: "spleen"},
            "classes": {"liver": 1, "spleen": 2}, "layout": {"images": "{case}/ct.nii.gz"}}
    with pytest.raises(DescriptorError) as err:
        parse_descriptor({**data, **change})
    assert key in str(err.value) and message in str(err.value), str(err.value)


# ------------------------------------------------------------------ several raters per case


def write_lndb(root: Path, n_raters: dict[str, int]) -> dict[str, list[np.ndarray]]:
    """LNDb (SAT-DS preprocess_LNDb): data0/LNDb-0001.mhd (+ .raw), masks/LNDb-0001_rad<k>.mhd;
    here the masks hold two values so the rule is checked per class."""
    rng = np.random.default_rng(6)
    written = {}
    for case, n in n_raters.items():
        image = sitk.GetImageFromArray(np.zeros(SHAPE[::-1], np.int16))
        image.SetSpacing((1.5, 1.5, 3.0))
        (root / "data0").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        sitk.WriteImage(image, str(root / "data0" / f"{case}.mhd"))
        written[case] = []
        for k in range(1, n + 1):
            data = rng.choice(np.array([0, 0, 1, 2], np.uint8), SHAPE)
            mask = sitk.GetImageFromArray(data.transpose(2, 1, 0))
            mask.SetSpacing((1.5, 1.5, 3.0))
            sitk.WriteImage(mask, str(root / "masks" / f"{case}_rad{k}.mhd"))
            written[case].append(data)
    return written


LNDB = {"id": "lndb-toy", "name": "LNDb-like",
        "values": {0: "background", 1: "nodule", 2: "non-nodule"},
        "classes": {"lung nodule": 1, "lung lesion": [1, 2]},
        "layout": {"images": "data*/{case}.mhd", "label": "masks/{case}_rad{rater}.mhd"}}


@pytest.mark.parametrize("rule", ["union", "majority"])
def test_rater_rules_against_brute_force(tmp_path, rule):
    written = write_lndb(tmp_path, {"LNDb-0001": 3, "LNDb-0002": 2})
    plugin = plugin_of(**{**LNDB, "layout": {**LNDB["layout"], "raters": rule}})
    cases = discover(plugin, tmp_path).cases
    assert [c.case_id for c in cases] == ["LNDb-0001", "LNDb-0002"]
    for case in cases:
        label = read_case(case, plugin=plugin).label
        raters = written[case.case_id]
        for name, members in (("lung nodule", {1}), ("lung lesion", {1, 2})):
            got = np.isin(label.data, label.classes[name])
            for idx in np.ndindex(SHAPE):
                votes = sum(int(r[idx]) in members for r in raters)
                expected = votes >= 1 if rule == "union" else votes * 2 > len(raters)
                assert got[idx] == expected, (case.case_id, name, idx, votes)


def test_rater_choose_reads_one_file(tmp_path):
    written = write_lndb(tmp_path, {"LNDb-0001": 3, "LNDb-0002": 1})
    plugin = plugin_of(**{**LNDB, "layout": {**LNDB["layout"], "raters": {"choose": "2"}}})
    result = discover(plugin, tmp_path)
    (case,) = result.cases  # LNDb-0002 has no rad2: skipped
    assert "no label file masks/LNDb-0002_rad{rater}.mhd" in result.skipped[0].reason
    assert case.label.name == "LNDb-0001_rad2.mhd"
    np.testing.assert_array_equal(read_case(case, plugin=plugin).label.data,
                                  written["LNDb-0001"][1])


# ------------------------------------------------------------------ images and labels apart


def write_couinaud(tmp_path: Path) -> tuple[Path, Path]:
    """Couinaud liver segments (SAT-DS preprocess_Couinaud_Liver): <couinaud>/hepaticvessel_XXX
    .nii.gz (each with a macOS '.'-companion) on MSD Task08_HepaticVessel/imagesTr/ images."""
    msd, couinaud = tmp_path / "Task08_HepaticVessel", tmp_path / "Couinaud_Liver"
    rng = np.random.default_rng(7)
    for name in ("hepaticvessel_001", "hepaticvessel_002", "hepaticvessel_004"):
        write_nifti(msd / "imagesTr" / f"{name}.nii.gz", np.zeros(SHAPE, np.int16), AFFINE)
    for name in ("hepaticvessel_001", "hepaticvessel_004"):
        write_nifti(couinaud / f"{name}.nii.gz", rng.integers(0, 9, SHAPE).astype(np.uint8),
                    AFFINE)
        (couinaud / f".{name}.nii.gz").write_bytes(b"\0\5\26\7")
    return msd, couinaud


COUINAUD = {"id": "couinaud-toy", "name": "Couinaud-like",
            "values": {0: "background", **{k: f"segment {k}" for k in range(1, 9)}},
            "classes": {f"liver segment {k}": k for k in range(1, 9)},
            "roots": {"msd": "../Task08_HepaticVessel"},
            "layout": {"images_root": "msd", "images": "imagesTr/{case}.nii.gz",
                       "label": "{case}.nii.gz"}}


def test_labels_on_another_releases_images(tmp_path, monkeypatch):
    msd, couinaud = write_couinaud(tmp_path)
    plugin = plugin_of(**COUINAUD)
    result = discover(plugin, couinaud)
    assert [(c.case_id, c.images[0], c.label) for c in result.cases] == [
        (n, msd.resolve() / "imagesTr" / f"{n}.nii.gz", couinaud / f"{n}.nii.gz")
        for n in ("hepaticvessel_001", "hepaticvessel_004")]
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons == {"hepaticvessel_002.nii.gz": "no label file hepaticvessel_002.nii.gz",
                       ".hepaticvessel_001.nii.gz": "hidden or AppleDouble file, not data",
                       ".hepaticvessel_004.nii.gz": "hidden or AppleDouble file, not data"}
    expected = nib.load(couinaud / "hepaticvessel_004.nii.gz").get_fdata()
    np.testing.assert_array_equal(read_case(result.cases[1], plugin=plugin).label.data, expected)
    # given at run time instead: the descriptor's path is wrong, the variable wins
    moved = tmp_path / "elsewhere"
    msd.rename(moved)
    with pytest.raises(DiscoveryError, match="root 'msd' is not a folder"):
        list(plugin.discover(couinaud))
    monkeypatch.setenv("HARMONIZE_ROOTS", f"msd={moved}")
    assert len(discover(plugin, couinaud).cases) == 2


# ------------------------------------------------------------------ formats


def write_slicer_seg(path: Path, layers: list[np.ndarray], segments: list[tuple[str, int, int]]
                     ) -> None:
    """A 3D Slicer .seg.nrrd as Slicer writes it: 'kinds: list domain domain domain' (one layer
    per list entry), Segment<k>_ID/_Name/_LabelValue/_Layer fields (plain NRRD text, so the
    header is written by hand and only the voxels by numpy)."""
    data = np.stack(layers, axis=-1).astype(np.uint8)  # (X, Y, Z, L)
    header = [
        "NRRD0004", "type: unsigned char", "dimension: 4", "space: left-posterior-superior",
        f"sizes: {data.shape[3]} {data.shape[0]} {data.shape[1]} {data.shape[2]}",
        "space directions: none (1.5,0,0) (0,1.5,0) (0,0,3)",
        "kinds: list domain domain domain", "encoding: raw", "space origin: (0,0,0)",
        "Segmentation_MasterRepresentation:=Binary labelmap",
    ]
    for k, (name, value, layer) in enumerate(segments):
        header += [f"Segment{k}_ID:=Segment_{k + 1}", f"Segment{k}_Name:={name}",
                   f"Segment{k}_LabelValue:={value}", f"Segment{k}_Layer:={layer}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    # NRRD raw order: the first axis (the layer) fastest, then X, Y, Z
    path.write_bytes(("\n".join(header) + "\n\n").encode() + data.transpose(2, 1, 0, 3).tobytes())


def test_slicer_segmentation_segments_by_name(tmp_path):
    brainstem, cochlea = ball((5, 4, 3), 2.5), ball((5, 5, 3), 1.2)
    parotid = ball((1, 1, 1), 1.0)
    layer0 = brainstem.astype(np.uint8) + 2 * parotid  # two segments share layer 0
    write_slicer_seg(tmp_path / "case_01/case_01.seg.nrrd", [layer0, cochlea],
                     [("Brainstem", 1, 0), ("Cochlea_L", 1, 1), ("Parotid_L", 2, 0)])
    write_nifti(tmp_path / "case_01/case_01_IMG_CT.nii.gz", np.zeros(SHAPE, np.int16),
                np.diag([-1.5, -1.5, 3.0, 1.0]))  # the NRRD's LPS grid in RAS
    plugin = plugin_of(
        id="seg-toy", name="Slicer-seg", label_encoding="slicer-segments",
        values={0: "background", 1: "brainstem", 2: "left cochlea", 3: "left parotid gland"},
        classes={"brainstem": 1, "left cochlea": 2, "left parotid gland": 3},
        structure_files={"Brainstem": "brainstem", "Cochlea_L": "left cochlea",
                         "Parotid_L": "left parotid gland"},
        layout={"images": "{case}/{case}_IMG_CT.nii.gz", "label": "{parent}/{case}.seg.nrrd"})
    (case,) = discover(plugin, tmp_path).cases
    label = read_case(case, plugin=plugin).label
    for name, mask in (("brainstem", brainstem), ("left cochlea", cochlea),
                       ("left parotid gland", parotid)):
        np.testing.assert_array_equal(np.isin(label.data, label.classes[name]), mask,
                                      err_msg=name)


def test_dicom_series_folders_as_images(tmp_path):
    """CHAOS CT (DATASETS.md section 6): Train_Sets/CT/<n>/DICOM_anon/*.dcm; a folder is an
    image (its PNG ground truth needs a plugin: here the group is unlabelled)."""
    from harmonize.testing.dicom import SeriesGeometry, SliceFile, write_series

    geometry = SeriesGeometry(rows=6, columns=5, pixel_spacing=(0.8, 0.8), origin=(0, 0, 0),
                              step=2.5)
    for n in ("1", "5"):
        slices = [SliceFile(f"i{k:04d},0000b.dcm", np.full((6, 5), k, np.int16), k, k + 1)
                  for k in range(4)]
        write_series(tmp_path / "Train_Sets/CT" / n / "DICOM_anon", slices, geometry,
                     modality="CT", series_uid=f"2.25.{n}1", study_uid=f"2.25.{n}2",
                     patient_id=n)
    plugin = plugin_of(id="chaos-ct-toy", name="CHAOS-CT-like",
                       values={0: "background", 1: "liver"}, classes={"liver": 1},
                       layout={"images": "Train_Sets/CT/{case}/DICOM_anon", "split": "train"})
    result = discover(plugin, tmp_path)
    assert [(c.case_id, c.label) for c in result.cases] == [("1", None), ("5", None)]
    assert read_case(result.cases[0], plugin=plugin, label=False).image.shape[2] == 4


def test_split_from_a_sectioned_text_file_ctspine1k(tmp_path):
    """CTSpine1K on the Hugging Face mirror (DATASETS.md section 3, plugins/ctspine1k.py):
    raw_data/volumes/<collection>/<name>.nii.gz, raw_data/labels/<collection>/<name>_seg.nii.gz,
    metadata/data_split.txt with 'trainset:', 'test_public:', 'test_private:' sections, CRLF line
    ends and blank lines between sections."""
    listed = {"HNSCC-3DCT-RT": [("HN_P001", "trainset"), ("HN_P002", "test_private")],
              "MSD-T10": [("liver_110", "test_public")]}
    for collection, cases in listed.items():
        for name, _ in cases:
            write_nifti(tmp_path / "raw_data/volumes" / collection / f"{name}.nii.gz",
                        np.zeros(SHAPE, np.int16), AFFINE)
            write_nifti(tmp_path / "raw_data/labels" / collection / f"{name}_seg.nii.gz",
                        np.zeros(SHAPE, np.uint8), AFFINE)
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata/data_split.txt").write_bytes(
        b"trainset:\r\nHN_P001.nii.gz\r\n\r\ntest_public:\r\nliver_110.nii.gz\r\n\r\n"
        b"test_private:\r\nHN_P002.nii.gz\r\n")
    plugin = plugin_of(
        id="ctspine-toy", name="CTSpine1K-like",
        values={0: "background", 1: "C1"}, classes={"C1 vertebra": 1},
        layout={"images": "raw_data/volumes/{collection}/{case}.nii.gz",
                "label": "raw_data/labels/{collection}/{case}_seg.nii.gz"},
        split_file={"path": "metadata/data_split.txt", "id_pattern": r"^(?P<id>.+?)\.nii\.gz$"},
        split_names={"trainset": "train", "test_public": "val", "test_private": "test"})
    result = discover(plugin, tmp_path)
    assert {c.case_id: c.official_split for c in result.cases} == {
        "HN_P001": "train", "HN_P002": "test", "liver_110": "val"}
    assert not result.skipped


def test_patient_and_session_from_the_file_name(tmp_path):
    """BraTS 2023 ids: BraTS-GLI-<patient>-<time point>; {session} lands in the case metadata."""
    top = tmp_path / "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData"
    for case in ("BraTS-GLI-00000-000", "BraTS-GLI-00000-001"):
        write_nifti(top / case / f"{case}-t1n.nii.gz", np.zeros(SHAPE, np.float32), AFFINE)
    layout = {"images": "*/{case}/{patient}-{session:[0-9][0-9][0-9]}-t1n.nii.gz"}
    descriptor = {k: v for k, v in BRATS.items() if k != "patient_id"}  # {patient} instead
    result = discover(plugin_of(**{**descriptor, "layout": layout}), tmp_path)
    assert [(c.case_id, c.patient_id, dict(c.metadata)) for c in result.cases] == [
        ("BraTS-GLI-00000-000", "BraTS-GLI-00000", {"session": "000"}),
        ("BraTS-GLI-00000-001", "BraTS-GLI-00000", {"session": "001"})]


def test_extra_root_given_on_the_command_line(tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from harmonize.cli.app import app

    msd, couinaud = write_couinaud(tmp_path)
    moved = tmp_path / "elsewhere"
    msd.rename(moved)
    descriptor = tmp_path / "couinaud-toy.yaml"
    descriptor.write_text(yaml.safe_dump({**BASE, **COUINAUD}))
    monkeypatch.setenv("HARMONIZE_ROOTS", "")  # restored after the test
    args = ["discover", "--descriptor", str(descriptor), "-d", "couinaud-toy", "-r",
            str(couinaud), "--format", "json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "root 'msd' is not a folder" in result.output
    result = CliRunner().invoke(app, ["--extra-root", f"msd={moved}", *args])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["cases"]) == 2
    result = CliRunner().invoke(app, ["--extra-root", "msd", *args])
    assert result.exit_code == 2 and "is not name=path" in result.output


def test_totalsegmentator_layout_in_yaml_matches_its_plugin(tmp_path):
    """The TotalSegmentator v2 release (its plugin's fabricator writes the real layout:
    s0000/ct.nii.gz, s0000/segmentations/<structure>.nii.gz, ';'-separated meta.csv with a BOM)
    described in YAML: the same cases and splits as the Python plugin, every structure's voxels
    exactly its file's (the plugin paints later-wins; the layout keeps overlaps)."""
    from harmonize.plugins.fabricators.totalsegmentator import make_totalsegmentator

    from harmonize.plugin.catalog import load_catalog

    root = make_totalsegmentator(tmp_path, n_cases=3) / "Totalsegmentator_dataset_v201"
    python_plugin = load_catalog(entry_points=False).get("totalsegmentator")
    names = [n for v, n in sorted(python_plugin.descriptor.values.items()) if v]
    plugin = plugin_of(
        id="totalseg-yaml", name="TotalSegmentator in YAML",
        values={0: "background", **{k + 1: n for k, n in enumerate(names)}},
        classes={n: k + 1 for k, n in enumerate(names)},
        layout={"images": "{case:s[0-9][0-9][0-9][0-9]}/ct.nii.gz",
                "structures": "{parent}/segmentations/{structure}.nii.gz"},
        split_file={"path": "meta.csv", "id_column": "image_id", "split_column": "split",
                    "delimiter": ";"})
    ours, theirs = discover(plugin, root).cases, discover(python_plugin, root).cases
    assert [(c.case_id, c.official_split) for c in ours] == [
        (c.case_id, c.official_split) for c in theirs]
    assert len(ours) == 3
    label = read_case(ours[0], plugin=plugin).label
    for path in sorted((root / ours[0].case_id / "segmentations").glob("*.nii.gz")):
        name = path.name[: -len(".nii.gz")]
        expected = np.asanyarray(nib.load(path).dataobj) > 0
        np.testing.assert_array_equal(np.isin(label.data, label.classes[name]), expected,
                                      err_msg=name)
