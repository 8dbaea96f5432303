"""MONAI Decathlon-style datalist export (`harmonize export monai`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
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
from harmonize.testing.normalized import make_normalized_dataset

runner = CliRunner()
README = Path(__file__).parents[1] / "README.md"


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
        assert item["image"] == [str((folder / record.image).resolve())]
        # KiTS23's values 1/2/3 already are the global labels: the record's own mask
        assert item["label"] == str((folder / record.mask).resolve())
        assert item["patient_id"] == case_id and item["modality"] == "CT"
        assert item["channels"] == "CT" and "labels" not in item
    assert doc["datasets"]["kits23"]["labels"]["kidney"] == [1, 2, 3]
    assert doc["labels"] == {"background": 0, "kidney": 1, "kidney tumor": 2, "kidney cyst": 3}
    assert doc["numTraining"] == len(doc["training"]) and doc["modality"] == {"0": "CT"}
    assert not (tmp_path / "datalist_labels").exists()


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
    assert all(i["channels"] == ",".join(doc["modality"].values()) for i in items)
    # BraTS values 1/2/4 are not consecutive: remapped copies beside the datalist
    labelled = [i for i in items if "label" in i]
    assert labelled and all((manifests["base"] / i["label"]).resolve().parent
                            == (tmp_path / "brats_labels").resolve() for i in labelled)
    assert doc["datasets"]["brats2021"]["label_of_mask_value"] == {"1": 1, "2": 2, "4": 3}


def test_monai_loads_the_datalist(manifests: dict[str, Path], tmp_path: Path) -> None:
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    export_monai([manifests["kits23"]], tmp_path / "abs.json")
    export_monai([manifests["brats2021"]], tmp_path / "rel.json", base_dir=manifests["base"])
    total = 0
    for key in ("training", "validation", "testing"):
        items = load_decathlon_datalist(str(tmp_path / "abs.json"), True, key)
        total += len(items)
        assert all(Path(i["image"][0]).is_file() and Path(i["label"]).is_file() for i in items)
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
    # CT next to 4-channel MR: one datalist, each item naming its own channels
    mixed = runner.invoke(app, ["export", "monai", "--manifest", str(manifests["kits23"]),
                                "--manifest", str(manifests["brats2021"]), "--out",
                                str(tmp_path / "both.json"), "--format", "json"])
    assert mixed.exit_code == 0, mixed.output
    doc = json.loads((tmp_path / "both.json").read_text())
    assert list(doc["modality"].values()) == ["CT", "T1", "T1 contrast-enhanced", "T2", "FLAIR"]
    assert json.loads(mixed.stdout)["remapped_masks"] == sum(
        "label" in i and Path(i["label"]).parent.name == "both_labels"
        for k in ("training", "validation", "testing") for i in doc[k])
    # a stale remapped mask of an earlier export is removed
    stale = tmp_path / "both_labels" / "gone.nii.gz"
    stale.write_bytes(b"")
    assert runner.invoke(app, ["export", "monai", "--manifest", str(manifests["brats2021"]),
                               "--manifest", str(manifests["kits23"]), "--out",
                               str(tmp_path / "both.json")]).exit_code == 0
    assert not stale.exists()
    done = runner.invoke(app, ["export", "monai", "--manifest", str(manifests["kits23"]),
                               "--out", str(tmp_path / "one.json"), "--format", "json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert sum(summary[k] for k in ("training", "validation", "testing")) == 5


# ------------------------------------------------------------------ mixed CT + MR through MONAI

KITS = {"kidney": [1, 2, 3], "kidney tumor": [2], "kidney cyst": [3], "kidney mass": [2, 3]}
BRATS = {"brain tumor": [1, 2, 4], "brain tumor core": [1, 4], "enhancing brain tumor": [4],
         "necrotic brain tumor core": [1], "peritumoral edema": [2]}
BRATS_CHANNELS = ("T1", "T1 contrast-enhanced", "T2", "FLAIR")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Normalized kits23-like CT and 4-channel (one file per channel) BraTS-like MR, all train."""
    base = tmp_path_factory.mktemp("mixed")
    ct = make_normalized_dataset(base, "kits23", n_cases=3, labels=KITS, splits=["train"] * 3,
                                 seed=1)
    mr = make_normalized_dataset(base, "brats2021", n_cases=3, modality="MR",
                                 channels=BRATS_CHANNELS, four_d=False, labels=BRATS,
                                 splits=["train"] * 3, seed=2)
    return base, [ct, mr]


def oracle_luts(manifests: list[Path]) -> tuple[list[str], dict[tuple[str, str], dict[int, int]]]:
    """The test's own global table from the manifests' ``labels`` fields: each mask value is its
    smallest class; names numbered 1.. in order of first appearance (manifest, case order)."""
    names: list[str] = []
    luts: dict[tuple[str, str], dict[int, int]] = {}
    for manifest in manifests:
        for record in sorted(read_manifest(manifest), key=lambda r: r.case_id):
            lut = {}
            for value in sorted({int(v) for vs in record.labels.values() for v in vs} - {0}):
                leaf = min((n for n, vs in record.labels.items() if value in vs),
                           key=lambda n: len(record.labels[n]))
                if leaf not in names:
                    names.append(leaf)
                lut[value] = names.index(leaf) + 1
            luts[(record.dataset, record.case_id)] = lut
    return names, luts


def remapped_source(base: Path, manifests: list[Path], dataset: str, case_id: str,
                    lut: dict[int, int]) -> np.ndarray:
    record = next(r for m in manifests for r in read_manifest(m)
                  if r.dataset == dataset and r.case_id == case_id)
    source = np.asarray(nib.load(base / record.mask).dataobj).astype(np.int64)
    out = np.zeros_like(source)
    for value, label in lut.items():
        out[source == value] = label
    return out


def test_old_datalist_failed_default_collation_new_one_batches(tmp_path: Path) -> None:
    """Issue 15 item 3: per-item ``labels`` dicts with per-dataset keys made MONAI's default
    collation fail (KeyError 'vertebra C1'); the datalist's items now collate as they are."""
    from monai.data import list_data_collate

    kits = make_normalized_dataset(tmp_path / "a", "kits23", n_cases=2, labels=KITS,
                                   splits=["train"] * 2)
    spine = make_normalized_dataset(tmp_path / "b", "verse", n_cases=2,
                                    labels={"vertebra C1": [1], "vertebra C2": [2]},
                                    splits=["train"] * 2)
    doc = export_monai([kits, spine], tmp_path / "dl.json")
    items = doc["training"]
    assert {i["dataset"] for i in items} == {"kits23", "verse"}
    old = [dict(i, labels=(KITS if i["dataset"] == "kits23" else
                           {"vertebra C1": [1], "vertebra C2": [2]})) for i in items]
    with pytest.raises(KeyError, match="vertebra C1"):
        list_data_collate(old[2:] + old[:2])  # the old failure, reproduced
    batch = list_data_collate(items)
    assert batch["dataset"] == [i["dataset"] for i in items]
    assert doc["labels"] == {"background": 0, "kidney": 1, "kidney tumor": 2, "kidney cyst": 3,
                             "vertebra C1": 4, "vertebra C2": 5}


def test_mixed_ct_mr_export_trains_a_monai_unet(mixed: tuple[Path, list[Path]],
                                                 tmp_path: Path) -> None:
    """load_decathlon_datalist -> CacheDataset -> DataLoader (default collation) -> UNet +
    DiceCELoss, one optimizer step, on CT + 4-channel MR; labels are the global table's."""
    import torch
    from monai.data import CacheDataset, DataLoader, load_decathlon_datalist
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        LoadImaged,
        ResizeWithPadOrCrop,
        ResizeWithPadOrCropd,
    )

    base, manifests = mixed
    path = tmp_path / "mixed.json"
    doc = export_monai(manifests, path)
    names, luts = oracle_luts(manifests)
    assert doc["labels"] == {"background": 0, **{n: k for k, n in enumerate(names, start=1)}}
    assert doc["labels"] == {"background": 0, "kidney": 1, "kidney tumor": 2, "kidney cyst": 3,
                             "necrotic brain tumor core": 4, "peritumoral edema": 5,
                             "enhancing brain tumor": 6}
    union = list(doc["modality"].values())
    assert union == ["CT", *BRATS_CHANNELS]

    # what a user does (README's MONAI section, run as written): each item's channels by name
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
                if "def pad_channels" in b]
    namespace: dict = {"torch": torch, "union": union}
    exec(block[block.index("def pad_channels"):block.index("chain = ")], namespace)
    pad_channels = namespace["pad_channels"]

    size = (32, 32, 24)
    chain = Compose([LoadImaged(keys=["image", "label"]),
                     EnsureChannelFirstd(keys=["image", "label"]),
                     ResizeWithPadOrCropd(keys=["image", "label"], spatial_size=size),
                     pad_channels])
    items = load_decathlon_datalist(str(path), True, "training")
    assert len(items) == 6
    dataset = CacheDataset(items, transform=chain, cache_rate=1.0, num_workers=0)
    loader = DataLoader(dataset, batch_size=6, shuffle=False, num_workers=0)
    batch = next(iter(loader))
    assert tuple(batch["image"].shape) == (6, 5, *size)
    assert tuple(batch["label"].shape) == (6, 1, *size)
    assert batch["modality"] == ["CT"] * 3 + ["MR"] * 3
    for i, (ds, case) in enumerate(zip(batch["dataset"], batch["case_id"])):
        expected = ResizeWithPadOrCrop(spatial_size=size)(torch.as_tensor(
            remapped_source(base, manifests, ds, case, luts[(ds, case)]))[None])
        assert torch.equal(torch.as_tensor(batch["label"][i]).long(),
                           torch.as_tensor(expected).long()), (ds, case)
        own = torch.unique(torch.as_tensor(batch["label"][i])).tolist()
        assert set(own) - {0} <= {doc["labels"][n] for n in doc["datasets"][ds]["labels"]
                                  if n in doc["labels"]}
        absent = [union.index(n) for n in union if n not in batch["channels"][i].split(",")]
        assert all(not batch["image"][i, c].any() for c in absent)
    assert {4, 5, 6} <= set(torch.unique(torch.as_tensor(batch["label"])).tolist())

    torch.manual_seed(0)
    net = UNet(spatial_dims=3, in_channels=len(union), out_channels=len(doc["labels"]),
               channels=(4, 8, 16), strides=(2, 2), num_res_units=0)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer.zero_grad()
    loss = loss_fn(net(torch.as_tensor(batch["image"])), torch.as_tensor(batch["label"]).long())
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
