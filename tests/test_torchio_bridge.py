"""TorchIO bridge: lazy subjects equal to the loader's volumes, usable with transforms and tio.Queue."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torchio as tio
from harmonize.plugins.fabricators.kits import make_kits23  # noqa: E402
from torch.utils.data import DataLoader

from harmonize.loader.dataset import DatasetMixSampler, HarmonizedDataset  # noqa: E402
from harmonize.loader.torchio_bridge import CaseReader, to_torchio_subjects  # noqa: E402
from harmonize.manifest.build import build_manifest  # noqa: E402
from harmonize.plugin.catalog import load_catalog  # noqa: E402
from harmonize.plugin.discovery import discover  # noqa: E402
from harmonize.testing.normalized import make_normalized_dataset  # noqa: E402

CLASSES = ["kidney", "kidney tumor", "right kidney"]


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("tio")
    plugin = load_catalog(entry_points=False).get("kits23")
    kits = build_manifest(plugin, discover(plugin, make_kits23(tmp / "kits23", n_cases=2)), tmp / "m").path
    mr = make_normalized_dataset(tmp / "m", "mrk", n_cases=2, modality="MR", channels=("T1", "T2"))
    return [kits, mr]


@pytest.mark.parametrize("cache", [False, True])
def test_subjects_match_the_loader(manifests, tmp_path, cache):
    subjects = to_torchio_subjects(manifests, classes=CLASSES, cache=tmp_path / "c" if cache else False)
    reference = HarmonizedDataset(manifests, classes=CLASSES, patch_size=None)
    assert len(subjects) == len(reference) == 4
    for i, subject in enumerate(subjects):
        assert not subject["image"]._loaded  # lazy until TorchIO loads it
        sample = reference[i]
        assert torch.equal(subject["image"].data, sample["image"])
        assert torch.equal(subject["mask"].data, sample["mask"])
        assert torch.equal(subject["label_present"], sample["label_present"])
        assert torch.equal(subject["channel_present"], sample["channel_present"])
        assert (subject["dataset"], subject["case_id"], subject["classes"]) == (
            sample["dataset"], sample["case_id"], CLASSES)
        assert subject["image"].orientation == ("R", "A", "S")
        assert isinstance(subject["mask"], tio.LabelMap)
    assert copy.deepcopy(subjects[0])["image"].reader is subjects[0]["image"].reader


def test_queue_with_transforms_and_mixed_sampler(manifests):
    ds = HarmonizedDataset(manifests, classes=CLASSES, patch_size=None, split=None)
    subjects = to_torchio_subjects(ds)
    transform = tio.Compose([tio.RandomFlip(axes=(0,), flip_probability=1.0), tio.RandomNoise(std=0.01)])
    subjects_dataset = tio.SubjectsDataset(subjects, transform=transform)
    sampler = DatasetMixSampler([s["dataset"] for s in subjects], weights="uniform", num_samples=4,
                                with_seeds=False)
    queue = tio.Queue(subjects_dataset, max_length=8, samples_per_volume=3,
                      sampler=tio.LabelSampler((8, 8, 8), "mask"), subject_sampler=sampler,
                      shuffle_subjects=False, num_workers=0)
    batches = list(DataLoader(queue, batch_size=4, num_workers=0))
    assert sum(len(b["case_id"]) for b in batches) == 12
    batch = batches[0]
    assert batch["image"][tio.DATA].shape == (4, 3, 8, 8, 8)  # CT, T1, T2
    assert batch["mask"][tio.DATA].shape == (4, 3, 8, 8, 8)
    assert batch["mask"][tio.DATA].flatten(1).any(1).all()  # LabelSampler centres on labels
    assert batch["label_present"].shape == (4, 3)
    uniform = tio.Queue(tio.SubjectsDataset(subjects), max_length=4, samples_per_volume=2,
                        sampler=tio.UniformSampler(8), num_workers=0)
    assert len(list(DataLoader(uniform, batch_size=2))) == 4


def test_reader_rejects_unknown_part(manifests):
    ds = HarmonizedDataset(manifests[0], patch_size=None)
    with pytest.raises(ValueError, match="part"):
        CaseReader(ds, 0, "label")
    with pytest.raises(TypeError):
        to_torchio_subjects(ds, classes=CLASSES)


def test_label_sampler_over_every_class_channel_with_queue_workers(manifests):
    """The documented recipe: kits23 has no ``right kidney`` (channel 0), mrk no ``kidney tumor``
    (channel 1); LabelSampler with one probability per channel centres every patch on a class."""
    classes = ["right kidney", "kidney tumor"]
    subjects = to_torchio_subjects(manifests, classes=classes, split=None)
    assert {s["dataset"]: s["label_present"].tolist() for s in subjects} == {
        "kits23": [False, True], "mrk": [True, False]}
    sampler = tio.LabelSampler(6, "mask", label_probabilities={0: 1, 1: 1})
    queue = tio.Queue(tio.SubjectsDataset(subjects), max_length=8, samples_per_volume=2, sampler=sampler,
                      num_workers=2)
    patches = [p for b in DataLoader(queue, batch_size=4) for p in b["mask"][tio.DATA]]
    assert len(patches) == 8
    assert all(bool(p[:, 3, 3, 3].any()) for p in patches)  # the centre voxel is labelled


class _Recording:
    """A CaseReader that remembers the arrays it handed over."""

    def __init__(self, reader):
        self.reader, self.handed = reader, []

    def __call__(self, path):
        array, affine = self.reader(path)
        self.handed.append(array)
        return array, affine


def test_loading_keeps_the_readers_array_and_equals_torchios_own_load(manifests, tmp_path):
    """The bridge's images hold the very array CaseReader returned (TorchIO's own ``Image.load``
    copies it through ``torch.cat``); the values, dtype and affine equal TorchIO's own
    ScalarImage and LabelMap loading with the same reader."""
    subjects = to_torchio_subjects(manifests, classes=CLASSES, cache=tmp_path / "c")
    for subject in subjects:
        for key, plain_type in (("image", tio.ScalarImage), ("mask", tio.LabelMap)):
            ours = subject[key]
            recording = _Recording(ours.reader)
            ours.reader = recording
            plain = plain_type(ours.path, reader=recording.reader, verify_path=False)
            assert torch.equal(ours.data, plain.data) and ours.data.dtype == plain.data.dtype
            assert (ours.affine == plain.affine).all()
            assert ours.data.data_ptr() == recording.handed[0].ctypes.data  # no copy
