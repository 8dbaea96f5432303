"""PET: autoPET (CT + SUV paired channels) and the PET intensity convention.

Layout from the autoPET organisers' converter (lab-midas/TCIA_processing) and SAT-DS's
``preprocess_autoPET`` (see the descriptor). Oracles: the fabricated files read with nibabel
(``as_closest_canonical`` for RAS), numpy's clip, folder names split by hand; never the code
under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.sat_pet import AUTOPET_STUDIES, BLADDER_SUV, make_autopet
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.engine.normalize import Settings, normalize_case, undo_intensity
from harmonize.engine.pet import SUV_CLIP
from harmonize.loader import HarmonizedDataset
from harmonize.manifest.build import read_manifest
from harmonize.plugin.discovery import discover
from harmonize.read.volume import Volume


@pytest.fixture(scope="module")
def autopet(tmp_path_factory):
    return make_autopet(tmp_path_factory.mktemp("autopet"), seed=5)


def _ras(path: Path) -> np.ndarray:
    return np.asarray(nib.as_closest_canonical(nib.load(path)).get_fdata(), dtype=np.float64)


def _study(record_case: str, patient: str) -> str:
    """The study folder of a case id <patient hex>_<study number> (as dap-atlas names them)."""
    return next(s for s in AUTOPET_STUDIES[f"PETCT_{patient}"]
                if s.endswith("-" + record_case.rsplit("_", 1)[1]))


def test_autopet_cases_are_patient_and_study_number(catalog, autopet):
    found = discover(catalog.get("autopet"), autopet)
    expected = sorted((f"{p[6:]}_{study[-5:]}", p[6:], study)
                      for p, studies in AUTOPET_STUDIES.items() for study in studies)
    assert [(c.case_id, c.patient_id) for c in found.cases] == [(e[0], e[1]) for e in expected]
    for case, (_, patient, study) in zip(found.cases, expected):
        folder = autopet / f"PETCT_{patient}" / study
        assert case.images == (folder / "CTres.nii.gz", folder / "SUV.nii.gz")
        assert case.channel_names == ("CT", "PET") and case.label == folder / "SEG.nii.gz"
        assert case.official_split == "train"
    assert not found.skipped  # CT.nii.gz and PET.nii.gz are not cases, not reported


def test_autopet_run_keeps_suv_clipped_and_windows_the_ct(autopet, tmp_path):
    out = tmp_path / "out"
    done = CliRunner().invoke(app, ["run", "-d", "autopet", "-r", str(autopet), "-o", str(out),
                                    "-w", "1", "--no-progress"])
    assert done.exit_code == 0, done.output
    records = read_manifest(out / "autopet.jsonl")
    assert len(records) == 3
    for record in records:
        patient = record.patient_id
        folder = autopet / f"PETCT_{patient}" / _study(record.case_id, patient)
        assert record.modality == "PET" and record.channels == ["CT", "PET"]
        image = np.asarray(nib.load(out / record.image).dataobj)
        suv, ct = _ras(folder / "SUV.nii.gz"), _ras(folder / "CTres.nii.gz")
        assert suv.max() == pytest.approx(BLADDER_SUV) and suv.min() < 0  # the quirks
        np.testing.assert_allclose(image[..., 1], np.clip(suv, 0.0, 50.0), atol=1e-5)
        np.testing.assert_allclose(image[..., 0], (np.clip(ct, -1000, 1000) + 1000) / 2000,
                                   atol=1e-6)
        seg = _ras(folder / "SEG.nii.gz")
        mask = np.asarray(nib.load(out / record.mask).dataobj)
        np.testing.assert_array_equal(mask, seg)
        assert record.labels == {"lesion": [1]}  # annotated, absent in the negative control
        assert (seg.sum() == 0) == (patient == "01140d52d8")
    dataset = HarmonizedDataset(out / "autopet.jsonl", patch_size=None, classes=["lesion"])
    sample = dataset[0]
    assert tuple(sample["image"].shape)[0] == 2 and sample["channels"] == ["CT", "PET"]
    assert float(sample["image"][1].max()) == pytest.approx(SUV_CLIP[1])


def test_pet_convention_undo_is_exact_inside_the_clip():
    rng = np.random.default_rng(3)
    suv = rng.gamma(1.5, 3.0, size=(6, 7, 8)).astype(np.float32) - 0.2
    out = normalize_case(Volume(suv, np.eye(4)), None, modality="PET", settings=Settings())
    np.testing.assert_array_equal(out.image.data, np.clip(suv, *SUV_CLIP))
    assert out.intensity["clip"] == [0.0, 50.0] and out.intensity["method"] == "pet"
    inside = (suv >= 0) & (suv <= 50)
    np.testing.assert_allclose(undo_intensity(out.image.data, out.intensity)[inside],
                               suv[inside], atol=1e-6)
    sat = normalize_case(Volume(suv, np.eye(4)), None, modality="PET",
                         settings=Settings(pet_intensity="percentile-zscore"))
    lo, hi = np.percentile(suv.astype(np.float64), (0.5, 99.5))  # SAT-DS's Normalization
    clipped = np.clip(suv.astype(np.float64), lo, hi)
    np.testing.assert_allclose(sat.image.data, (clipped - clipped.mean()) / clipped.std(),
                               atol=1e-5)


def test_sat_preset_z_scores_pet_as_sat_ds_does():
    from harmonize.engine.normalize import preset_settings

    assert preset_settings("sat").pet_intensity == "percentile-zscore"
    assert Settings().pet_intensity == "suv-clip"
    assert "pet_intensity" not in Settings().to_dict()  # earlier resume keys hold
    assert json.loads(json.dumps(Settings(pet_intensity="percentile-zscore").to_dict()))[
        "pet_intensity"] == "percentile-zscore"


def test_autopet_exports_to_sat_ds_as_its_pet_lines(autopet, tmp_path):
    """SAT-DS's autoPET lines show SUV.nii.gz alone (processor.py preprocess_autoPET) and
    loader.py reads value 1 as 'tumor': one line per study, the PET channel, never the CT."""
    from harmonize.export.sat import export_sat

    out = tmp_path / "out"
    done = CliRunner().invoke(app, ["run", "-d", "autopet", "-r", str(autopet), "-o", str(out),
                                    "-w", "1", "--no-progress"])
    assert done.exit_code == 0, done.output
    result = export_sat([out / "autopet.jsonl"], tmp_path / "sat")
    assert not result.errors
    lines = [json.loads(t) for t in (tmp_path / "sat" / "jsonl" / "autoPET.jsonl").read_text()
             .splitlines()]
    records = {r.case_id: r for r in read_manifest(out / "autopet.jsonl")}
    assert sorted(line["harmonize"]["case_id"] for line in lines) == sorted(records)
    for line in lines:
        assert line["modality"] == "PET" and line["label"] == ["tumor"]
        assert line["harmonize"]["channel"] == "PET"
        record = records[line["harmonize"]["case_id"]]
        pet = np.asarray(nib.load(tmp_path / "sat" / line["image"]).dataobj)
        run_pet = np.asarray(nib.load(out / record.image).dataobj)[..., 1]
        np.testing.assert_array_equal(pet, run_pet)


def test_hecktor_pet_is_resampled_onto_the_ct_grid(tmp_path):
    """HECKTOR 2022 ships CT and PET on their own grids (channel_grid: first). Oracle: scipy's
    map_coordinates (order 1) through the two NIfTI affines, then nibabel's RAS reorientation."""
    from harmonize.plugins.fabricators.sat_pet import HECKTOR_CASES, make_hecktor2022
    from scipy.ndimage import map_coordinates

    root = make_hecktor2022(tmp_path / "src", seed=2)
    out = tmp_path / "out"
    done = CliRunner().invoke(app, ["run", "-d", "hecktor2022", "-r", str(root), "-o", str(out),
                                    "-w", "1", "--no-progress"])
    assert done.exit_code == 0, done.output
    records = {r.case_id: r for r in read_manifest(out / "hecktor2022.jsonl")}
    assert sorted(records) == sorted(HECKTOR_CASES)
    for case, record in records.items():
        assert record.patient_id == case and record.official_split == "train"
        ct_img = nib.load(root / "imagesTr" / f"{case}__CT.nii.gz")
        pt_img = nib.load(root / "imagesTr" / f"{case}__PT.nii.gz")
        index = np.linalg.inv(pt_img.affine) @ ct_img.affine
        grid = np.indices(ct_img.shape).reshape(3, -1)
        coords = index[:3, :3] @ grid + index[:3, 3:4]
        pet = map_coordinates(np.asarray(pt_img.dataobj, np.float64), coords, order=1,
                              mode="nearest").reshape(ct_img.shape)
        want = nib.as_closest_canonical(nib.Nifti1Image(np.clip(pet, 0, 50), ct_img.affine))
        image = np.asarray(nib.load(out / record.image).dataobj)
        np.testing.assert_allclose(image[..., 1], want.get_fdata(), atol=1e-4)
        ops = [op for op in record.extra["operations"] if op["op"] == "resample_channel"]
        assert len(ops) == 1 and ops[0]["channel"] == 1
        label = np.asarray(nib.as_closest_canonical(
            nib.load(root / "labelsTr" / f"{case}.nii.gz")).dataobj)
        np.testing.assert_array_equal(np.asarray(nib.load(out / record.mask).dataobj), label)
        assert set(np.unique(label)) == ({0, 1} if case.startswith("MDA") else {0, 1, 2})
        assert record.labels == {"head and neck tumor": [1], "pathological lymph node": [2],
                                 "lymph node": [2]}


def test_channels_on_two_grids_are_refused_without_channel_grid(tmp_path):
    from harmonize.plugins.fabricators.sat_pet import make_hecktor2022

    from harmonize.errors import ReadError
    from harmonize.plugin.descriptor import load_descriptor
    from harmonize.plugin.layout import LayoutDataset
    from harmonize.read.case import read_case

    root = make_hecktor2022(tmp_path / "src")
    source = Path(__file__).parents[1] / "registry" / "datasets" / "hecktor2022.yaml"
    strict = tmp_path / "strict.yaml"
    strict.write_text(source.read_text().replace("channel_grid: first\n", ""))
    plugin = LayoutDataset(load_descriptor(strict))
    case = discover(plugin, root).cases[0]
    with pytest.raises(ReadError, match="channel grid .* differs .* channel_grid: first"):
        read_case(case, plugin=plugin)


@pytest.mark.parametrize("window", [None, "none"])
def test_autopet_exports_to_nnunet_in_hu_and_suv(autopet, tmp_path, window):
    """nnU-Net gets source units back: CT in HU (clipped to the run's window, warned; raw with
    --ct-window none, a channel without a clip), PET in SUV (clipped to 0..50); oracle: the
    release files read with nibabel in RAS."""
    from harmonize.export.nnunet import export_nnunet

    out = tmp_path / "out"
    flags = ["--ct-window", window] if window else []
    done = CliRunner().invoke(app, ["run", "-d", "autopet", "-r", str(autopet), "-o", str(out),
                                    "-w", "1", "--no-progress", *flags])
    assert done.exit_code == 0, done.output
    result = export_nnunet([out / "autopet.jsonl"], tmp_path / "nn", dataset_id=221,
                           name="autoPET")
    folder = tmp_path / "nn" / "Dataset221_autoPET"
    doc = json.loads((folder / "dataset.json").read_text())
    assert doc["channel_names"] == {"0": "CT", "1": "PET"}
    assert any("clipped" in w for w in result.warnings) == (window is None)
    lo, hi = (-1000, 1000) if window is None else (-np.inf, np.inf)
    for record in read_manifest(out / "autopet.jsonl"):
        src = (autopet / f"PETCT_{record.patient_id}" /
               _study(record.case_id, record.patient_id))
        images = next(f for f in (folder / "imagesTr", folder / "imagesTs")  # by its split
                      if (f / f"{record.case_id}_0000.nii.gz").is_file())
        ct = np.asarray(nib.load(images / f"{record.case_id}_0000.nii.gz").get_fdata())
        pet = np.asarray(nib.load(images / f"{record.case_id}_0001.nii.gz").get_fdata())
        np.testing.assert_allclose(ct, np.clip(_ras(src / "CTres.nii.gz"), lo, hi), atol=2e-2)
        np.testing.assert_allclose(pet, np.clip(_ras(src / "SUV.nii.gz"), 0, 50), atol=1e-4)


def test_resample_onto_refuses_rotated_grids_and_matches_scipy_on_flipped_ones():
    from scipy.ndimage import map_coordinates

    from harmonize.engine.resample import resample_onto

    rng = np.random.default_rng(1)
    data = rng.uniform(0, 10, size=(9, 8, 7)).astype(np.float32)
    source = np.diag([-4.0, 4.0, 3.0, 1.0])
    source[:3, 3] = (20.0, -15.0, 0.0)
    target = np.diag([1.0, -1.5, 2.0, 1.0])  # flipped axes, finer, inside the source
    target[:3, 3] = (-10.0, 10.0, 2.0)
    got = resample_onto(Volume(data, source), (12, 10, 6), target).data
    index = np.linalg.inv(source) @ target
    coords = index[:3, :3] @ np.indices((12, 10, 6)).reshape(3, -1) + index[:3, 3:4]
    want = map_coordinates(data.astype(np.float64), coords, order=1).reshape(12, 10, 6)
    np.testing.assert_allclose(got, want, atol=1e-4)
    theta = np.deg2rad(10)
    rotated = target.copy()
    rotated[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    with pytest.raises(ValueError, match="not parallel"):
        resample_onto(Volume(data, source), (12, 10, 6), rotated)
