"""PleThora on NSCLC-Radiomics (SAT-DS "NSCLC") on a fabricated release: masks stored in the
release's voxel order (dcm2niix's grid) with a misleading header, CT as an NBIA DICOM tree."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.sat_nsclc import (
    BODY_HU,
    EFFUSION_HU,
    NO_EFFUSION,
    make_plethora,
)

from harmonize.errors import LabelError
from harmonize.plugin.discovery import discover
from harmonize.read.case import read_case
from harmonize.testing import check_plugin

CASES = ["LUNG1-001", "LUNG1-002", "LUNG1-003"]


@pytest.fixture(scope="module")
def plethora_root(tmp_path_factory) -> Path:
    return make_plethora(tmp_path_factory.mktemp("plethora") / "NSCLC", n_cases=3, seed=1)


def test_cases_patients_and_skipped(catalog, plethora_root):
    check = check_plugin(catalog.get("nsclc-plethora"), plethora_root)
    records = {r.case_id: r for r in check.records}
    assert sorted(records) == CASES
    for case_id, record in records.items():
        assert record.patient_id == case_id and record.official_split is None
        assert record.image.endswith("/0.000000-NA-" + str(82046 + int(case_id[-3:])))
        assert record.shape == [20, 24, 9]
    assert records["LUNG1-002"].labels == {"thoracic cavity": [1]}  # effusion not annotated
    assert set(records["LUNG1-001"].labels) == {"thoracic cavity", "pleural effusion"}
    skipped = sorted((s.path.name, s.reason) for s in check.discovery.skipped)
    assert [name for name, _ in skipped] == [
        "1.000000-NA-5001", "1.000000-NA-5002", "1.000000-NA-5003", "README.txt"]
    assert all("MR series, not used" in reason for _, reason in skipped[:3])


@pytest.mark.parametrize("case_id", CASES)
def test_masks_land_where_the_ct_shows_them(catalog, plethora_root, case_id):
    """Oracle: the fabricator drew the structures into the CT pixels; the core's DICOM reader
    gives those pixels, so the label must cover exactly the cavity (< 100 HU) and the effusion
    (15 HU) wherever the scanner stored slices and whatever the mask header says."""
    plugin = catalog.get("nsclc-plethora")
    case = {c.case_id: c for c in discover(plugin, plethora_root).cases}[case_id]
    data = read_case(case, plugin=plugin)
    image = np.asarray(data.image.data, dtype=float)
    label = np.asarray(data.label.data)
    classes = data.label.classes
    cavity = np.isin(label, classes["thoracic cavity"])
    assert cavity.sum() > 100 and np.array_equal(cavity, image < BODY_HU / 3)
    effusion_ct = np.abs(image - EFFUSION_HU) < 0.5
    if case_id == f"LUNG1-{NO_EFFUSION:03d}":
        assert "pleural effusion" not in classes
    else:
        effusion = np.isin(label, classes["pleural effusion"])
        assert effusion.sum() > 5 and np.array_equal(effusion, effusion_ct)
        assert np.all(cavity[effusion])  # overlap kept: effusion voxels stay in the cavity


def test_header_is_misleading_on_purpose(plethora_root):
    """The fabricated mask headers do not describe the CT grid (so the test above proves the
    plugin does not use them): a bare scaling, not the LPS series' direction/origin."""
    mask = nib.load(plethora_root / "Thoracic_Cavities/LUNG1-001/"
                    "LUNG1-001_thor_cav_primary_reviewer.nii.gz")
    assert np.allclose(mask.affine[:3, 3], 0) and nib.aff2axcodes(mask.affine) == ("R", "A", "S")


def test_mask_of_another_series_is_refused(catalog, plethora_root, tmp_path):
    plugin = catalog.get("nsclc-plethora")
    case = {c.case_id: c for c in discover(plugin, plethora_root).cases}["LUNG1-003"]
    path = (plethora_root / "Effusions/LUNG1-003/LUNG1-003_effusion_first_reviewer.nii.gz")
    original = path.read_bytes()
    try:
        nib.save(nib.Nifti1Image(np.zeros((20, 24, 8), np.uint8), np.eye(4)), str(path))
        with pytest.raises(LabelError) as info:
            read_case(case, plugin=plugin)
        assert "pleural effusion mask shape [20, 24, 8]" in str(info.value)
        assert "LUNG1-003_effusion_first_reviewer" in str(info.value)
    finally:
        path.write_bytes(original)


def test_descriptor(catalog):
    plugin = catalog.get("nsclc-plethora")
    desc = plugin.descriptor
    assert desc.sat_ds == ("NSCLC",)
    assert desc.classes == {"thoracic cavity": (1,), "pleural effusion": (2,)}
    assert desc.cases == 402 and desc.licence and desc.citation and desc.expected_root
    assert plugin.can_fabricate and not plugin.demo


def test_harmonize_run_and_loader(plethora_root, tmp_path):
    from typer.testing import CliRunner

    from harmonize.cli.app import app
    from harmonize.loader import HarmonizedDataset

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-d", "nsclc-plethora", "-r", str(plethora_root),
                                      "-o", str(out), "-w", "1", "--no-progress",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    classes = ["thoracic cavity", "pleural effusion"]
    dataset = HarmonizedDataset(out / "nsclc-plethora.jsonl", patch_size=None, classes=classes)
    assert sorted(r.case_id for r in dataset.records) == CASES
    for i in range(len(dataset)):
        sample, record = dataset[i], dataset.records[i]
        assert record.orientation == "RAS"
        # native spacing, RAS: the windowed CT keeps its three levels (wall 300 HU, aerated
        # cavity about -800 HU, effusion 15 HU) voxel for voxel
        image = sample["image"][0].numpy()
        masks = {name: sample["mask"][k].numpy().astype(bool)
                 for k, name in enumerate(sample["classes"])}
        wall = float(image.max())  # 300 HU, the brightest level
        assert np.array_equal(masks["thoracic cavity"], image < wall)
        if record.case_id == f"LUNG1-{NO_EFFUSION:03d}":
            assert "pleural effusion" not in record.labels
        else:
            effusion = masks["pleural effusion"]
            assert effusion.sum() > 5 and np.all(masks["thoracic cavity"][effusion])
            level = np.unique(image[effusion])
            assert level.size == 1 and np.array_equal(effusion, image == level[0])
