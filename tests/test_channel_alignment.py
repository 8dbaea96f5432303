"""Issue 12, problem 3: input channels were mixed by position.

BraTS 2021 ships T1, T1ce, T2, FLAIR as four files; MSD Task01 ships one 4D file whose channels are
FLAIR, T1w, t1gd, T2w. Stacked by position, channel 0 was T1 for one dataset and FLAIR for the
other, in the loader and in the exported nnU-Net dataset. Now channel c is one sequence for both:
checked voxel for voxel against the source files read with nibabel (the oracle here is the file
names and MSD's dataset.json, never harmonize's channel vocabulary).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.brats import make_brats2021
from harmonize.plugins.fabricators.kits import make_kits23
from harmonize.plugins.fabricators.msd import make_msd_task

from harmonize.export import ExportError
from harmonize.export.monai import export_monai
from harmonize.export.nnunet import export_nnunet
from harmonize.loader.dataset import HarmonizedDataset, LoaderError
from harmonize.manifest.build import build_manifest, read_manifest, write_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover

#: the sequence in each canonical slot, as (BraTS 2021 file suffix, MSD Task01 4D channel index)
#: from the releases' own naming: BraTS _t1/_t1ce/_t2/_flair; MSD dataset.json
#: {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}.
SLOTS = [("t1", 1), ("t1ce", 2), ("t2", 3), ("flair", 0)]
EXPECTED = ["T1", "T1 contrast-enhanced", "T2", "FLAIR"]


def _manifest(plugin_id: str, root: Path, out: Path) -> Path:
    plugin = load_catalog(entry_points=False).get(plugin_id)
    result = build_manifest(plugin, discover(plugin, root), out)
    assert result.path is not None and not result.errors
    records = result.records
    for record in records:  # every case exported as training data
        record.split = "train"
    write_manifest(result.path, records)
    return result.path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("channels")
    brats_root = make_brats2021(base / "brats", n_cases=2, n_validation=0, seed=4)
    msd_root = make_msd_task(base / "msd", task="Task01_BrainTumour", n_train=2, n_test=0, seed=4)
    return {
        "brats": _manifest("brats2021", brats_root, base / "m_brats"),
        "msd": _manifest("msd-braintumour", msd_root, base / "m_msd"),
        "kits": _manifest("kits23", make_kits23(base / "kits", n_cases=2, seed=4), base / "m_kits"),
    }


def _source_slot(record, manifest: Path, slot: int, *, ras: bool) -> np.ndarray:
    """The source voxels of canonical slot ``slot`` of a record, read with nibabel."""
    suffix, msd_index = SLOTS[slot]
    if record.dataset == "brats2021":
        path = next(manifest.parent.joinpath(p) for p in record.image
                    if p.endswith(f"_{suffix}.nii.gz"))
        image = nib.load(path)
        data = np.asarray(image.dataobj)
    else:
        image = nib.load(manifest.parent / record.image)
        data = np.asarray(image.dataobj)[..., msd_index]
    if ras:
        data = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(data, image.affine)).dataobj)
    return data.astype(np.float32)


def test_the_two_releases_ship_their_channels_in_different_orders(mixed):
    brats, msd = read_manifest(mixed["brats"])[0], read_manifest(mixed["msd"])[0]
    assert brats.source["channels"][0] == "T1" and msd.source["channels"][0] == "FLAIR"
    assert brats.channels == ["T1", "T1 contrast-enhanced", "T2", "FLAIR"]
    assert msd.channels == ["FLAIR", "T1", "T1 contrast-enhanced", "T2"]


def test_loader_channel_c_is_one_sequence_for_both_datasets(mixed):
    ds = HarmonizedDataset([mixed["brats"], mixed["msd"]], patch_size=None)
    assert ds.channels == EXPECTED
    manifests = {"brats2021": mixed["brats"], "msd-braintumour": mixed["msd"]}
    for index, record in enumerate(ds.records):
        sample = ds[index]
        assert sample["channel_present"].tolist() == [True] * 4
        for slot in range(4):
            expected = _source_slot(record, manifests[record.dataset], slot, ras=True)
            assert np.array_equal(sample["image"][slot].numpy(), expected), (record.case_id, slot)
        if record.dataset == "msd-braintumour":  # by position, channel 0 would be FLAIR here
            flair = _source_slot(record, mixed["msd"], 3, ras=True)
            assert not np.array_equal(sample["image"][0].numpy(), flair)


def test_loader_channel_choice_and_errors(mixed):
    ds = HarmonizedDataset([mixed["brats"], mixed["msd"]], channels=["flair", "T1Gd"],
                           patch_size=None)
    assert ds.channels == ["FLAIR", "T1 contrast-enhanced"]
    record = ds.records[-1]
    sample = ds[len(ds) - 1]
    assert np.array_equal(sample["image"][0].numpy(), _source_slot(record, mixed["msd"], 3, ras=True))
    assert np.array_equal(sample["image"][1].numpy(), _source_slot(record, mixed["msd"], 1, ras=True))
    with pytest.raises(LoaderError, match="channel name 'T3' is not in the channel vocabulary"):
        HarmonizedDataset([mixed["brats"]], channels=["T3"], patch_size=None)
    with pytest.raises(LoaderError, match="twice"):
        HarmonizedDataset([mixed["brats"]], channels=["T1ce", "t1gd"], patch_size=None)
    # CT and MR in one batch: the union of channels, flagged
    both = HarmonizedDataset([mixed["kits"], mixed["brats"]], patch_size=8, allow_padding=True)
    assert both.channels == ["CT", *EXPECTED]
    assert both[0]["channel_present"].tolist() == [True, False, False, False, False]


def test_unnamed_multichannel_records_cannot_be_mixed(mixed, tmp_path):
    records = read_manifest(mixed["msd"])
    for record in records:
        record.channels = None  # several channels and no names: no way to align them
    unnamed = tmp_path / "msd-braintumour.jsonl"
    for record in records:  # absolute paths: the manifest moves to another folder
        record.image = str((mixed["msd"].parent / record.image).resolve())
        record.mask = str((mixed["msd"].parent / record.mask).resolve()) if record.mask else None
    write_manifest(unnamed, records)
    with pytest.raises(LoaderError, match="msd-braintumour.*brats2021") as info:
        HarmonizedDataset([mixed["brats"], unnamed], patch_size=None)
    assert "cannot align" in str(info.value)
    alone = HarmonizedDataset([unnamed], patch_size=None)  # one dataset: its own order
    assert alone.channels == ["channel 0", "channel 1", "channel 2", "channel 3"]
    with pytest.raises(ExportError, match="msd-braintumour.*brats2021"):
        export_nnunet([mixed["brats"], unnamed], tmp_path / "x", dataset_id=3, name="X")
    for record in records:  # names outside the vocabulary cannot be aligned either
        record.channels = ["seq1", "seq2", "seq3", "seq4"]
    write_manifest(unnamed, records)
    with pytest.raises(LoaderError, match="cannot align the channels of msd-braintumour with those "
                                          "of brats2021"):
        HarmonizedDataset([mixed["brats"], unnamed], patch_size=None)


def test_nnunet_file_c_is_one_sequence_for_both_datasets(mixed, tmp_path):
    result = export_nnunet([mixed["brats"], mixed["msd"]], tmp_path, dataset_id=77, name="Glioma")
    assert result.ok, result.errors
    doc = json.loads((result.folder / "dataset.json").read_text())
    assert doc["channel_names"] == {str(c): name for c, name in enumerate(EXPECTED)}
    # several datasets: nnU-Net case keys are <dataset>_<case>
    records = {f"{r.dataset}_{r.case_id}": (r, m) for m in (mixed["brats"], mixed["msd"])
               for r in read_manifest(m)}
    assert sorted(result.training) == sorted(records)
    for key, (record, manifest) in records.items():
        for slot in range(4):  # nnU-Net keeps the stored orientation: compare raw arrays
            written = nib.load(result.folder / "imagesTr" / f"{key}_{slot:04d}.nii.gz")
            expected = _source_slot(record, manifest, slot, ras=False)
            assert np.array_equal(np.asarray(written.dataobj).astype(np.float32), expected), (
                key, slot)
        assert not (result.folder / "imagesTr" / f"{key}_0004.nii.gz").exists()


def test_nnunet_refuses_missing_channels_unless_a_common_list_is_chosen(mixed, tmp_path):
    with pytest.raises(ExportError, match="kits23 lacks channel.*brats2021"):
        export_nnunet([mixed["kits"], mixed["brats"]], tmp_path, dataset_id=5, name="Mix")
    only = export_nnunet([mixed["brats"], mixed["msd"]], tmp_path, dataset_id=6, name="T2only",
                         channels=["T2w"])
    assert only.dataset_json["channel_names"] == {"0": "T2"}
    record = read_manifest(mixed["msd"])[0]
    written = nib.load(only.folder / "imagesTr" / f"msd-braintumour_{record.case_id}_0000.nii.gz")
    assert np.array_equal(np.asarray(written.dataobj).astype(np.float32),
                          _source_slot(record, mixed["msd"], 2, ras=False))


def test_monai_lists_files_in_canonical_order(mixed, tmp_path):
    records = read_manifest(mixed["brats"])
    doc = export_monai([mixed["brats"]], tmp_path / "brats.json")
    item = doc["training"][0]
    assert item["channels"].split(",") == EXPECTED
    assert [Path(p).name.rsplit("_", 1)[1] for p in item["image"]] == [
        "t1.nii.gz", "t1ce.nii.gz", "t2.nii.gz", "flair.nii.gz"]
    assert len(records) == len(doc["training"])
    four_d = export_monai([mixed["msd"]], tmp_path / "msd.json")  # one 4D order: kept, named
    assert four_d["modality"] == {"0": "FLAIR", "1": "T1", "2": "T1 contrast-enhanced", "3": "T2"}
    with pytest.raises(ExportError, match="4D image"):
        export_monai([mixed["brats"], mixed["msd"]], tmp_path / "both.json", channels=EXPECTED)


def test_a_channel_no_record_has_warns(mixed):
    with pytest.warns(UserWarning, match=r"no record has the channel\(s\) \['ADC'\]"):
        ds = HarmonizedDataset([mixed["brats"]], channels=["T1", "ADC"], patch_size=None)
    sample = ds[0]
    assert sample["channel_present"].tolist() == [True, False]
    assert not sample["image"][1].any()


def test_slices_channel_index_counts_in_canonical_order(tmp_path: Path) -> None:
    """``export slices --channel 0`` is the same sequence for datasets that store their channels
    in different file orders (T1 first in one, FLAIR first in the other)."""
    from harmonize.export import load_entries
    from harmonize.export.slices import channel_index
    from harmonize.testing.normalized import make_normalized_dataset

    a = make_normalized_dataset(tmp_path, "mr-a", n_cases=1, modality="MR",
                                channels=("T1", "T1 contrast-enhanced", "T2", "FLAIR"))
    b = make_normalized_dataset(tmp_path, "mr-b", n_cases=1, modality="MR",
                                channels=("FLAIR", "T1", "T1 contrast-enhanced", "T2"))
    for entry in load_entries([a, b]):
        file_channels = list(entry.record.channels or [])
        assert file_channels[channel_index(entry, 0, 4)] == "T1"
        assert file_channels[channel_index(entry, 3, 4)] == "FLAIR"
        assert file_channels[channel_index(entry, "t1ce", 4)] == "T1 contrast-enhanced"
