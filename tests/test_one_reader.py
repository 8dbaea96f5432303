"""One reading layer: a misaligned label is refused by every command, with one message.

Issue "one path per concern", problem 1: a KiTS23 ``segmentation.nii.gz`` whose origin was shifted
by 50 mm passed ``harmonize manifest``, ``check_plugin`` and the loader; only ``harmonize run``
refused it. The oracle here is the shift itself (read back with nibabel), and that every consumer
reports the very same message.
"""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.kits import make_kits23

from harmonize.engine.config import Target
from harmonize.engine.pipeline import run
from harmonize.errors import GridMismatchError
from harmonize.export.monai import export_monai
from harmonize.export.nnunet import export_nnunet
from harmonize.loader import HarmonizedDataset
from harmonize.loader.cache import build_cache
from harmonize.manifest.build import build_manifest
from harmonize.plugin.discovery import discover
from harmonize.qa.summary import collect_qa
from harmonize.read.case import read_case
from harmonize.testing import check_plugin

SHIFT_MM = 50.0
BAD = "case_00001"


def shift_origin(path: Path, mm: float) -> np.ndarray:
    """Rewrite ``path`` with its origin moved ``mm`` along world x; return the new affine."""
    img = nib.load(path)
    affine = img.affine.copy()
    affine[0, 3] += mm
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine, img.header), path)
    return nib.load(path).affine


def grid_message(message: str) -> str:
    """The reading layer's sentence, without the dataset/case/file decorations around it."""
    found = re.search(r"label affine differs from image affine.*?image grid [^;)]*\]", message)
    assert found, message
    return found.group(0)


@pytest.fixture
def kits(tmp_path):
    root = make_kits23(tmp_path / "kits23", n_cases=3)
    segmentation = root / "dataset" / BAD / "segmentation.nii.gz"
    before = nib.load(segmentation).affine
    after = shift_origin(segmentation, SHIFT_MM)
    assert np.isclose(after[0, 3] - before[0, 3], SHIFT_MM)  # the fixture did what it says
    return root


def test_manifest_check_plugin_and_run_refuse_the_shifted_label(catalog, kits, tmp_path):
    plugin = catalog.get("kits23")
    manifest = build_manifest(plugin, discover(plugin, kits), tmp_path / "manifests")
    assert [r.case_id for r in manifest.records] == ["case_00000", "case_00002"]
    [error] = manifest.errors
    assert (error.dataset, error.case, error.kind) == ("kits23", BAD, "label")
    assert error.file.endswith("segmentation.nii.gz")
    message = grid_message(error.message)

    check = check_plugin(plugin, kits, allow_errors=True)
    assert [grid_message(e.message) for e in check.errors] == [message]
    with pytest.raises(AssertionError, match="label affine differs"):
        check_plugin(plugin, kits)

    result = run([Target("kits23", kits)], tmp_path / "out", workers=1, progress=False,
                 catalog=catalog)
    assert [e.case for e in result.errors] == [BAD]
    assert grid_message(result.errors[0].message) == message
    # the message shows the two origins 50 mm apart along x
    origins = [list(map(float, m.group(1).split(", ")))
               for m in re.finditer(r"origin \[([^\]]+)\]", message)]
    assert abs(abs(origins[0][0] - origins[1][0]) - SHIFT_MM) < 1e-3


def test_every_reader_of_a_manifest_refuses_it_with_the_same_message(catalog, tmp_path):
    """A manifest written while the label was aligned; then the label file is shifted (a swapped
    or re-exported file): the loader, the cache, an export and QA all refuse it alike."""
    plugin = catalog.get("kits23")
    root = make_kits23(tmp_path / "kits23", n_cases=3)
    manifest = build_manifest(plugin, discover(plugin, root), tmp_path / "manifests")
    assert manifest.errors == [] and manifest.path is not None
    shift_origin(root / "dataset" / BAD / "segmentation.nii.gz", SHIFT_MM)
    index = [r.case_id for r in manifest.records].index(BAD)

    with pytest.raises(GridMismatchError) as direct:
        read_case(manifest.records[index], base=manifest.path.parent)
    message = grid_message(direct.value.message)
    assert (direct.value.dataset, direct.value.case) == ("kits23", BAD)

    dataset = HarmonizedDataset(manifest.path, patch_size=None)
    with pytest.raises(GridMismatchError) as loaded:
        dataset.load_case(index)
    assert grid_message(loaded.value.message) == message
    dataset.load_case((index + 1) % 3)  # the aligned cases still load

    cache = build_cache([manifest.path], tmp_path / "cache")
    assert [(e.case, grid_message(e.message)) for e in cache.errors] == [(BAD, message)]

    export = export_nnunet(manifest.path, tmp_path / "nnunet", dataset_id=501, name="Kits")
    assert [(e.case, grid_message(e.message)) for e in export.errors] == [(BAD, message)]

    with pytest.raises(GridMismatchError) as monai:
        export_monai(manifest.path, tmp_path / "datalist.json")
    assert grid_message(monai.value.message) == message

    qa = collect_qa([manifest.path], montage_cases=0)
    flags = {c.case_id: [(f.code, f.message) for f in c.flags] for c in qa.cases}
    assert ("grid_mismatch", message) in [(code, grid_message(text) if code == "grid_mismatch"
                                           else text) for code, text in flags[BAD]]
    assert not any(code == "grid_mismatch" for c, f in flags.items() if c != BAD for code, _ in f)


def test_a_label_within_header_round_off_is_accepted(catalog, tmp_path):
    """The tolerance lets float32 round-off through (0.01 voxel), and the label takes the
    image's affine."""
    plugin = catalog.get("kits23")
    root = make_kits23(tmp_path / "kits23", n_cases=1)
    case_dir = root / "dataset" / "case_00000"
    spacing = float(nib.load(case_dir / "imaging.nii.gz").header.get_zooms()[0])
    shift_origin(case_dir / "segmentation.nii.gz", 0.01 * spacing)
    [case] = discover(plugin, root).cases
    data = read_case(case, plugin=plugin)
    assert data.label is not None
    np.testing.assert_array_equal(data.label.affine, data.image.affine)
    expected = np.asarray(nib.load(case_dir / "segmentation.nii.gz").dataobj)
    np.testing.assert_array_equal(data.label.data, expected)


def test_a_plugin_that_reads_its_own_image_format_is_read_through_it(tmp_path):
    """A plugin whose images are not volumes (here ``.npy``) reads them in ``read_image``: the
    manifest takes even the image's grid from the plugin, never from the file's header."""
    from harmonize.plugin import Case, DatasetPlugin, Volume
    from harmonize.testing import check_plugin

    spacing = np.diag([0.8, 0.8, 2.5, 1.0])
    image = np.arange(8 * 6 * 4, dtype=np.int16).reshape(8, 6, 4)
    label = (image % 3 == 0).astype(np.uint8)
    np.save(tmp_path / "c1.npy", image)
    np.save(tmp_path / "c1_seg.npy", label)

    class Npy(DatasetPlugin):
        id = "npy-toy"

        def discover(self, root):
            yield Case("c1", "p1", images=(root / "c1.npy",), label=root / "c1_seg.npy")

        def read_image(self, case):
            return Volume(np.load(case.images[0]), spacing, "image")

        def read_label(self, case):
            return Volume(np.load(case.label), spacing, "label")

    plugin = Npy({"id": "npy-toy", "name": "Npy toy", "modality": "CT",
                  "values": {0: "background", 1: "liver"}, "classes": {"liver": [1]}})
    [record] = check_plugin(plugin, tmp_path).records
    assert record.shape == [8, 6, 4] and record.spacing == [0.8, 0.8, 2.5]
    assert record.orientation == "RAS" and record.labels == {"liver": [1]}


def test_the_cache_does_not_serve_arrays_of_a_label_replaced_after_it_was_built(catalog, tmp_path):
    """Entries are keyed on the record's files too (size, modification time): a label shifted
    after `harmonize cache` ran is read and refused again, not served from the old entry."""
    plugin = catalog.get("kits23")
    root = make_kits23(tmp_path / "kits23", n_cases=2)
    manifest = build_manifest(plugin, discover(plugin, root), tmp_path / "manifests")
    assert manifest.path is not None
    assert build_cache([manifest.path], tmp_path / "cache").errors == []
    again = build_cache([manifest.path], tmp_path / "cache")
    assert again.errors == [] and again.counts["built"] == 0  # up to date: nothing rebuilt
    shift_origin(root / "dataset" / BAD / "segmentation.nii.gz", SHIFT_MM)
    stale = build_cache([manifest.path], tmp_path / "cache")
    assert [e.case for e in stale.errors] == [BAD]
    dataset = HarmonizedDataset(manifest.path, patch_size=None, cache=tmp_path / "cache")
    index = [r.case_id for r in dataset.records].index(BAD)
    with pytest.raises(GridMismatchError):
        dataset.load_case(index)
