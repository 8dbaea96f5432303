"""CT datasets of SAT-DS as YAML-only descriptors, on fabricated copies of their released layouts
(KiPA22, CT-ORG, CTPelvic1K, SLIVER07, PARSE2022, INSTANCE 2022, COVID-19-CT-Seg, BTCV Cervix,
LUNA16; LNDb and the Couinaud liver segments in ``test_plugin_sat_ct_b.py``).

The oracle is the fabricated files read back with nibabel / SimpleITK (never the layout reader)
and the layouts, values and ids SAT-DS's processor.py / jsonl give (transcribed in the
fabricators): case ids from the file names written, voxels per class by ``np.isin`` on the
file's own array.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from harmonize.plugins.fabricators.sat_ct import (
    make_ct_org,
    make_ctpelvic1k,
    make_instance22,
    make_kipa22,
    make_parse2022,
    make_sliver07,
)
from harmonize.plugins.fabricators.sat_ct_b import (
    LUNA_UIDS,
    make_btcv_cervix,
    make_covid19,
    make_luna16,
)
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.manifest.build import read_manifest
from harmonize.read.case import present_values, read_case

RUNNER = CliRunner()


def array_of(path: Path) -> np.ndarray:
    """The (X, Y, Z) voxels of a NIfTI (nibabel) or MetaImage (SimpleITK) file."""
    if path.name.endswith(".mhd"):
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).transpose(2, 1, 0)
    return np.asarray(nib.load(path).dataobj)


#: dataset -> (fabricator, {case id: label file relative to the root}, official split,
#: values per class as the release's label table gives them)
CASES: dict[str, tuple[Callable[[Path], Path], dict[str, str], str | None, dict[str, list[int]]]] = {
    "kipa22": (make_kipa22, {n: f"train/label/{n}.nii.gz" for n in ("0", "1", "10")}, "train",
               {"renal vein": [1], "kidney": [2, 4], "renal artery": [3], "kidney tumor": [4]}),
    "ct-org": (make_ct_org, {f"volume-{n}": f"labels/labels-{n}.nii.gz" for n in (0, 1, 21)},
               None, {"liver": [1], "urinary bladder": [2], "lung": [3], "kidney": [4],
                      "bone": [5], "brain": [6]}),
    "ctpelvic1k": (make_ctpelvic1k, {
        "dataset6_CLINIC_0001": "CTPelvic1K_dataset6_Anonymized_mask/"
                                "dataset6_CLINIC_0001_mask_4label.nii.gz",
        "dataset6_CLINIC_0002": "CTPelvic1K_dataset6_Anonymized_mask/"
                                "dataset6_CLINIC_0002_mask_4label.nii.gz",
        "CLINIC_metal_0013": "CTPelvic1K_dataset7_mask/CLINIC_metal_0013_mask_4label.nii.gz"},
        "train", {"sacrum": [1], "right hip bone": [2], "left hip bone": [3],
                  "lumbar vertebra": [4], "hip bone": [2, 3]}),
    "sliver07": (make_sliver07, {f"liver-orig{n:03d}": f"label/liver-seg{n:03d}.mhd"
                                 for n in (1, 5, 20)}, "train", {"liver": [1]}),
    "parse2022": (make_parse2022, {c: f"{c}/label/{c}.nii.gz" for c in ("PA000005", "PA000016")},
                  "train", {"pulmonary artery": [1]}),
    "instance22": (make_instance22, {f"{n:03d}": f"train_2/label/{n:03d}.nii.gz"
                                     for n in (1, 2, 100)}, "train",
                   {"intracranial hemorrhage": [1]}),
    "covid19": (make_covid19, {f"coronacases_{n:03d}": f"Lung_and_Infection_Mask/"
                               f"coronacases_{n:03d}.nii.gz" for n in (1, 3, 9)}, None,
                {"left lung": [1], "right lung": [2], "covid-19 lesion": [3], "lung": [1, 2, 3]}),
    "btcv-cervix": (make_btcv_cervix, {c: f"RawData/Training/label/{c}-Mask.nii.gz"
                                       for c in ("0507688", "0759564", "9570942")}, None,
                    {"urinary bladder": [1], "uterus": [2], "rectum": [3], "small bowel": [4]}),
    "luna16": (make_luna16, {uid: f"seg-lungs-LUNA16/{uid}.mhd" for uid in LUNA_UIDS[:2]}, None,
               {"left lung": [3], "right lung": [4], "trachea": [5], "lung": [3, 4]}),
}


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("dataset", sorted(CASES))
def test_discover_and_manifest_in_the_released_layout(dataset, tmp_path):
    make, labels, official, classes = CASES[dataset]
    root = make(tmp_path / "src")
    found = json.loads(_invoke("discover", "-d", dataset, "-r", str(root), "--format", "json"))
    assert sorted(c["case_id"] for c in found["cases"]) == sorted(labels)
    assert not found["errors"]
    for case in found["cases"]:
        assert Path(case["label"]) == root / labels[case["case_id"]]
    _invoke("manifest", "-d", dataset, "-r", str(root), "-o", str(tmp_path / "m"))
    manifest = tmp_path / "m" / f"{dataset}.jsonl"
    records = {r.case_id: r for r in read_manifest(manifest)}
    assert sorted(records) == sorted(labels)
    for case_id, record in records.items():
        assert record.patient_id == case_id  # one scan per patient in each release
        assert record.official_split == official
        data = array_of(root / labels[case_id])
        present = {n for n, vs in classes.items() if np.isin(data, vs).any()}
        assert {n for n, vs in record.labels.items() if vs} >= present
        assert {n: record.labels[n] for n in present} == {n: classes[n] for n in present}
        label = read_case(record, base=manifest.parent, image_voxels=False).label
        assert label is not None
        for name in present:  # voxels per class: the file's own array by np.isin
            assert int(np.isin(label.data, record.labels[name]).sum()) == int(
                np.isin(data, classes[name]).sum()), (case_id, name)


def test_ct_org_brain_only_where_drawn_and_the_tcia_folder(tmp_path):
    """CT-ORG annotates the brain in a few scans only; the TCIA download's single
    OrganSegmentations/ folder is read like SAT-DS's volumes/ + labels/."""
    root = make_ct_org(tmp_path / "sat")
    _invoke("manifest", "-d", "ct-org", "-r", str(root), "-o", str(tmp_path / "m"))
    manifest = tmp_path / "m" / "ct-org.jsonl"
    brain = {}
    for record in read_manifest(manifest):
        label = read_case(record, base=manifest.parent, image_voxels=False).label
        assert label is not None
        want = np.unique(array_of(root / "labels" / f"labels-{record.case_id[7:]}.nii.gz"))
        assert present_values(label.data) == [int(v) for v in want]
        brain[record.case_id] = bool(np.isin(label.data, record.labels["brain"]).any())
    assert brain == {"volume-0": True, "volume-1": False, "volume-21": False}
    tcia = make_ct_org(tmp_path / "tcia", cases=(3, 4), tcia=True)
    found = json.loads(_invoke("discover", "-d", "ct-org", "-r", str(tcia), "--format", "json"))
    assert sorted(c["case_id"] for c in found["cases"]) == ["volume-3", "volume-4"]


def test_release_copies_and_unlabelled_files_are_not_read(tmp_path):
    """SAT-DS's own outputs beside the release (KiPA22 processed_image/, SLIVER07 .nii.gz
    copies), COVID-19's radiopaedia scans and LUNA16 scans without a lung mask never become
    cases."""
    kipa = make_kipa22(tmp_path / "k", cases=(0,))
    assert (kipa / "train" / "processed_image" / "0.nii.gz").is_file()
    found = json.loads(_invoke("discover", "-d", "kipa22", "-r", str(kipa), "--format", "json"))
    assert [Path(c["images"][0]).parent.name for c in found["cases"]] == ["image"]
    luna = make_luna16(tmp_path / "l")
    found = json.loads(_invoke("discover", "-d", "luna16", "-r", str(luna), "--format", "json"))
    assert LUNA_UIDS[2] not in {c["case_id"] for c in found["cases"]}
    assert any(LUNA_UIDS[2] in s["path"] for s in found["skipped"])


def test_kipa22_images_read_in_hu(tmp_path):
    """KiPA22 stores HU + 1000: every reading path gives stored - 1000 (the source manifest's
    records, a plugin case, `harmonize run --intensity raw`), by nibabel on the stored file."""
    root = make_kipa22(tmp_path / "src", cases=(0, 1))
    _invoke("manifest", "-d", "kipa22", "-r", str(root), "-o", str(tmp_path / "m"))
    manifest = tmp_path / "m" / "kipa22.jsonl"
    for record in read_manifest(manifest):
        stored = np.asarray(nib.load(root / "train" / "image" / f"{record.case_id}.nii.gz")
                            .dataobj).astype(np.float64)
        assert stored.min() > -200.0  # the release's offset: air (-1000 HU) is stored near 0
        assert record.extra["rescale"] == {"slope": 1.0, "intercept": -1000.0}
        image = read_case(record, base=manifest.parent).image
        np.testing.assert_allclose(image.data, stored - 1000.0, rtol=0, atol=1e-3)
        assert image.operations[-1]["op"] == "rescale"
    out = tmp_path / "run"
    _invoke("run", "-d", "kipa22", "-r", str(root), "-o", str(out), "--spacing", "native",
            "--intensity", "raw", "--workers", "1", "--no-progress")
    for record in read_manifest(out / "kipa22.jsonl"):
        stored = nib.as_closest_canonical(
            nib.load(root / "train" / "image" / f"{record.case_id}.nii.gz"))
        written = nib.load(out / record.image)
        np.testing.assert_allclose(np.asarray(written.dataobj, dtype=np.float64),
                                   np.asarray(stored.dataobj, dtype=np.float64) - 1000.0,
                                   rtol=0, atol=1e-3)
        assert any(op["op"] == "rescale" for op in record.extra["operations"])
        # the written image is already HU: reading the normalized record adds nothing
        again = read_case(record, base=out).image.data
        np.testing.assert_allclose(again, np.asarray(written.dataobj), rtol=0, atol=1e-3)


def test_kipa22_run_loader_and_sat_export(tmp_path):
    """`harmonize run` + the loader: voxels per class as the release file has them (kidney =
    2 + 4); `export sat` writes SAT-DS's KiPA22 name with the release's values (mask == i + 1)."""
    from harmonize.loader import HarmonizedDataset

    make, labels, _, classes = CASES["kipa22"]
    root = make(tmp_path / "src")
    out = tmp_path / "run"
    _invoke("run", "-d", "kipa22", "-r", str(root), "-o", str(out), "--spacing", "native",
            "--workers", "1", "--no-progress")
    manifest = out / "kipa22.jsonl"
    names = sorted(classes)
    loader = HarmonizedDataset(manifest, classes=names, patch_size=None)
    assert len(loader) == len(labels)
    for index in range(len(loader)):
        sample = loader[index]
        data = array_of(root / labels[sample["case_id"]])
        got = {n: int(sample["mask"][k].sum()) for k, n in enumerate(sample["classes"])}
        assert got == {n: int(np.isin(data, classes[n]).sum()) for n in names}
    sat = tmp_path / "sat"
    _invoke("export", "sat", "--manifest", str(manifest), "--out", str(sat), "--no-progress")
    lines = [json.loads(t) for t in (sat / "jsonl" / "KiPA22.jsonl").read_text().splitlines()]
    assert sorted(line["harmonize"]["case_id"] for line in lines) == sorted(labels)
    for line in lines:
        assert line["label"] == ["renal vein", "kidney", "renal artery", "kidney tumor"]
        source = nib.as_closest_canonical(nib.load(root / labels[line["harmonize"]["case_id"]]))
        written = np.asarray(nib.load(sat / line["mask"]).dataobj)
        assert np.array_equal(written, np.asarray(source.dataobj))


@pytest.mark.parametrize(("rescale", "where"), [
    ({"slope": 1}, "rescale"), ({"intercept": -1000, "slope": 0}, "rescale.slope"),
    ({"intercept": "-1000"}, "rescale.intercept"), ({"intercept": 1, "offset": 2}, "rescale")])
def test_a_bad_rescale_is_refused_naming_the_key(rescale, where):
    from harmonize.errors import DescriptorError
    from harmonize.plugin.descriptor import parse_descriptor

    with pytest.raises(DescriptorError, match=where.replace(".", r"\.")):
        parse_descriptor({"id": "x", "name": "x", "modality": "CT", "values": {1: "liver"},
                          "classes": {"liver": [1]}, "rescale": rescale})


def test_a_changed_rescale_reprocesses_the_case(tmp_path):
    """The resume key holds the descriptor's rescale: a corrected intercept is not left stale."""
    import yaml

    root = make_kipa22(tmp_path / "src", cases=(0,))
    source = Path(__file__).parents[1] / "registry" / "datasets" / "kipa22.yaml"
    descriptor = yaml.safe_load(source.read_text())
    path = tmp_path / "kipa-copy.yaml"
    out = tmp_path / "run"
    written = []
    for intercept in (-1000, -1024):
        path.write_text(yaml.safe_dump({**descriptor, "id": "kipa-copy",
                                        "rescale": {"intercept": intercept}}))
        _invoke("run", "--descriptor", str(path), "-d", "kipa-copy", "-r", str(root), "-o",
                str(out), "--spacing", "native", "--intensity", "raw", "--workers", "1",
                "--no-progress")
        (record,) = read_manifest(out / "kipa-copy.jsonl")
        written.append(np.asarray(nib.load(out / record.image).dataobj, dtype=np.float64))
    np.testing.assert_allclose(written[0] - written[1], 24.0, rtol=0, atol=1e-3)


def test_exports_of_a_source_manifest_never_reuse_offset_files(tmp_path):
    """A KiPA22 *source* manifest points at files stored HU + 1000: nnU-Net and SAT-DS exports
    write HU (stored - 1000, by nibabel on the stored file) instead of reusing the files, and
    the MONAI datalist, which only points at files, refuses with the next step."""
    from harmonize.errors import HarmonizeError
    from harmonize.export.monai import export_monai
    from harmonize.export.nnunet import export_nnunet
    from harmonize.export.sat import export_sat

    root = make_kipa22(tmp_path / "src", cases=(0, 1))
    _invoke("manifest", "-d", "kipa22", "-r", str(root), "-o", str(tmp_path / "m"))
    manifest = tmp_path / "m" / "kipa22.jsonl"
    records = read_manifest(manifest)

    def stored(case_id: str) -> np.ndarray:
        path = root / "train" / "image" / f"{case_id}.nii.gz"
        return np.asarray(nib.load(path).dataobj, dtype=np.float64)

    nnunet = export_nnunet([manifest], tmp_path / "nn", dataset_id=7, name="KiPA")
    for record in records:
        (image,) = (nnunet.folder / "imagesTr").glob(f"*{record.case_id}_0000.nii.gz")
        np.testing.assert_allclose(np.asarray(nib.load(image).dataobj, dtype=np.float64),
                                   stored(record.case_id) - 1000.0, rtol=0, atol=1e-3)
    export_sat([manifest], tmp_path / "sat")
    for text in (tmp_path / "sat" / "jsonl" / "KiPA22.jsonl").read_text().splitlines():
        line = json.loads(text)
        image = np.asarray(nib.load(tmp_path / "sat" / line["image"]).dataobj, dtype=np.float64)
        np.testing.assert_allclose(image, stored(line["harmonize"]["case_id"]) - 1000.0,
                                   rtol=0, atol=1e-3)
    with pytest.raises(HarmonizeError, match="not in physical units") as caught:
        export_monai([manifest], tmp_path / "datalist.json")
    assert "harmonize run" in str(caught.value)
