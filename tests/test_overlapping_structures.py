"""Structure masks that overlap become one label map without losing a voxel of any structure.

The oracle is a per-voxel brute force: for every voxel, the set of structures whose mask holds it
must equal the set of classes whose values hold the voxel's label value.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from harmonize.engine.config import Target
from harmonize.engine.pipeline import run
from harmonize.errors import LabelError
from harmonize.labels.overlap import structure_masks
from harmonize.loader import HarmonizedDataset
from harmonize.plugin import Case, DatasetPlugin, Volume, combine_structures, read_volume
from harmonize.plugin.catalog import Catalog

SHAPE = (12, 10, 8)
AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])


def _ball(centre: tuple[float, float, float], radius: float) -> np.ndarray:
    grid = np.indices(SHAPE).astype(float)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def _masks() -> dict[str, np.ndarray]:
    """A liver containing a tumour, a spleen touching the liver: three overlap regions."""
    return {
        "liver": _ball((4, 5, 4), 3.6),
        "liver tumor": _ball((5, 5, 4), 1.5),
        "spleen": _ball((8, 5, 4), 2.5),
    }


def _brute_force_members(masks: dict[str, np.ndarray]) -> dict[tuple[int, int, int], set[str]]:
    return {idx: {n for n, m in masks.items() if m[idx]}
            for idx in itertools.product(*(range(s) for s in SHAPE))}


def test_every_structure_comes_back_exactly_where_structures_overlap():
    names = ["liver", "liver tumor", "spleen", "stomach"]
    masks = _masks()
    combined = combine_structures(names, masks, AFFINE)
    assert combined.kind == "label" and combined.data.dtype == np.uint8
    assert combined.classes is not None and set(combined.classes) == set(masks)  # no stomach
    # structures alone keep their stable values; combinations start after the last name
    assert [combined.classes[n][0] for n in masks] == [1, 2, 3]
    assert all(v > len(names) for n in masks for v in combined.classes[n][1:])
    for idx, members in _brute_force_members(masks).items():
        value = int(combined.data[idx])
        holding = {n for n, values in combined.classes.items() if value in values}
        assert holding == members, (idx, value)
    back = structure_masks(combined)
    for name, mask in masks.items():
        np.testing.assert_array_equal(back[name], mask)
    # overlaps exist in this fixture, so combination values are really used
    assert (masks["liver"] & masks["liver tumor"]).any() and (masks["liver"] & masks["spleen"]).any()


def test_combination_values_follow_sorted_member_indices():
    names = ["a", "b", "c"]
    a = np.zeros(SHAPE, bool); b = a.copy(); c = a.copy()  # noqa: E702
    a[0, 0, 0] = c[0, 0, 0] = True   # {a, c} -> members (0, 2)
    a[1, 0, 0] = b[1, 0, 0] = True   # {a, b} -> members (0, 1)
    a[2, 0, 0] = b[2, 0, 0] = c[2, 0, 0] = True  # {a, b, c} -> (0, 1, 2)
    combined = combine_structures(names, {"c": c, "b": b, "a": a}, AFFINE)
    assert combined.data[1, 0, 0] == 4 and combined.data[2, 0, 0] == 5
    assert combined.data[0, 0, 0] == 6
    assert combined.classes == {"a": [1, 4, 5, 6], "b": [2, 4, 5], "c": [3, 5, 6]}


def test_empty_structure_is_annotated_and_missing_one_is_not():
    masks = {"liver": _ball((4, 5, 4), 2), "spleen": np.zeros(SHAPE, np.uint8)}
    combined = combine_structures(["liver", "spleen", "stomach"], masks, AFFINE)
    assert combined.classes == {"liver": [1], "spleen": [2]}
    assert set(np.unique(combined.data)) == {0, 1}


def test_many_structures_use_uint16():
    names = [f"s{i}" for i in range(300)]
    masks = {n: np.zeros(SHAPE, bool) for n in names}
    masks["s299"][0, 0, 0] = True
    combined = combine_structures(names, masks, AFFINE)
    assert combined.data.dtype == np.uint16 and combined.data[0, 0, 0] == 300


@pytest.mark.parametrize("bad, message", [
    ({"liver": np.zeros((2, 2, 2), bool), "spleen": np.zeros((2, 2, 3), bool)}, "shape"),
    ({"liver": np.full(SHAPE, 2, np.uint8)}, "other than 0 and 1"),
    ({"liver": np.full(SHAPE, 0.5)}, "fractional"),
    ({"kidney": np.zeros(SHAPE, bool)}, "not among"),
    ({}, "no structure mask"),
])
def test_bad_structure_masks_are_named(bad, message):
    with pytest.raises(LabelError, match=message):
        combine_structures(["liver", "spleen"], bad, AFFINE)


class _OneFilePerStructure(DatasetPlugin):
    """A release with one NIfTI per structure under ``<case>/segmentations/``."""

    id = "overlap-toy"
    demo = False
    STRUCTURES = ["liver", "liver tumor", "spleen", "stomach"]

    def discover(self, root):
        for folder in sorted(Path(root).iterdir()):
            yield Case(case_id=folder.name, patient_id=folder.name,
                       images=(folder / "ct.nii.gz",), label=folder / "segmentations")

    def read_label(self, case):
        masks = {}
        affine = None
        for name in self.STRUCTURES:
            path = case.label / f"{name.replace(' ', '_')}.nii.gz"
            if path.exists():
                volume = read_volume(path, kind="label")
                masks[name], affine = volume.data, volume.affine
        return combine_structures(self.STRUCTURES, masks, affine)


def _write_release(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Two cases; the second lacks the spleen file (not annotated there)."""
    written = {}
    rng = np.random.default_rng(0)
    for case, names in (("case_a", ["liver", "liver tumor", "spleen"]),
                        ("case_b", ["liver", "liver tumor"])):
        folder = root / case / "segmentations"
        folder.mkdir(parents=True)
        ct = rng.integers(-200, 200, SHAPE).astype(np.int16)
        nib.save(nib.Nifti1Image(ct, AFFINE), root / case / "ct.nii.gz")
        masks = {n: m for n, m in _masks().items() if n in names}
        for name, mask in masks.items():
            nib.save(nib.Nifti1Image(mask.astype(np.uint8), AFFINE),
                     folder / f"{name.replace(' ', '_')}.nii.gz")
        written[case] = masks
    return written


def test_overlapping_structure_files_go_through_run_and_loader(tmp_path):
    descriptor = {"id": "overlap-toy", "name": "Overlap toy", "modality": "CT",
                  "values": {0: "background", 1: "liver", 2: "liver tumor", 3: "spleen",
                             4: "stomach"},
                  "classes": {"liver": [1], "liver tumor": [2], "spleen": [3], "stomach": [4]},
                  "ct_window": [-200, 250]}
    plugin = _OneFilePerStructure(descriptor)
    written = _write_release(tmp_path / "release")
    catalog = Catalog(datasets={"overlap-toy": plugin}, errors=[])
    result = run([Target("overlap-toy", tmp_path / "release")], tmp_path / "out", workers=1,
                 progress=False, catalog=catalog)
    assert not result.errors
    dataset = HarmonizedDataset(result.manifests["overlap-toy"], patch_size=None,
                                classes=["liver", "liver tumor", "spleen"])
    seen = set()
    for i in range(len(dataset)):
        sample = dataset[i]
        record = dataset.records[i]
        masks = written[record.case_id]
        seen.add(record.case_id)
        assert sorted(record.annotated) == sorted(masks)  # spleen missing -> not annotated
        present = dict(zip(sample["classes"], sample["label_present"].tolist()))
        assert present == {n: n in masks for n in ["liver", "liver tumor", "spleen"]}
        for k, name in enumerate(sample["classes"]):
            if name in masks:  # the source is already RAS at native spacing: voxel for voxel
                np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool),
                                              masks[name], err_msg=f"{record.case_id} {name}")
    assert seen == {"case_a", "case_b"}


def test_a_label_volume_without_classes_keeps_the_descriptor_meaning():
    assert Volume(np.zeros(SHAPE, np.uint8), AFFINE, "label").classes is None


@pytest.mark.parametrize("n", [4, 64, 65, 70])
def test_more_structures_than_bits_in_a_word(n):
    """Shared voxels are grouped one way for <= 64 structures and another above: same values."""
    names = [f"s{i}" for i in range(n)]
    masks = {name: np.zeros(SHAPE, bool) for name in names}
    for i, name in enumerate(names):
        masks[name][0, 0, 0] = True          # every structure
        masks[name][1, 0, 0] = i in (0, n - 1)  # the first and the last
        masks[name][2, 0, 0] = i % 2 == 1    # every odd one
        masks[name][3 + i % 5, 1, 1] = True  # one of five
    combined = combine_structures(names, masks, AFFINE)
    back = structure_masks(combined)
    for name in names:
        np.testing.assert_array_equal(back[name], masks[name])
    # combinations ranked by sorted member indices: (0, 1, ..., n-1) < (0, n-1) < (1, 3, ...)
    everyone, ends = int(combined.data[0, 0, 0]), int(combined.data[1, 0, 0])
    assert n < everyone < ends < int(combined.data[2, 0, 0])


def test_one_label_per_voxel_exports_never_give_a_class_foreign_voxels(tmp_path):
    """MONAI's datalist: each class's region (export labels) holds only that class's voxels;
    voxels two structures share go to one of them and the other is reported."""
    from harmonize.export.monai import export_monai

    descriptor = {"id": "overlap-toy", "name": "Overlap toy", "modality": "CT",
                  "values": {0: "background", 1: "liver", 2: "liver tumor", 3: "spleen",
                             4: "stomach"},
                  "classes": {"liver": [1], "liver tumor": [2], "spleen": [3], "stomach": [4]},
                  "ct_window": [-200, 250]}
    written = _write_release(tmp_path / "release")
    catalog = Catalog(datasets={"overlap-toy": _OneFilePerStructure(descriptor)}, errors=[])
    result = run([Target("overlap-toy", tmp_path / "release")], tmp_path / "out", workers=1,
                 progress=False, catalog=catalog)
    doc = export_monai(result.manifests["overlap-toy"], tmp_path / "datalist.json",
                       base_dir=tmp_path)
    assert doc["shared_voxels"]  # liver/tumour and liver/spleen overlap in the fixture
    items = [i for k in ("training", "validation", "testing") for i in doc[k]]
    for item in items:
        label = np.asarray(nib.load(tmp_path / item["label"]).dataobj)
        masks = written[item["case_id"]]  # the release is RAS at native spacing already
        for name, region in doc["classes"].items():
            if name in masks:
                assert not (np.isin(label, region) & ~masks[name]).any(), (name, region)


def test_qa_legend_names_every_structure_of_a_shared_value():
    from harmonize.export import specific_names
    from harmonize.qa.montage import value_names

    combined = combine_structures(["liver", "liver tumor", "spleen"], _masks(), AFFINE)
    names = value_names(combined.classes, specific_names(combined.classes))
    assert names[1] == "liver" and names[3] == "spleen"
    masks = structure_masks(combined)
    for value, name in names.items():
        if value > 3:  # a combination: every structure whose mask holds its voxels is named
            where = combined.data == value
            members = [n for n in ["liver", "liver tumor", "spleen"] if masks[n][where].all()]
            assert name == " + ".join(members) and len(members) > 1
