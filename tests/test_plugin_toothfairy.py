"""ToothFairy (plugins/toothfairy.py) on its fabricated release (plugins/fabricators/toothfairy.py).

Oracles independent of the code under test: ``np.load`` of the fabricated arrays; SimpleITK's
own meaning of an array made an image (``GetImageFromArray`` + ``SetSpacing(0.3)``, what the
dataset paper's code does) written as NIfTI and reoriented to RAS by nibabel
(``as_closest_canonical``); the percentile z-score computed here with numpy in float64; the canal
drawn into the image's grey values by the fabricator.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.toothfairy import CANAL_GREY, make_toothfairy

from harmonize.engine.config import Target
from harmonize.engine.pipeline import run
from harmonize.engine.presets import Settings
from harmonize.errors import DiscoveryError, ReadError
from harmonize.labels.vocabulary import load_vocabulary
from harmonize.manifest.build import read_manifest
from harmonize.plugin.discovery import discover
from harmonize.read.case import read_case
from harmonize.testing import check_plugin

SPLITS = {"P1": "train", "P2": "val", "P3": "test"}
CANAL = "inferior alveolar canal"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_toothfairy(tmp_path_factory.mktemp("tf"), n_cases=3, seed=5)


@pytest.fixture(scope="module")
def normalized(catalog, root, tmp_path_factory):
    """`harmonize run` at native spacing (RAS, intensity by modality), its manifest records."""
    out = tmp_path_factory.mktemp("run")
    result = run([Target("toothfairy", root)], out, workers=1, progress=False, catalog=catalog)
    assert not result.errors, result.errors
    manifest = result.manifests["toothfairy"]
    return manifest.parent, {r.case_id: r for r in read_manifest(manifest)}


def ras_oracle(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``array`` as SimpleITK makes it an image (0.3 mm, identity direction), saved as NIfTI by
    SimpleITK and turned to closest-canonical RAS by nibabel: (data, affine)."""
    import tempfile

    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing((0.3, 0.3, 0.3))
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "oracle.nii.gz")
        sitk.WriteImage(image, path)
        canonical = nib.as_closest_canonical(nib.load(path))
        return np.asarray(canonical.dataobj), canonical.affine


def test_cases_splits_and_skipped(catalog, root):
    check = check_plugin(catalog.get("toothfairy"), root)
    records = {r.case_id: r for r in check.records}
    assert sorted(records) == sorted(SPLITS)
    for case_id, record in records.items():
        assert record.patient_id == case_id and record.official_split == SPLITS[case_id]
        assert record.labels == {CANAL: [1]} and record.modality == "CBCT"
        assert record.channels == ["CBCT"]
        assert record.image.endswith(f"Dataset/{case_id}/data.npy")
        assert record.mask.endswith(f"Dataset/{case_id}/gt_alpha.npy")
        assert record.shape == [10, 24, 30] and record.orientation == "SPL"
        np.testing.assert_allclose(record.spacing, [0.3] * 3, rtol=0, atol=1e-12)
    skipped = {s.path.name: s for s in check.discovery.skipped}
    assert sorted(skipped) == ["._P1", "P4"]
    assert "AppleDouble" in skipped["._P1"].reason
    assert skipped["P4"].case_id == "P4"
    assert "only the sparse annotation gt_sparse.npy" in skipped["P4"].reason
    assert "no dense gt_alpha.npy" in skipped["P4"].reason


def test_the_parent_of_the_release_folder_is_accepted(catalog, root):
    found = discover(catalog.get("toothfairy"), root.parent)
    assert sorted(c.case_id for c in found.cases) == sorted(SPLITS)


def test_split_file_problems_are_reported_never_guessed(catalog, root, tmp_path):
    plugin = catalog.get("toothfairy")
    copy = Path(shutil.copytree(root, tmp_path / "ToothFairy_Dataset"))
    (copy / "splits.json").write_text(json.dumps(
        {"train": ["P1", "P2", "P9"], "val": ["P2"], "test": ["P3"]}))
    (copy / "Dataset" / "P3" / "notes.txt").write_text("x")
    found = discover(plugin, copy)
    assert sorted(c.case_id for c in found.cases) == ["P1", "P3"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert reasons["P2"] == "listed in 2 splits of splits.json (train, val)"
    assert reasons["P9"] == "listed in splits.json (train) but no such folder"
    assert reasons["notes.txt"] == "not data.npy, gt_alpha.npy or gt_sparse.npy"
    (copy / "splits.json").write_text("{not json")
    with pytest.raises(DiscoveryError, match="cannot read splits.json"):
        list(plugin.discover(copy))
    (copy / "splits.json").unlink()
    with pytest.raises(DiscoveryError, match="no Dataset/ folder and splits.json"):
        list(plugin.discover(copy))


@pytest.mark.parametrize("case_id", sorted(SPLITS))
def test_the_mask_covers_the_canal_the_image_shows(catalog, root, case_id):
    """The fabricator drew both canals into the image (grey value CANAL_GREY, nothing else has
    it); the plugin's image and mask must agree voxel for voxel, in both halves (both sides)."""
    plugin = catalog.get("toothfairy")
    case = {c.case_id: c for c in discover(plugin, root).cases}[case_id]
    data = read_case(case, plugin=plugin)
    canal_in_image = np.asarray(data.image.data) == CANAL_GREY
    label = np.asarray(data.label.data)
    assert set(np.unique(label)) == {0, 1}
    assert np.array_equal(label == 1, canal_in_image)
    half = label.shape[2] // 2
    assert label[..., :half].any() and label[..., half:].any()  # one value, both sides


@pytest.mark.parametrize("case_id", sorted(SPLITS))
def test_normalized_mask_is_np_load_reoriented_by_nibabel(root, normalized, case_id):
    folder, records = normalized
    record = records[case_id]
    want, want_affine = ras_oracle(np.load(root / "Dataset" / case_id / "gt_alpha.npy"))
    got = nib.load(folder / record.mask)
    assert record.orientation == "RAS"
    np.testing.assert_allclose(got.affine, want_affine, rtol=0, atol=1e-5)  # mm
    assert np.array_equal(np.asarray(got.dataobj), want)


@pytest.mark.parametrize("case_id", sorted(SPLITS))
def test_cbct_gets_the_percentile_zscore_not_a_ct_window(root, normalized, case_id):
    folder, records = normalized
    record = records[case_id]
    source, _ = ras_oracle(np.load(root / "Dataset" / case_id / "data.npy").astype(np.float64))
    lo, hi = np.percentile(source, (0.5, 99.5))
    clipped = np.clip(source, lo, hi)
    want = (clipped - clipped.mean()) / clipped.std()
    got = np.asarray(nib.load(folder / record.image).dataobj, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)  # float32 output, z-scores ~ +-3
    assert_cbct_rule(record)


def assert_cbct_rule(record) -> None:
    assert [op["op"] for op in record.extra["operations"]] == ["reorient", "percentile_zscore"]
    intensity = record.extra["intensity"]
    assert intensity["method"] == "percentile_zscore" and intensity["modality"] == "CBCT"
    assert intensity["percentiles"] == [0.5, 99.5]


def test_cbct_ignores_a_ct_window_asked_for_the_run(catalog, root, tmp_path):
    result = run([Target("toothfairy", root)], tmp_path / "out",
                 Settings(ct_window=(-500.0, 1000.0)), workers=1, progress=False,
                 catalog=catalog)
    assert not result.errors and len(result.records) == 3
    for record in result.records:
        assert_cbct_rule(record)


def test_read_errors_name_dataset_case_and_file(catalog, root, tmp_path):
    plugin = catalog.get("toothfairy")
    copy = Path(shutil.copytree(root, tmp_path / "ToothFairy_Dataset"))
    image = copy / "Dataset" / "P1" / "data.npy"
    image.write_bytes(image.read_bytes()[:-100])
    case = {c.case_id: c for c in discover(plugin, copy).cases}["P1"]
    with pytest.raises(ReadError) as info:
        read_case(case, plugin=plugin)
    error = info.value
    assert (error.dataset, error.case, error.file) == ("toothfairy", "P1", str(image))
    assert "truncated" in error.message and error.hint


def test_descriptor_and_vocabulary(catalog):
    plugin = catalog.get("toothfairy")
    desc = plugin.descriptor
    assert desc.sat_ds == ("ToothFairy",) and desc.modality == "CBCT"
    assert desc.classes == {CANAL: (1,)} and desc.cases == 153
    assert "unverified here" in desc.licence and desc.citation and desc.expected_root
    assert plugin.can_fabricate and not plugin.demo
    vocabulary = load_vocabulary()
    for name in ("inferior alveolar nerve", "Inferior Alveolar Canal", "mandibular canal"):
        assert vocabulary.resolve(name) == CANAL  # SAT-DS's name is a synonym
    assert "mandible" in vocabulary.ancestors(CANAL)


def test_nnunet_gets_the_cbct_channel_name_so_its_zscore(normalized, tmp_path):
    """nnU-Net maps the channel name 'CT' (exactly) to CTNormalization and any other name to
    ZScoreNormalization (nnunetv2/preprocessing/normalization/map_channel_name_to_normalization.py)."""
    from harmonize.export.nnunet import export_nnunet

    folder, _ = normalized
    exported = export_nnunet(folder / "toothfairy.jsonl", tmp_path / "nn", dataset_id=501,
                             name="ToothFairy")
    assert not exported.errors
    assert exported.dataset_json["channel_names"] == {"0": "CBCT"}


def test_sat_export_writes_sat_ds_modality_and_name(normalized, tmp_path):
    from harmonize.export.sat import export_sat

    folder, records = normalized
    result = export_sat([folder / "toothfairy.jsonl"], tmp_path / "sat")
    assert not result.errors
    lines = [json.loads(t) for t in (tmp_path / "sat" / "jsonl" / "ToothFairy.jsonl")
             .read_text().splitlines()]
    assert sorted(line["harmonize"]["case_id"] for line in lines) == sorted(SPLITS)
    for line in lines:
        assert line["modality"] == "CT" and line["label"] == ["inferior alveolar nerve"]
        mask = np.asarray(nib.load(tmp_path / "sat" / line["mask"]).dataobj)
        want = np.asarray(nib.load(folder / records[line["harmonize"]["case_id"]].mask).dataobj)
        assert np.array_equal(mask == 1, want == 1)
