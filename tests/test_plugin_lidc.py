"""LIDC-IDRI plugin on fabricated NBIA series with two or three readers' XML."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from harmonize.plugins._dicom import read_series
from harmonize.plugins._lidc_xml import Annotation, Roi, fill_outline, group_annotations
from harmonize.plugins.fabricators.lidc import NODULE_HU, make_lidc, nodule_truth, ring

from harmonize.errors import DiscoveryError
from harmonize.plugin.discovery import discover
from harmonize.read.volume import read_volume
from harmonize.testing import check_plugin


@pytest.fixture(scope="module")
def lidc_root(tmp_path_factory) -> Path:
    return make_lidc(tmp_path_factory.mktemp("lidc") / "lidc", n_cases=3, seed=1, readers=2)


def truth_volume(case, shift: int) -> dict[str, np.ndarray]:
    """Reader 1's nodules on the volume grid the core reads, from the fabricator's definition."""
    series = read_series(case.images[0])
    out = {}
    for name, planes in nodule_truth(shift).items():
        volume = series.paste([(series.by_instance()[k], m.astype(np.uint8)) for k, m in planes.items()])
        out[name] = volume.data > 0
    return out


def test_cases_metadata_and_instances(catalog, lidc_root):
    check = check_plugin(catalog.get("lidc-idri"), lidc_root)
    records = {r.case_id: r for r in check.records}
    assert sorted(records) == [f"LIDC-IDRI-000{n}_{3000566 + n}.000000-NA-0319{2 + n}" for n in (1, 2, 3)]
    first = records["LIDC-IDRI-0001_3000567.000000-NA-03193"]
    assert first.patient_id == "LIDC-IDRI-0001" and first.labels == {"lung nodule": [1, 2]}
    meta = first.metadata
    assert meta["readers"] == ["anon-001", "anon-002"] and meta["consensus_level"] == 0.5
    assert [(n["nodule"], n["readers"]) for n in meta["nodules"]] == [(1, [0]), (2, [0, 1])]
    assert meta["nodules"][1]["malignancy_median"] == 3.5  # readers said 4 and 3
    assert meta["small_nodules"] == [{"reader": 1, "nodule_id": "5", "z": meta["small_nodules"][0]["z"],
                                      "x": 25, "y": 10}]
    assert meta["non_nodules"][0]["reader"] == 0 and meta["non_nodules"][0]["x"] == 5
    instances = {i["value"]: i for i in first.extra["instances"]}
    assert instances[1]["reader_count"] == 1 and instances[1]["mean_hu"] == NODULE_HU
    assert instances[2]["reader_ids"] == ["anon-001", "anon-002"]
    assert instances[2]["characteristics"][0]["malignancy"] == 4
    negative = records["LIDC-IDRI-0003_3000569.000000-NA-03195"]
    assert negative.labels == {"lung nodule": []} and negative.annotated == ["lung nodule"]
    assert negative.extra["instances"] == []
    (skipped,) = check.discovery.skipped
    assert skipped.path.name == "3000924.000000-NA-81924" and "DX series, not CT" in skipped.reason


def test_masks_lie_on_the_nodules_in_world_coordinates(catalog, lidc_root):
    """Reader 1 outlines exactly what the image shows; reader 2 the same one column further;
    with two readers the 50 % consensus is their union."""
    plugin = catalog.get("lidc-idri")
    for case in discover(plugin, lidc_root).cases[:2]:
        image = read_volume(case.images[0])
        shift = int(case.patient_id[-1]) - 1
        truth = truth_volume(case, shift)
        readers = plugin.reader_masks(case)
        first, second = readers["anon-001"], readers["anon-002"]
        assert np.allclose(first.affine, image.affine)
        assert np.array_equal(first.data > 0, image.data == NODULE_HU)
        assert np.array_equal(first.data == 1, truth["B"]) and np.array_equal(first.data == 2, truth["A"])
        # reader 2 outlined nodule A one column (+x voxel, patient's left) further, without the hole
        assert not (second.data == 1).any() and (second.data == 2).sum() == 70
        consensus = plugin.read_label(case)
        assert np.allclose(consensus.affine, image.affine)
        assert np.array_equal(consensus.data == 2, (first.data == 2) | (second.data == 2))
        assert np.array_equal(consensus.data == 1, truth["B"])
        centre = image.affine @ [*(np.array(image.shape) - 1) / 2, 1.0]
        a = image.affine @ [*np.argwhere(truth["A"]).mean(axis=0), 1.0]
        assert a[0] > centre[0] and a[1] > centre[1]  # nodule A: patient's right, anterior


def test_three_readers_consensus_needs_two(catalog, tmp_path):
    plugin = catalog.get("lidc-idri")
    root = make_lidc(tmp_path / "lidc", n_cases=1, readers=3, radiograph=False)
    (case,) = discover(plugin, root).cases
    readers = plugin.reader_masks(case)
    votes = sum((m.data == 2).astype(int) for m in readers.values())
    consensus = plugin.read_label(case).data
    assert np.array_equal(consensus == 2, votes >= 2) and (votes == 1).any()
    assert case.metadata["nodules"][1]["readers"] == [0, 1, 2]


def test_consensus_counts_all_readers_of_the_series(catalog, tmp_path):
    """Nodule 1 is outlined by reader 1 only: half of 2 readers keeps it, a third of 3 does not."""
    plugin = catalog.get("lidc-idri")
    for readers, kept in ((2, True), (3, False)):
        root = make_lidc(tmp_path / f"lidc{readers}", n_cases=1, readers=readers, radiograph=False)
        (case,) = discover(plugin, root).cases
        assert case.metadata["nodules"][0]["readers"] == [0]
        outline = plugin.reader_masks(case)["anon-001"].data == 1
        consensus = plugin.read_label(case).data == 1
        assert outline.any() and consensus.any() == kept
        assert plugin.instances(case)[1]["reader_count"] == 1


def test_xml_problems_are_reported(catalog, lidc_root, tmp_path):
    root = tmp_path / "lidc"
    shutil.copytree(lidc_root, root)
    series = sorted(root.glob("LIDC-IDRI/LIDC-IDRI-000*/*/30005*"))
    one, two, three = series
    (one / "070.xml").rename(two / "070.xml")  # patient 1's XML now sits in patient 2's folder
    (three / "072.xml").write_text("<LidcReadMessage><ResponseHeader>")  # truncated
    (three / "manifest.xml").write_text("<IdriReadMessage/>")
    found = discover(catalog.get("lidc-idri"), root)
    assert [c.case_id for c in found.cases] == ["LIDC-IDRI-0002_3000568.000000-NA-03194"]
    reasons = {(s.path.parent.name, s.path.name): s.reason for s in found.skipped}
    assert "without its reader XML" in reasons[(one.parent.name, one.name)]
    assert "not of this folder's series" in reasons[(two.name, "070.xml")]
    assert "cannot parse reader XML" in reasons[(three.name, "072.xml")]
    assert "not a CT reading file" in reasons[(three.name, "manifest.xml")]


def test_entity_expansion_is_refused(catalog, lidc_root, tmp_path):
    root = tmp_path / "lidc"
    shutil.copytree(lidc_root, root)
    folder = sorted(root.glob("LIDC-IDRI/LIDC-IDRI-0002/*/3*"))[0]
    (folder / "071.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        "<LidcReadMessage><x>&b;</x></LidcReadMessage>")
    found = discover(catalog.get("lidc-idri"), root)
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "071.xml" in reasons and "LIDC-IDRI-0002" not in " ".join(c.case_id for c in found.cases)


def test_missing_slice_is_refused_before_any_outline(catalog, lidc_root, tmp_path):
    """Changed with the one DICOM model: a series with a slice missing is an irregular grid and
    is refused as a read error naming the gap (it used to pass the reader and fail later, as a
    label error, only because nodule A was outlined on that slice)."""
    root = tmp_path / "lidc"
    shutil.copytree(lidc_root, root)
    folder = sorted(root.glob("LIDC-IDRI/LIDC-IDRI-0001/*/3*"))[0]
    (folder / "1-005.dcm").unlink()  # nodule A is outlined on instance 5 (k = 4)
    check = check_plugin(catalog.get("lidc-idri"), root, allow_errors=True)
    error = next(e for e in check.errors if e.case.startswith("LIDC-IDRI-0001"))
    assert error.kind == "read" and error.file == str(folder)
    assert "slice gap of" in error.message and "median gap" in error.message


def test_fill_outline_and_exclusion_rules():
    mask = fill_outline(tuple(ring(3, 5, 2, 6)), 10, 10)
    expected = np.zeros((10, 10), bool)
    expected[3:6, 2:7] = True
    assert np.array_equal(mask, expected)  # interior only, the outline's own pixels excluded
    assert fill_outline(((4, 4),), 10, 10).sum() == 0


def test_grouping_by_distance():
    def ann(session: int, x: int, z: float) -> Annotation:
        return Annotation(session, f"n{x}", {"malignancy": 3},
                          [Roi(z, "", True, tuple(ring(5, 6, x, x + 1)))])

    anns = [ann(0, 5, 0.0), ann(1, 9, 0.0), ann(0, 40, 10.0), ann(1, 41, 12.5)]  # 0.7 mm, 2.5 mm apart
    groups, warning = group_annotations(anns, (0.7, 0.7), 2.5)
    assert groups == [[0, 1], [2, 3]] and warning is None
    groups, _ = group_annotations(anns, (0.7, 0.7), 0.5)
    assert groups == [[0], [1], [2], [3]]


def test_root_without_patients_is_a_clear_error(catalog, tmp_path):
    (tmp_path / "LIDC-IDRI").mkdir()
    with pytest.raises(DiscoveryError, match="LIDC-IDRI-XXXX"):
        list(catalog.get("lidc-idri").discover(tmp_path))


def test_descriptor(catalog):
    plugin = catalog.get("lidc-idri")
    desc = plugin.descriptor
    assert desc.modality == "CT" and desc.region == "chest" and desc.cases == 1018
    assert desc.licence and desc.citation and desc.homepage and desc.download and desc.ct_window
    assert plugin.can_fabricate and not plugin.demo
