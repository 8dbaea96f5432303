"""Case validation: ids that could escape the output folder are rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from harmonize import Case, DatasetPlugin
from harmonize.errors import DiscoveryError
from harmonize.manifest.records import check_identifier
from harmonize.plugin.discovery import discover


@pytest.mark.parametrize("bad", ["../etc", "a/b", "..", ".hidden", "a\\b", "", "x/../../y", "a b"])
def test_unsafe_ids_are_rejected(bad):
    with pytest.raises(DiscoveryError):
        check_identifier(bad, what="case id", dataset="toy")


@pytest.mark.parametrize("good", ["case_00000", "001_1.3.12.2.1107.5.1", "BraTS-GLI-00000-000", "liver_0"])
def test_real_ids_pass(good):
    assert check_identifier(good, what="case id", dataset="toy") == good


def test_malicious_case_id_from_a_plugin_is_skipped_not_written(catalog, kits23_root):
    class Evil(DatasetPlugin):
        id = "kits23"

        def discover(self, root: Path):
            yield Case(case_id="../../escape", patient_id="p", images=(root,))

    result = discover(Evil(), kits23_root)
    assert result.cases == [] and "unsafe case id" in result.skipped[0].reason


def test_case_rejects_bad_split_and_no_image():
    with pytest.raises(DiscoveryError, match="official_split"):
        Case(case_id="a", patient_id="a", images=(Path("x"),), official_split="training")
    with pytest.raises(DiscoveryError, match="no image"):
        Case(case_id="a", patient_id="a", images=())


def test_plugin_whose_discover_raises_becomes_an_error_record(kits23_root):
    class Crashy(DatasetPlugin):
        id = "kits23"

        def discover(self, root: Path):
            yield from ()
            raise ValueError("layout changed")

    result = discover(Crashy(), kits23_root)
    assert result.errors[0].kind == "unexpected" and "layout changed" in result.errors[0].message
    assert result.errors[0].dataset == "kits23"


def test_empty_patient_id_is_skipped_with_reason(kits23_root):
    class NoPatient(DatasetPlugin):
        id = "kits23"

        def discover(self, root: Path):
            yield Case(case_id="case_00000", patient_id="", images=(root,))

    result = discover(NoPatient(), kits23_root)
    assert result.cases == [] and "empty patient id" in result.skipped[0].reason


def test_typed_case_fields_are_validated_and_normalized():
    case = Case(case_id="a", patient_id="a", images=(Path("x"),), ct_window=[-100, 200],
                same_patient_as=["lits:volume-1", "msd-liver:liver_1", "lits:volume-1"])
    assert case.ct_window == (-100.0, 200.0) and isinstance(case.ct_window[0], float)
    assert case.same_patient_as == ("lits:volume-1", "msd-liver:liver_1")
    for window in ([200, -100], [1, 2, 3], ["a", "b"], [0, float("nan")], [True, 2], "wide"):
        with pytest.raises(DiscoveryError, match="ct_window"):
            Case(case_id="a", patient_id="a", images=(Path("x"),), ct_window=window)
    for links in ("lits:volume-1", ["volume-1"], [":p"], ["lits:"], [7]):
        with pytest.raises(DiscoveryError, match="same_patient_as"):
            Case(case_id="a", patient_id="a", images=(Path("x"),), same_patient_as=links)


def test_old_manifests_with_typed_keys_in_metadata_still_read():
    from harmonize.manifest.records import ManifestRecord

    line = {
        "schema_version": 1, "dataset": "d", "case_id": "c", "patient_id": "p", "modality": "CT",
        "image": "c.nii.gz", "mask": None, "label": [], "labels": {}, "annotated": [],
        "official_split": None, "split": "train", "shape": [2, 2, 2], "spacing": [1, 1, 1],
        "orientation": "RAS", "source": {"images": []},
        "metadata": {"ct_window": [-50, 150], "same_patient_as": ["e:p"], "site": "x"},
    }
    record = ManifestRecord.from_json(line)
    assert record.ct_window == [-50, 150] and record.same_patient_as == ["e:p"]
    assert record.metadata == {"site": "x"}
    assert record.patient_key == "d:p"
    assert ManifestRecord.from_json({**line, "metadata": {}}).same_patient_as == []
