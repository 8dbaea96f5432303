"""HarmonizedDataset: RAS reading, classes and partial labels, channels, patches, errors, batching."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from harmonize.plugins.fabricators.kits import make_kits23
from torch.utils.data import DataLoader

from harmonize.errors import LabelError, ManifestError, ReadError
from harmonize.loader.dataset import (
    DatasetMixSampler,
    HarmonizedDataset,
    LoaderError,
    ThreadLoader,
    collate,
    describe_batch,
    load_one_batch,
)
from harmonize.manifest.build import build_manifest, read_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover
from harmonize.testing import write_nifti
from harmonize.testing.normalized import make_normalized_dataset


def kits_manifest(tmp: Path, n_cases: int = 3) -> Path:
    """Source-level KiTS23 manifest: files in KiTS's (slices, H, W) storage order, not RAS."""
    plugin = load_catalog(entry_points=False).get("kits23")
    root = make_kits23(tmp / "kits23", n_cases=n_cases)
    return build_manifest(plugin, discover(plugin, root), tmp / "manifests").path


def mr_manifest(tmp: Path, **kwargs) -> Path:
    """Normalized-style 2-channel MR dataset labelling left/right kidney (1, 2)."""
    kwargs.setdefault("splits", ["train", "train", "val"])
    return make_normalized_dataset(tmp / "out", "mrk", n_cases=3, modality="MR", channels=("T1", "T2"),
                                   **kwargs)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("loader")
    return kits_manifest(tmp), mr_manifest(tmp)


def test_source_manifest_is_reoriented_to_ras(manifests):
    kits, _ = manifests
    record = read_manifest(kits)[0]
    assert record.orientation != "RAS"
    ds = HarmonizedDataset(kits, classes=["kidney", "kidney tumor", "kidney mass"], patch_size=None)
    sample = ds[0]
    root = kits.parent
    image = nib.as_closest_canonical(nib.load(root / record.image))
    label = np.asarray(nib.as_closest_canonical(nib.load(root / record.mask)).dataobj)
    np.testing.assert_array_equal(sample["image"][0].numpy(), image.get_fdata(dtype=np.float32))
    assert sample["mask"].shape == (3, *label.shape)
    np.testing.assert_array_equal(sample["mask"][0].numpy(), np.isin(label, [1, 2, 3]))
    np.testing.assert_array_equal(sample["mask"][1].numpy(), label == 2)
    np.testing.assert_array_equal(sample["mask"][2].numpy(), np.isin(label, [2, 3]))
    assert sample["mask"].dtype == torch.uint8
    assert sample["label_present"].tolist() == [True, True, True]
    np.testing.assert_allclose(sample["spacing"].numpy(), image.header.get_zooms()[:3], rtol=1e-5)


@pytest.mark.parametrize("four_d", [True, False])
def test_normalized_manifest_reads_unchanged(tmp_path, four_d):
    path = make_normalized_dataset(tmp_path, "mrk", n_cases=1, modality="MR", channels=("T1", "T2"),
                                   four_d=four_d)
    record = read_manifest(path)[0]
    sample = HarmonizedDataset(path, patch_size=None)[0]
    if four_d:
        expected = np.moveaxis(nib.load(tmp_path / record.image).get_fdata(dtype=np.float32), -1, 0)
    else:
        expected = np.stack([nib.load(tmp_path / p).get_fdata(dtype=np.float32) for p in record.image])
    np.testing.assert_array_equal(sample["image"].numpy(), expected)
    assert sample["classes"] == ["left kidney", "right kidney"]
    label = np.asarray(nib.load(tmp_path / record.mask).dataobj)
    np.testing.assert_array_equal(sample["mask"][1].numpy(), label == 2)


@pytest.mark.parametrize("codes", [("L", "P", "S"), ("P", "I", "R"), ("S", "L", "A"), ("A", "S", "L")])
def test_any_orientation_matches_closest_canonical(tmp_path, codes):
    """A record pointing at a volume stored in another orientation reads as the RAS volume."""
    path = make_normalized_dataset(tmp_path, "ct", n_cases=1, labels={"liver": [3], "liver tumor": [4]})
    record = read_manifest(path)[0]
    ras_image, ras_mask = (nib.load(tmp_path / p) for p in (record.image, record.mask))
    expected_image = ras_image.get_fdata(dtype=np.float32)
    expected_mask = np.isin(np.asarray(ras_mask.dataobj), [3, 4])  # liver includes its tumor
    ornt = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"),
                                           nib.orientations.axcodes2ornt(codes))
    for img, name in ((ras_image, record.image), (ras_mask, record.mask)):
        turned = nib.Nifti1Image(np.asarray(img.dataobj), img.affine).as_reoriented(ornt)
        assert "".join(nib.aff2axcodes(turned.affine)) == "".join(codes)
        write_nifti(tmp_path / name, np.asarray(turned.dataobj), turned.affine)
    sample = HarmonizedDataset(path, patch_size=None)[0]
    np.testing.assert_array_equal(sample["image"][0].numpy(), expected_image)
    np.testing.assert_array_equal(sample["mask"][0].numpy(), expected_mask)


def test_parent_from_left_right_children(tmp_path):
    path = mr_manifest(tmp_path, annotated={1: ["left kidney"]}, splits=None)
    ds = HarmonizedDataset(path, classes=["kidney", "left kidney"], patch_size=None)
    full = ds[0]
    label = np.asarray(nib.load(tmp_path / "out" / read_manifest(path)[0].mask).dataobj)
    np.testing.assert_array_equal(full["mask"][0].numpy(), np.isin(label, [1, 2]))
    assert full["label_present"].tolist() == [True, True]
    # case 1 has only its left kidney annotated: kidney is not covered
    assert ds[1]["label_present"].tolist() == [False, True]


def test_parts_do_not_make_a_parent_annotated_unless_asked(tmp_path):
    # "heart ventricle" has exactly two children, not named as sides of it
    path = make_normalized_dataset(tmp_path, "ventricles", n_cases=1,
                                   labels={"left ventricle": [3], "right ventricle": [4]})
    sides = HarmonizedDataset(path, classes=["heart ventricle"], patch_size=None)[0]
    assert sides["label_present"].tolist() == [False]
    children = HarmonizedDataset(path, classes=["heart ventricle"], patch_size=None,
                                 parents="children")[0]
    assert children["label_present"].tolist() == [True]
    assert int(children["mask"].sum()) > 0


def test_classes_none_synonyms_and_partial_labels(manifests):
    kits, mr = manifests
    ds = HarmonizedDataset([kits, mr], patch_size=None)
    assert ds.classes == sorted(["kidney", "kidney cyst", "kidney mass", "kidney tumor",
                                 "left kidney", "right kidney"])
    ds = HarmonizedDataset([kits, mr], classes=["Renal tumor", "kidneys"], patch_size=None)
    assert ds.classes == ["kidney tumor", "kidney"]
    mr_sample = ds[ds.indices_by_dataset["mrk"][0]]
    assert mr_sample["label_present"].tolist() == [False, True]
    assert int(mr_sample["mask"][0].sum()) == 0


def test_bad_classes(manifests):
    kits, mr = manifests
    with pytest.raises(LabelError, match="kidney tumor") as info:
        HarmonizedDataset([kits, mr], classes=["liver"])
    assert "no manifest labels 'liver'" in str(info.value)
    with pytest.raises(LabelError, match="not a canonical structure name"):
        HarmonizedDataset(kits, classes=["kidny tumour"])
    with pytest.raises(LabelError, match="non-empty"):
        HarmonizedDataset(kits, classes=[])
    with pytest.raises(LabelError, match="twice"):
        HarmonizedDataset(kits, classes=["kidney tumor", "renal tumor"])


def test_mixed_channels_batch_with_default_collate(manifests):
    """CT next to T1/T2 MR: the union of channels in canonical order (CT, T1, T2), each sample's
    channels in their own slot, zeros and channel_present False where a dataset has none."""
    kits, mr = manifests
    ds = HarmonizedDataset([kits, mr], classes=["kidney", "kidney tumor"], patch_size=16)
    assert ds.channels == ["CT", "T1", "T2"] and ds.in_channels == 3
    keys = [ds.indices_by_dataset["kits23"][0], ds.indices_by_dataset["mrk"][0]]
    batch = next(iter(DataLoader(torch.utils.data.Subset(ds, keys), batch_size=2)))
    assert batch["image"].shape == (2, 3, 16, 16, 16)
    assert batch["mask"].shape == (2, 2, 16, 16, 16)
    assert batch["channel_present"].tolist() == [[True, False, False], [False, True, True]]
    assert batch["label_present"].tolist() == [[True, True], [True, False]]
    assert torch.all(batch["image"][0, 1:] == 0) and torch.all(batch["image"][1, 0] == 0)
    assert batch["dataset"] == ["kits23", "mrk"]
    only_t2 = HarmonizedDataset([kits, mr], channels=["t2w"], patch_size=16)
    assert only_t2.channels == ["T2"]
    with pytest.warns(DeprecationWarning, match=r"channels=\[\.\.\.\]"):
        with pytest.raises(LoaderError, match="in_channels=2"):
            HarmonizedDataset([kits, mr], in_channels=2, patch_size=16)
    with pytest.warns(DeprecationWarning):
        padded = HarmonizedDataset([kits, mr], in_channels=4, patch_size=16)
    assert padded[0]["image"].shape[0] == 4 and padded[0]["channel_present"].tolist() == [
        True, False, False, False]


def test_patch_padding_and_patch_larger_than_every_volume(manifests):
    _, mr = manifests  # MR volumes are 32 x 32 x (24..26)
    with pytest.raises(LoaderError, match="larger than every volume"):
        HarmonizedDataset(mr, patch_size=(40, 16, 16))
    ds = HarmonizedDataset(mr, patch_size=(40, 16, 16), allow_padding=True, pad_value=-7.0,
                           foreground_fraction=0.0)
    sample = ds[0]
    assert sample["image"].shape == (2, 40, 16, 16)
    start = int(sample["start"][0])
    assert -8 <= start <= 0
    pad = sample["image"][:, : -start] if start < 0 else sample["image"][:, 32 - start:]
    assert pad.numel() > 0 and torch.all(pad == -7.0)
    assert torch.all(sample["mask"][:, 32 - start:] == 0)
    # a patch that fits the largest volume only is fine
    HarmonizedDataset(mr, patch_size=(32, 32, 26))


def test_foreground_patches_balance_rare_classes(tmp_path):
    path = make_normalized_dataset(tmp_path, "liver", n_cases=2, shape=(48, 48, 40),
                                   labels={"liver": [3, 4], "liver tumor": [4]})
    ds = HarmonizedDataset(path, classes=["liver", "liver tumor"], patch_size=12, foreground_fraction=1.0)
    hits = np.array([(ds[(i % 2, i)]["mask"].flatten(1).sum(1) > 0).tolist() for i in range(60)])
    assert hits[:, 0].all()  # every patch holds liver (the tumor is inside the liver)
    assert hits[:, 1].mean() > 0.35  # the small tumor is chosen about half the time
    random = HarmonizedDataset(path, classes=["liver", "liver tumor"], patch_size=12, foreground_fraction=0.0)
    rare = np.mean([bool(random[(i % 2, i)]["mask"][1].any()) for i in range(60)])
    assert rare < hits[:, 1].mean()


def test_full_volume_mode_and_text_labels(manifests):
    kits, mr = manifests
    ds = HarmonizedDataset([kits, mr], classes=["kidney", "kidney tumor", "left kidney"], patch_size=None,
                           text_labels=True)
    for index in (0, ds.indices_by_dataset["mrk"][0]):
        sample = ds[index]
        assert sample["image"].shape[1:] == sample["mask"].shape[1:]
        visible = sample["mask"].flatten(1).any(1) & sample["label_present"]
        assert sample["present_classes"] == [c for c, v in zip(ds.classes, visible.tolist()) if v]
    assert ds[0]["present_classes"] == ["kidney", "kidney tumor"]
    assert ds[ds.indices_by_dataset["mrk"][0]]["present_classes"] == ["kidney", "left kidney"]
    patches = HarmonizedDataset([kits, mr], patch_size=8, text_labels=True, foreground_fraction=0.0)
    batch = collate([patches[i] for i in range(len(patches))])
    assert len(batch["present_classes"]) == len(patches) and batch["classes"] == patches.classes


def test_missing_file_names_record_and_path(tmp_path):
    path = kits_manifest(tmp_path, n_cases=2)
    record = read_manifest(path)[1]
    (path.parent / record.mask).unlink()
    with pytest.raises(ReadError) as info:
        HarmonizedDataset(path, patch_size=8)
    message = str(info.value)
    assert "kits23/case_00001" in message and "segmentation.nii.gz" in message
    assert "does not exist" in message
    ds = HarmonizedDataset(path, patch_size=8, check_files=False)
    ds[0]
    with pytest.raises(ReadError, match="case_00001"):
        ds[1]


def test_newer_schema_version_is_refused(tmp_path, manifests):
    kits, _ = manifests
    lines = kits.read_text().splitlines()
    newer = json.loads(lines[0]) | {"schema_version": 99}
    path = tmp_path / "kits23.jsonl"
    path.write_text(json.dumps(newer) + "\n")
    with pytest.raises(ManifestError, match="schema_version 99"):
        HarmonizedDataset(path)


def test_split_filter_and_seeded_keys(manifests):
    kits, mr = manifests
    with pytest.warns(UserWarning, match="no record of kits23"):
        ds = HarmonizedDataset([mr, kits], split="val", patch_size=8)
    assert {r.dataset for r in ds.records} <= {"mrk", "kits23"}
    assert all(r.split == "val" for r in ds.records)
    ds = HarmonizedDataset([kits, mr], split="train", patch_size=8, seed=3)
    a, b = ds[(0, 42)], ds[(0, 42)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["start"], b["start"])
    starts = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        starts.add(tuple(ds[0]["start"].tolist()))
    assert len(starts) > 1


def test_dataloader_two_workers_reproduces_single_process(manifests):
    kits, mr = manifests
    ds = HarmonizedDataset([kits, mr], classes=["kidney", "kidney tumor"], patch_size=16)

    def batches(workers: int) -> list[dict]:
        sampler = DatasetMixSampler(ds, weights="sqrt", seed=5, num_samples=8)
        return list(DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers))

    single, double = batches(0), batches(2)
    assert len(single) == len(double) == 2
    for one, two in zip(single, double):
        assert one["case_id"] == two["case_id"]
        assert torch.equal(one["image"], two["image"]) and torch.equal(one["mask"], two["mask"])


def test_load_one_batch_and_describe(manifests):
    kits, mr = manifests
    batch = load_one_batch([kits, mr], batch_size=4, patch_size=16, seed=0)
    assert batch["image"].shape == (4, 3, 16, 16, 16)
    assert batch["dataset"] == ["kits23", "mrk", "kits23", "mrk"]
    text = describe_batch(batch)
    assert "image (4, 3, 16, 16, 16) float32" in text
    assert "kits23/case_" in text and "mrk/mrk_" in text and "label_present" in text
    again = load_one_batch([kits, mr], batch_size=4, patch_size=16, seed=0)
    assert torch.equal(batch["image"], again["image"])
    default = next(iter(DataLoader(HarmonizedDataset(kits, patch_size=16), batch_size=2)))
    assert "classes: 0=kidney" in describe_batch(default)


@pytest.mark.parametrize("kwargs, match", [
    ({"patch_size": (8, 8)}, "patch_size"),
    ({"patch_size": 0}, "patch_size"),
    ({"split": "training"}, "split must be one of"),
    ({"foreground_fraction": 1.5}, "foreground_fraction"),
    ({"parents": "all"}, "parents"),
])
def test_bad_options_are_loader_errors(manifests, kwargs, match):
    with pytest.raises(LoaderError, match=match):
        HarmonizedDataset(manifests[0], **kwargs)
    with pytest.raises(LoaderError, match="no manifest given"):
        HarmonizedDataset([])


def test_thread_loader_matches_dataloader(manifests, tmp_path):
    kits, mr = manifests
    ds = HarmonizedDataset([kits, mr], classes=["kidney", "kidney tumor"], patch_size=16,
                           cache=tmp_path / "cache", text_labels=True)
    sampler = DatasetMixSampler(ds, weights="uniform", seed=2, num_samples=10)
    threads = ThreadLoader(ds, batch_size=4, sampler=sampler, num_workers=2, prefetch=1)
    reference = list(DataLoader(ds, batch_size=4, sampler=sampler, collate_fn=collate))
    batches = list(threads)  # the two threads build the cache entries lazily, concurrently
    assert len(threads) == len(batches) == len(reference) == 3
    for ours, theirs in zip(batches, reference):
        assert ours["case_id"] == theirs["case_id"]
        assert ours["present_classes"] == theirs["present_classes"]
        assert torch.equal(ours["image"], theirs["image"]) and torch.equal(ours["mask"], theirs["mask"])
    assert len(ThreadLoader(ds, batch_size=4, sampler=sampler, drop_last=True)) == 2
    assert [len(b["case_id"]) for b in ThreadLoader(ds, batch_size=4, drop_last=True)] == [4]
    for _ in ThreadLoader(ds, batch_size=1, num_workers=2):
        break  # leaving early shuts the pool down
    whole = HarmonizedDataset([kits, mr], classes=["kidney"], patch_size=None, cache=tmp_path / "cache")
    for index, batch in enumerate(ThreadLoader(whole, batch_size=1, num_workers=2)):
        assert torch.equal(batch["image"][0], whole[index]["image"])
        assert torch.equal(batch["mask"][0], whole[index]["mask"])
    with pytest.raises(LoaderError):
        ThreadLoader(ds, num_workers=0)


def test_folders_of_manifests_load_as_validate_reads_them(tmp_path):
    """A folder is every <dataset>.jsonl in it (errors.jsonl is a report), as `harmonize validate`
    takes it; files and folders mix."""
    from typer.testing import CliRunner

    from harmonize.cli.app import app

    kits = kits_manifest(tmp_path / "a")
    mr = mr_manifest(tmp_path / "b")
    (kits.parent / "errors.jsonl").write_text('{"kind": "skipped", "dataset": "kits23"}\n')
    assert CliRunner().invoke(app, ["validate", str(kits.parent), str(mr.parent)]).exit_code == 0

    def case_ids(path: Path) -> list[str]:  # the manifest file itself, line by line
        return [json.loads(line)["case_id"] for line in path.read_text().splitlines()]

    folders = HarmonizedDataset([kits.parent, mr.parent], patch_size=None)
    assert [r.case_id for r in folders.records] == case_ids(kits) + case_ids(mr)
    one = HarmonizedDataset(str(kits.parent), patch_size=None)  # one folder, as a string
    assert [r.case_id for r in one.records] == case_ids(kits)
    mixed = HarmonizedDataset([kits.parent, mr], patch_size=None)
    assert [r.case_id for r in mixed.records] == case_ids(kits) + case_ids(mr)
    assert mixed[0]["image"].shape[1:] == HarmonizedDataset(kits, patch_size=None)[0]["image"].shape[1:]

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LoaderError, match="no manifest") as error:
        HarmonizedDataset([kits, empty], patch_size=None)
    assert str(empty) in str(error.value)
