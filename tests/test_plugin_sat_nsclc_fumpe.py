"""FUMPE (SAT-DS "FUMPE") on a fabricated release: DICOM series + MATLAB ``.mat`` masks, and the
``.mat`` label reader of the reading layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from harmonize.plugins.fabricators.sat_nsclc_fumpe import EMBOLUS_HU, make_fumpe

from harmonize.errors import LabelError, ReadError
from harmonize.plugin.discovery import discover
from harmonize.read.case import read_case
from harmonize.read.matlab import read_mat_label
from harmonize.testing import check_plugin

CASES = ["PAT001", "PAT002", "PAT003"]


@pytest.fixture(scope="module")
def fumpe_root(tmp_path_factory) -> Path:
    return make_fumpe(tmp_path_factory.mktemp("fumpe") / "FUMPE", n_cases=3, seed=4)


def test_cases_and_skipped(catalog, fumpe_root):
    check = check_plugin(catalog.get("fumpe"), fumpe_root)
    records = {r.case_id: r for r in check.records}
    assert sorted(records) == CASES
    for case_id, record in records.items():
        assert record.patient_id == case_id and record.official_split is None
        assert record.labels == {"pulmonary embolism": [1]}
        assert record.image.endswith(f"CT_scans/{case_id}")
        assert record.mask.endswith(f"GroundTruth/{case_id}.mat")
    assert [s.path.name for s in check.discovery.skipped] == ["readme.txt"]


@pytest.mark.parametrize("case_id", CASES)
def test_mask_lands_on_the_embolus_the_ct_shows(catalog, fumpe_root, case_id):
    """Oracle: the fabricator drew the embolus into the CT pixels (45 HU), read here by the core's
    DICOM reader; PAT002 is stored top-down, PAT003's mask is a double array."""
    plugin = catalog.get("fumpe")
    case = {c.case_id: c for c in discover(plugin, fumpe_root).cases}[case_id]
    data = read_case(case, plugin=plugin)
    embolus_ct = np.abs(np.asarray(data.image.data, dtype=float) - EMBOLUS_HU) < 0.5
    label = np.asarray(data.label.data)
    assert set(np.unique(label)) == {0, 1}
    assert embolus_ct.sum() > 20 and np.array_equal(label == 1, embolus_ct)


def test_mask_of_another_series_is_refused(catalog, fumpe_root, tmp_path):
    plugin = catalog.get("fumpe")
    case = {c.case_id: c for c in discover(plugin, fumpe_root).cases}["PAT001"]
    wrong = tmp_path / "PAT001.mat"
    scipy.io.savemat(wrong, {"Mask": np.zeros((18, 22, 8), np.uint8)})  # columns/rows swapped
    case = type(case)(**{**case.__dict__, "label": wrong})
    with pytest.raises(LabelError) as info:
        read_case(case, plugin=plugin)
    assert "Mask shape [18, 22, 8]" in str(info.value) and "[22, 18, 8]" in str(info.value)


def test_read_mat_label_values_and_errors(tmp_path):
    path = tmp_path / "m.mat"
    values = np.zeros((3, 4, 5))
    values[1, 2, 3] = 2.0
    scipy.io.savemat(path, {"Mask": values, "other": np.ones(2)})
    got = read_mat_label(path, "Mask")
    assert got.dtype == np.uint8 and got.shape == (3, 4, 5) and got[1, 2, 3] == 2
    assert got.sum() == 2
    with pytest.raises(LabelError, match=r"no variable 'GT'.*\['Mask', 'other'\]"):
        read_mat_label(path, "GT")
    scipy.io.savemat(path, {"Mask": values - 0.5})
    with pytest.raises(LabelError, match="negative, non-integer"):
        read_mat_label(path, "Mask")
    scipy.io.savemat(path, {"Mask": np.ones((3, 4))})
    with pytest.raises(LabelError, match=r"shape \[3, 4\], expected 3-D"):
        read_mat_label(path, "Mask")
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 10)
    with pytest.raises(ReadError, match="not a readable MATLAB file"):
        read_mat_label(tmp_path / "bad.mat", "Mask")


def test_descriptor(catalog):
    plugin = catalog.get("fumpe")
    desc = plugin.descriptor
    assert desc.sat_ds == ("FUMPE",) and desc.classes == {"pulmonary embolism": (1,)}
    assert desc.cases == 35 and desc.citation and desc.expected_root
    assert plugin.can_fabricate and not plugin.demo
