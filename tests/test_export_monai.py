"""MONAI Decathlon-style datalist export (`harmonize export monai`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harmonize.plugins.fabricators.brats import make_brats2021
from harmonize.plugins.fabricators.kits import make_kits23
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.export import ExportError
from harmonize.export.monai import export_monai
from harmonize.manifest.build import build_manifest, read_manifest, write_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover

runner = CliRunner()


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("monai")
    catalog = load_catalog(entry_points=False)
    out = {}
    for dataset, make, n in (("kits23", make_kits23, 5), ("brats2021", make_brats2021, 2)):
        plugin = catalog.get(dataset)
        root = make(base / dataset, n_cases=n, seed=2)
        result = build_manifest(plugin, discover(plugin, root), base / f"m_{dataset}")
        assert not result.errors
        out[dataset] = result.path  # type: ignore[assignment]
    out["base"] = base
    return out


def test_datalist_splits_paths_and_labels(manifests: dict[str, Path], tmp_path: Path) -> None:
    records = {r.case_id: r for r in read_manifest(manifests["kits23"])}
    doc = export_monai([manifests["kits23"]], tmp_path / "datalist.json")
    assert json.loads((tmp_path / "datalist.json").read_text()) == doc
    keys = {"train": "training", "val": "validation", "test": "testing"}
    for case_id, record in records.items():
        items = [i for i in doc[keys[record.split]] if i["case_id"] == case_id]
        assert len(items) == 1
        item = items[0]
        folder = manifests["kits23"].parent
        assert item["image"] == str((folder / record.image).resolve())
        assert item["label"] == str((folder / record.mask).resolve())
        assert item["labels"]["kidney"] == [1, 2, 3] and item["patient_id"] == case_id
    assert doc["numTraining"] == len(doc["training"]) and doc["modality"] == {"0": "CT"}


def test_multichannel_unlabelled_and_relative_paths(manifests: dict[str, Path], tmp_path: Path) -> None:
    doc = export_monai([manifests["brats2021"]], tmp_path / "brats.json",
                       base_dir=manifests["base"])
    items = doc["training"] + doc["validation"] + doc["testing"]
    unlabelled = [i for i in items if "label" not in i]
    assert [i["case_id"] for i in unlabelled] == ["BraTS2021_00001"]
    assert all(isinstance(i["image"], list) and len(i["image"]) == 4 for i in items)
    assert all(not Path(i["image"][0]).is_absolute() for i in items)
    assert all((manifests["base"] / p).is_file() for i in items for p in i["image"])
    assert doc["modality"] == {"0": "T1", "1": "T1 contrast-enhanced", "2": "T2", "3": "FLAIR"}
    assert all(i["channels"] == list(doc["modality"].values()) for i in items)


def test_monai_loads_the_datalist(manifests: dict[str, Path], tmp_path: Path) -> None:
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    export_monai([manifests["kits23"]], tmp_path / "abs.json")
    export_monai([manifests["brats2021"]], tmp_path / "rel.json", base_dir=manifests["base"])
    total = 0
    for key in ("training", "validation", "testing"):
        items = load_decathlon_datalist(str(tmp_path / "abs.json"), True, key)
        total += len(items)
        assert all(Path(i["image"]).is_file() and Path(i["label"]).is_file() for i in items)
    assert total == len(read_manifest(manifests["kits23"]))
    rel = load_decathlon_datalist(str(tmp_path / "rel.json"), True, "training",
                                  base_dir=str(manifests["base"]))
    assert rel and all(Path(p).is_file() for i in rel for p in i["image"])
    sample = LoadImaged(keys=["image", "label"], ensure_channel_first=True)(rel[0])
    assert tuple(sample["image"].shape)[0] == 4 and sample["label"].shape[1:] == sample[
        "image"].shape[1:]


def test_errors_and_cli(manifests: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"\.json"):
        export_monai([manifests["kits23"]], tmp_path / "datalist.txt")
    records = read_manifest(manifests["kits23"])
    records[0].split = None
    path = manifests["kits23"].parent / "nosplit.jsonl"
    write_manifest(path, records)
    with pytest.raises(ExportError, match="no split"):
        export_monai([path], tmp_path / "x.json")
    path.unlink()
    # CT next to 4-channel MR: LoadImaged would stack CT and T1 as channel 0, so it is refused
    mixed = runner.invoke(app, ["export", "monai", "--manifest", str(manifests["kits23"]),
                                "--manifest", str(manifests["brats2021"]), "--out",
                                str(tmp_path / "both.json"), "--format", "json"])
    assert mixed.exit_code == 2 and not (tmp_path / "both.json").exists()
    assert "'kits23'" in mixed.output and "'brats2021'" in mixed.output
    done = runner.invoke(app, ["export", "monai", "--manifest", str(manifests["kits23"]),
                               "--out", str(tmp_path / "one.json"), "--format", "json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert sum(summary[k] for k in ("training", "validation", "testing")) == 5
