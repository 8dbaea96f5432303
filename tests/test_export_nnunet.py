"""nnU-Net v2 raw export (`harmonize export nnunet`) on fabricated KiTS19/KiTS23 and BraTS 2021."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.brats import make_brats2021
from harmonize.plugins.fabricators.kits import make_kits, make_kits23
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.engine.pipeline import Target, run
from harmonize.export import ExportError, load_entries
from harmonize.export.nnunet import channel_names, dataset_folder, export_nnunet
from harmonize.manifest.build import build_manifest, read_manifest, write_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover

runner = CliRunner()
SPLITS = {"case_00000": "train", "case_00001": "train", "case_00002": "val", "case_00003": "test"}


def _manifest(plugin_id: str, root: Path, out: Path, splits: dict[str, str] | None = None) -> Path:
    plugin = load_catalog(entry_points=False).get(plugin_id)
    result = build_manifest(plugin, discover(plugin, root), out)
    assert result.path is not None and not result.errors
    if splits:
        for record in result.records:
            record.split = splits[record.case_id]
        write_manifest(result.path, result.records)
    return result.path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("nnunet")
    kits_root = make_kits23(base / "kits23", n_cases=4, seed=2)
    brats_root = make_brats2021(base / "brats", n_cases=2, seed=3)
    kits19_root = make_kits(base / "kits19", release="kits19", n_cases=2, first_case=0, seed=5)
    return {
        "base": base,
        "kits": _manifest("kits23", kits_root, base / "m_kits", SPLITS),
        "brats": _manifest("brats2021", brats_root, base / "m_brats"),
        "kits19": _manifest("kits19", kits19_root, base / "m_kits19"),
        "kits_root": kits_root,
    }


def _labels(path: Path) -> set[int]:
    return {int(v) for v in np.unique(np.asarray(nib.load(path).dataobj))}


def test_kits23_layout_dataset_json_and_splits(data: dict[str, Path], tmp_path: Path) -> None:
    result = export_nnunet([data["kits"]], tmp_path, dataset_id=501, name="KiTS23")
    folder = tmp_path / "Dataset501_KiTS23"
    assert result.ok and result.folder == folder
    assert not [w for w in result.warnings if "do not annotate" in w]
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        "case_00000_0000.nii.gz", "case_00001_0000.nii.gz", "case_00002_0000.nii.gz"]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == [
        "case_00000.nii.gz", "case_00001.nii.gz", "case_00002.nii.gz"]
    assert [p.name for p in (folder / "imagesTs").iterdir()] == ["case_00003_0000.nii.gz"]
    assert [p.name for p in (folder / "labelsTs").iterdir()] == ["case_00003.nii.gz"]
    doc = json.loads((folder / "dataset.json").read_text())
    assert doc["channel_names"] == {"0": "CT"}
    assert doc["labels"] == {"background": 0, "kidney": 1, "kidney tumor": 2, "kidney cyst": 3}
    assert doc["numTraining"] == 3 and doc["file_ending"] == ".nii.gz"
    assert json.loads((folder / "splits_final.json").read_text()) == [
        {"train": ["case_00000", "case_00001"], "val": ["case_00002"]}]
    source = data["kits_root"] / "dataset" / "case_00000"
    assert (folder / "imagesTr" / "case_00000_0000.nii.gz").read_bytes() == (
        source / "imaging.nii.gz").read_bytes()  # copied, not re-encoded
    label = nib.load(folder / "labelsTr" / "case_00000.nii.gz")
    original = nib.load(source / "segmentation.nii.gz")
    assert np.array_equal(np.asarray(label.dataobj), np.asarray(original.dataobj))
    assert np.allclose(label.affine, nib.load(source / "imaging.nii.gz").affine)


def test_brats_channels_and_non_consecutive_labels(data: dict[str, Path], tmp_path: Path) -> None:
    result = export_nnunet([data["brats"]], tmp_path, dataset_id=137, name="BraTS2021")
    folder = result.folder
    assert result.ok, result.errors
    doc = result.dataset_json
    assert doc["channel_names"] == {"0": "T1", "1": "T1 contrast-enhanced", "2": "T2", "3": "FLAIR"}
    assert doc["labels"] == {"background": 0, "necrotic brain tumor core": 1,
                             "peritumoral edema": 2, "enhancing brain tumor": 3}
    assert doc["harmonize"]["label_of_mask_value"]["brats2021"] == {"1": 1, "2": 2, "4": 3}
    case = "BraTS2021_00000"
    for c, suffix in enumerate(("t1", "t1ce", "t2", "flair")):
        written = nib.load(folder / "imagesTr" / f"{case}_{c:04d}.nii.gz")
        src = next(data["base"].glob(f"brats/*/{case}/{case}_{suffix}.nii.gz"))
        assert (folder / "imagesTr" / f"{case}_{c:04d}.nii.gz").is_file()
        assert np.array_equal(np.asarray(written.dataobj), np.asarray(nib.load(src).dataobj))
    src_label = np.asarray(nib.load(next(data["base"].glob(f"brats/*/{case}/{case}_seg.nii.gz")))
                           .dataobj)
    label = np.asarray(nib.load(folder / "labelsTr" / f"{case}.nii.gz").dataobj)
    assert _labels(folder / "labelsTr" / f"{case}.nii.gz") == {0, 1, 2, 3}
    assert np.array_equal(label == 3, src_label == 4) and np.array_equal(label == 1, src_label == 1)
    # the unlabelled validation case goes to imagesTs, all four channels
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [
        f"BraTS2021_00001_{c:04d}.nii.gz" for c in range(4)]


def _decode(labels: dict, order: list[int], label: int) -> int:
    """nnU-Net's region decoding: paint regions in order with regions_class_order."""
    result = 0
    for region, paint in zip(list(labels.values())[1:], order):
        members = region if isinstance(region, list) else [region]
        if label in members:
            result = paint
    return result


def test_regions_decode_every_label(data: dict[str, Path], tmp_path: Path) -> None:
    for key in ("kits", "brats"):
        doc = export_nnunet([data[key]], tmp_path / key, dataset_id=2, name="R",
                            regions=True).dataset_json
        labels, order = doc["labels"], doc["regions_class_order"]
        assert len(order) == len(labels) - 1
        top = max(max(v) if isinstance(v, list) else v for v in labels.values())
        assert [_decode(labels, order, g) for g in range(1, top + 1)] == list(range(1, top + 1))
    kits = export_nnunet([data["kits"]], tmp_path / "k2", dataset_id=3, name="K",
                         regions=True).dataset_json["labels"]
    assert kits["kidney"] == [1, 2, 3] and kits["kidney mass"] == [2, 3]


def test_two_datasets_share_labels_by_name(data: dict[str, Path], tmp_path: Path) -> None:
    result = export_nnunet([data["kits"], data["kits19"]], tmp_path, dataset_id=600, name="Kidney")
    assert result.ok, result.errors
    assert result.dataset_json["labels"] == {"background": 0, "kidney": 1, "kidney tumor": 2,
                                             "kidney cyst": 3}
    unannotated = [w for w in result.warnings if "do not annotate" in w]
    assert unannotated == ["kits19: cases do not annotate ['kidney cyst']; nnU-Net will learn "
                           "those classes as background there (export datasets with the same "
                           "classes together)"]  # KiTS19 has no cyst class
    names = {p.name for p in (result.folder / "imagesTr").iterdir()}
    assert "kits23_case_00000_0000.nii.gz" in names
    assert any(n.startswith("kits19_case_") for n in names | {
        p.name for p in (result.folder / "imagesTs").iterdir()})


def test_uncovered_mask_value_is_a_case_error(data: dict[str, Path], tmp_path: Path) -> None:
    records = read_manifest(data["kits"])
    records[0].labels = {"kidney": [1, 2], "kidney tumor": [2]}  # value 3 left uncovered
    path = data["kits"].parent / "partial" / "kits23.jsonl"
    path.parent.mkdir(exist_ok=True)
    for record in records:  # keep paths valid from the new folder
        record.image = "../" + record.image
        record.mask = "../" + record.mask
    write_manifest(path, records)
    result = export_nnunet([path], tmp_path, dataset_id=7, name="P")
    assert [(e.case, e.kind) for e in result.errors] == [("case_00000", "label")]
    assert "[3]" in result.errors[0].message and result.errors[0].file.endswith(".nii.gz")
    assert "case_00000_0000.nii.gz" not in {p.name for p in (result.folder / "imagesTr").iterdir()}
    assert result.dataset_json["numTraining"] == 2


def test_bad_id_name_and_channel_mix(data: dict[str, Path], tmp_path: Path) -> None:
    assert dataset_folder(5, "KiTS") == "Dataset005_KiTS"
    with pytest.raises(ExportError, match="1 to 999"):
        dataset_folder(1000, "X")
    with pytest.raises(ExportError, match="letters"):
        dataset_folder(5, "a b")
    # nnU-Net cannot mark a channel missing: CT next to MR is refused, naming both datasets
    with pytest.raises(ExportError, match=r"kits23 lacks channel\(s\) T1.* that brats2021 has"):
        export_nnunet([data["kits"], data["brats"]], tmp_path, dataset_id=9, name="Mix")
    with pytest.raises(ExportError, match="brats2021 lacks channel"):
        export_nnunet([data["kits"], data["brats"]], tmp_path, dataset_id=9, name="Mix",
                      channels=["CT"])


def test_normalized_manifest_exports_and_cli(data: dict[str, Path], tmp_path: Path) -> None:
    run([Target("kits23", data["kits_root"])], tmp_path / "norm", workers=1, progress=False)
    done = runner.invoke(app, ["export", "nnunet", "--manifest", str(tmp_path / "norm" /
                               "kits23.jsonl"), "--dataset-id", "502", "--out",
                               str(tmp_path / "raw"), "--no-progress", "--format", "json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["folder"].endswith("Dataset502_kits23")
    folder = Path(summary["folder"])
    image = nib.load(next((folder / "imagesTr").iterdir()))
    assert "".join(nib.aff2axcodes(image.affine)) == "RAS"


@pytest.mark.skipif(importlib.util.find_spec("nnunetv2") is None, reason="nnunetv2 not installed")
def test_nnunet_accepts_the_export(data: dict[str, Path], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    result = export_nnunet([data["kits"]], tmp_path, dataset_id=501, name="KiTS23", regions=True)
    verify_dataset_integrity(str(result.folder), 1)  # raises on any broken rule
    doc = result.dataset_json
    manager = LabelManager(doc["labels"], regions_class_order=doc["regions_class_order"])
    assert manager.has_regions and manager.all_labels == [0, 1, 2, 3]
    for label in (1, 2, 3):  # a voxel of each label, as region probabilities, decodes back
        onehot = np.array([[[[float(label in (r if isinstance(r, tuple) else (r,)))]]]
                           for r in manager.foreground_regions])
        assert int(manager.convert_probabilities_to_segmentation(onehot).item()) == label


def test_mixed_modalities_never_get_ct_normalization(data: dict[str, Path]) -> None:
    entries = load_entries([data["kits"]])
    assert channel_names(entries) == {"0": "CT"}
    entries[1].record.modality, entries[1].record.channels = "MR", ["MR"]  # e.g. CHAOS MR
    entries[1].record.dataset = "chaos-mr"
    with pytest.raises(ExportError, match="lacks channel"):  # never CT normalization on MR
        channel_names(entries)
