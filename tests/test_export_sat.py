"""SAT-DS interop (`harmonize export sat`, `harmonize import sat`): format, masks, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.brats import make_brats2021
from harmonize.plugins.fabricators.kits import make_kits23
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.errors import LabelError, ManifestError
from harmonize.export.sat import export_sat, sat_labels
from harmonize.export.sat_import import case_ids, import_sat
from harmonize.manifest.build import build_manifest, read_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover

runner = CliRunner()
REGISTRY = Path(__file__).resolve().parents[1] / "registry" / "datasets"
#: The first line of SAT-DS's data/jsonl/KiTS23.jsonl (zhaoziheng/SAT-DS), verbatim.
SAT_KITS23_LINE = json.loads(
    '{"image": "data/nii/KiTS23/dataset/case_00000/imaging.nii.gz", "mask": '
    '"data/nii/KiTS23/dataset/case_00000/segmentation.nii.gz", "label": ["kidney", '
    '"kidney tumor", "kidney cyst"], "modality": "CT", "dataset": "KiTS23", "official_split": '
    '"train", "patient_id": "case_00000"}')


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sat")
    catalog = load_catalog(entry_points=False)
    out = {"base": base}
    for dataset, make, n in (("kits23", make_kits23, 5), ("brats2021", make_brats2021, 2)):
        plugin = catalog.get(dataset)
        root = make(base / dataset, n_cases=n, seed=6)
        result = build_manifest(plugin, discover(plugin, root), base / f"m_{dataset}")
        assert not result.errors
        out[dataset] = result.path  # type: ignore[assignment]
        out[f"{dataset}_root"] = root
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sat_label_lists() -> None:
    kits = {"kidney": [1, 2, 3], "kidney mass": [2, 3], "kidney tumor": [2], "kidney cyst": [3]}
    assert sat_labels(kits) == (["kidney", "kidney tumor", "kidney cyst"], 3,
                                {1: 1, 2: 2, 3: 3},
                                {"kidney": [1, 2, 3], "kidney mass": [2, 3], "kidney tumor": [2],
                                 "kidney cyst": [3]})
    brats = {"brain tumor": [1, 2, 4], "enhancing brain tumor": [4],
             "necrotic brain tumor core": [1], "peritumoral edema": [2]}
    names, n, value_map, values = sat_labels(brats)
    assert names == ["necrotic brain tumor core", "peritumoral edema", "enhancing brain tumor"]
    assert value_map == {1: 1, 2: 2, 4: 3} and values["brain tumor"] == [1, 2, 3]
    lesions = {"lesion": [1, 2, 3], "liver lesion": [1, 3], "lung lesion": [2], "bone lesion": []}
    names, n, value_map, values = sat_labels(lesions)
    assert names == ["liver lesion", "lung lesion", "bone lesion"] and n == 2
    assert value_map == {1: 1, 2: 2, 3: 1} and values["bone lesion"] == []


def test_kits23_lines_match_sat_ds_format(data: dict[str, Path], tmp_path: Path) -> None:
    result = export_sat([data["kits23"]], tmp_path)  # SAT-DS name from the descriptor
    assert not result.errors and result.lines == 5 and set(result.jsonl) == {"KiTS23"}
    lines = _lines(tmp_path / "jsonl" / "KiTS23.jsonl")
    first = lines[0]
    assert list(first)[:7] == list(SAT_KITS23_LINE)  # same keys, same order
    for key, value in SAT_KITS23_LINE.items():
        assert type(first[key]) is type(value)
    assert first["label"] == SAT_KITS23_LINE["label"] and first["modality"] == "CT"
    assert first["dataset"] == "KiTS23" and first["official_split"] == "unknown"
    records = {r.case_id: r for r in read_manifest(data["kits23"])}
    record = records[first["patient_id"]]
    # relative to the export folder as SAT-DS's to its root; KiTS23's values are SAT-DS's: reused
    assert not Path(first["mask"]).is_absolute() and not Path(first["image"]).is_absolute()
    assert (tmp_path / first["mask"]).resolve() == (data["kits23"].parent / record.mask).resolve()
    assert first["harmonize"]["labels"]["kidney"] == [1, 2, 3]
    split = json.loads((tmp_path / "split_json" / "KiTS23.json").read_text())
    assert set(split) == {"train", "test"}
    assert split["test"] == sorted(c for c, r in records.items() if r.split == "test")
    assert split["train"] == sorted(c for c, r in records.items() if r.split in ("train", "val"))
    moved = export_sat([data["kits23"]], tmp_path / "v", val_to="test")
    test = json.loads(moved.split_json["KiTS23"].read_text())["test"]
    assert test == sorted(c for c, r in records.items() if r.split in ("test", "val"))


def test_sat_loader_semantics_on_a_remapped_brats_mask(data: dict[str, Path], tmp_path: Path) -> None:
    result = export_sat([data["brats2021"]], tmp_path, base_dir=tmp_path)
    lines = _lines(result.jsonl["brats2021"])
    case = [line for line in lines if line["patient_id"] == "BraTS2021_00000"]
    assert [line["modality"] for line in case] == [
        "MRI T1", "MRI T1 contrast-enhanced", "MRI T2", "MRI FLAIR"]
    assert len({line["mask"] for line in case}) == 1
    assert case[0]["mask"] == "masks/brats2021/BraTS2021_00000.nii.gz"  # relative to base_dir
    sat_mask = np.asarray(nib.load(tmp_path / case[0]["mask"]).dataobj)
    source = next(data["brats2021_root"].rglob("BraTS2021_00000_seg.nii.gz"))
    ours = np.asarray(nib.load(source).dataobj)
    # SAT-DS loader.py: channel i of the mask is (mask == i + 1) for label[i]
    for i, name in enumerate(case[0]["label"]):
        raw = {"necrotic brain tumor core": 1, "peritumoral edema": 2, "enhancing brain tumor": 4}
        assert np.array_equal(sat_mask == i + 1, ours == raw[name])
    merged = case[0]["harmonize"]["labels"]["brain tumor"]
    assert np.array_equal(np.isin(sat_mask, merged), np.isin(ours, [1, 2, 4]))
    assert not [line for line in lines if line["patient_id"] == "BraTS2021_00001"]
    assert result.unlabelled == ["brats2021/BraTS2021_00001"]  # no mask: not a SAT-DS sample


def test_round_trip_export_then_import(data: dict[str, Path], tmp_path: Path) -> None:
    exported = export_sat([data["kits23"]], tmp_path / "sat", names={"kits23": "KiTS23"})
    result = import_sat(exported.jsonl["KiTS23"], "sat-kits23", tmp_path / "imported",
                        split_json=exported.split_json["KiTS23"])
    assert not result.errors and not result.skipped and not result.warnings
    original = {r.case_id: r for r in read_manifest(data["kits23"])}
    back = {r.case_id: r for r in read_manifest(tmp_path / "imported" / "sat-kits23.jsonl")}
    assert set(back) == set(original)
    for case_id, record in original.items():
        again = back[case_id]
        assert again.patient_id == record.patient_id and again.labels == record.labels
        assert again.source["images"][0]["sha256"] == record.source["images"][0]["sha256"]
        assert again.source["label"]["sha256"] == record.source["label"]["sha256"]
        assert again.shape == record.shape and again.spacing == record.spacing
        assert (again.split == "test") == (record.split == "test")
        assert again.dataset == "sat-kits23"


def test_import_sat_ds_lines_position_rule_and_descriptor(data: dict[str, Path], tmp_path: Path) -> None:
    root = data["kits23_root"]
    lines = []
    for folder in sorted((root / "dataset").glob("case_*")):
        line = dict(SAT_KITS23_LINE, patient_id=folder.name, official_split="train")
        line["image"] = f"kits/dataset/{folder.name}/imaging.nii.gz"  # relative, as SAT-DS
        line["mask"] = f"kits/dataset/{folder.name}/segmentation.nii.gz"
        line["label"] = [*line["label"], "kidney mass"]  # a merged name appended, WORD-style
        lines.append(line)
    path = tmp_path / "KiTS23.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    base = tmp_path / "satds"
    (base / "kits").mkdir(parents=True)
    (base / "kits" / "dataset").symlink_to(root / "dataset")
    plain = import_sat(path, "sat-kits23", tmp_path / "plain", base_dir=base)
    assert not plain.errors and len(plain.records) == 5
    assert plain.records[0].labels == {"kidney": [1], "kidney tumor": [2], "kidney cyst": [3]}
    assert "kidney mass" in plain.warnings[0] and "not imported" in plain.warnings[0]
    assert {r.official_split for r in plain.records} == {"train"}
    described = import_sat(path, "sat-kits23", tmp_path / "described", base_dir=base,
                           labels_from=REGISTRY / "kits23.yaml")
    assert not described.errors and not described.warnings
    assert described.records[0].labels == {"kidney": [1, 2, 3], "kidney mass": [2, 3],
                                           "kidney tumor": [2], "kidney cyst": [3]}


def test_import_problems_are_reported(data: dict[str, Path], tmp_path: Path) -> None:
    image = next(data["kits23_root"].rglob("imaging.nii.gz"))
    good = dict(SAT_KITS23_LINE, image=str(image), mask=str(image.with_name("segmentation.nii.gz")))
    cases = {
        "unknown": [dict(good, label=["kidney", "glomerulus of the moon", "kidney cyst"])],
        "missing key": [{k: v for k, v in good.items() if k != "patient_id"}],
        "split": [dict(good, official_split="holdout")],
    }
    for name, lines in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        error = LabelError if name == "unknown" else ManifestError
        with pytest.raises(error) as info:
            import_sat(path, "sat-bad", tmp_path / "out")
        assert "line 1" in str(info.value) or "glomerulus" in str(info.value)
    pseudo = tmp_path / "pseudo.jsonl"
    pseudo.write_text(json.dumps(dict(good, image=str(image) + "/T2", patient_id="p2")) + "\n"
                      + json.dumps(good) + "\n")
    result = import_sat(pseudo, "sat-pseudo", tmp_path / "pseudo")
    assert len(result.records) == 1 and len(result.skipped) == 1
    assert "pseudo-path" in result.skipped[0].reason


def test_case_ids_are_unique_and_safe() -> None:
    assert case_ids([{"image": "MR/34/T1DUAL/InPhase/701_.nii.gz", "patient_id": "34"},
                     {"image": "MR/34/T1DUAL/OutPhase/701_.nii.gz", "patient_id": "34"}]) == [
        "InPhase_701", "OutPhase_701"]
    assert case_ids([{"image": "a/word_0106.nii.gz", "patient_id": "word_0106.nii.gz"}]) == [
        "word_0106"]


def test_cli_export_and_import(data: dict[str, Path], tmp_path: Path) -> None:
    done = runner.invoke(app, ["export", "sat", "--manifest", str(data["kits23"]), "--out",
                               str(tmp_path / "sat"), "--sat-name", "kits23=KiTS23",
                               "--no-progress", "--format", "json"])
    assert done.exit_code == 0, done.output
    jsonl = json.loads(done.stdout)["jsonl"]["KiTS23"]
    back = runner.invoke(app, ["import", "sat", "--jsonl", jsonl, "--dataset-id", "sat-kits23",
                               "--out", str(tmp_path / "imp"), "--split-json",
                               str(tmp_path / "sat" / "split_json" / "KiTS23.json"),
                               "--format", "json"])
    assert back.exit_code == 0, back.output
    assert json.loads(back.stdout)["cases"] == 5
    bad = runner.invoke(app, ["export", "sat", "--manifest", str(data["kits23"]), "--out",
                              str(tmp_path / "x"), "--sat-name", "kits23"])
    assert bad.exit_code == 2


def test_import_half_still_imports_from_the_old_module() -> None:
    import harmonize.export.sat as sat
    import harmonize.export.sat_import as sat_import

    with pytest.warns(DeprecationWarning, match="harmonize.export.sat_import"):
        assert sat.import_sat is sat_import.import_sat
    with pytest.raises(AttributeError):
        sat.no_such_name  # noqa: B018
