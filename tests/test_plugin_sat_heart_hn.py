"""HaN-Seg and PDDCA: one NRRD mask per organ at risk, YAML-only SAT-DS datasets.

Layouts and structure file names from SAT-DS ``processor.py`` (``preprocess_HAN_Seg``,
``preprocess_PDDCA``) and ``data/jsonl`` (see the descriptors); fabricated by
``harmonize.plugins.fabricators.sat_heart_hn``. Oracle: each organ file read back with
SimpleITK and turned to RAS by hand (the files are LPS with an identity direction: flip x and
y), compared with the label map `harmonize run` writes, read with nibabel.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from harmonize.plugins.fabricators.sat_heart_hn import (
    HANSEG_OARS,
    HANSEG_WIDE,
    PDDCA_OARS,
    make_han_seg,
    make_pddca,
)
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.manifest.build import read_manifest
from harmonize.plugin.layout import LayoutDataset

runner = CliRunner()
SAT_NAMES = {"han-seg": "HAN_Seg", "pddca": "PDDCA"}


def cli(*args: str) -> dict:
    done = runner.invoke(app, [*args, "--format", "json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def ras(path: Path) -> np.ndarray:
    """An LPS identity-direction NRRD's voxels as an (X, Y, Z) RAS array."""
    image = sitk.ReadImage(str(path))
    assert image.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)[::-1, ::-1, :]


@pytest.mark.parametrize("dataset", list(SAT_NAMES))
def test_descriptor_alone_is_the_plugin(catalog, dataset):
    plugin = catalog.get(dataset)
    assert type(plugin) is LayoutDataset and plugin.source == "built-in"
    assert plugin.descriptor.sat_ds == (SAT_NAMES[dataset],) and plugin.descriptor.layout


def _check_run(dataset: str, root: Path, out: Path, files: dict[str, dict[str, Path]]) -> None:
    """`harmonize run` at native spacing: every organ file's voxels come back exactly as the
    union of its class's values; organs without a file are not annotated."""
    cli("run", "-d", dataset, "-r", str(root), "-o", str(out), "-w", "1", "--no-progress",
        "--spacing", "native")
    records = {r.case_id: r for r in read_manifest(out / f"{dataset}.jsonl")}
    assert sorted(records) == sorted(files)
    descriptor = Path(__file__).parents[1] / "registry" / "datasets" / f"{dataset}.yaml"
    structure_files = yaml.safe_load(descriptor.read_text(encoding="utf-8"))["structure_files"]
    for case_id, record in records.items():
        assert record.patient_id == case_id and record.official_split is None
        written = np.asarray(nib.as_closest_canonical(nib.load(out / record.mask)).dataobj)
        present = files[case_id]
        assert sorted(record.annotated) == sorted(structure_files[f] for f in present)
        for organ, path in present.items():
            name = structure_files[organ]
            want = ras(path) > 0
            assert want.any()
            np.testing.assert_array_equal(np.isin(written, record.labels[name]), want,
                                          err_msg=f"{case_id} {organ}")


def test_han_seg_organ_files_overlaps_and_missing_organs(tmp_path):
    root = make_han_seg(tmp_path / "src", cases=(1, 2))
    found = cli("discover", "-d", "han-seg", "-r", str(root))
    assert [c["case_id"] for c in found["cases"]] == ["case_01", "case_02"]
    assert found["skipped"] == []  # the MR T1 file is neither a case nor a structure
    files = {case: {organ: p for organ in HANSEG_OARS
                    if (p := root / "set_1" / case / f"{case}_OAR_{organ}.seg.nrrd").exists()}
             for case in ("case_01", "case_02")}
    assert len(files["case_01"]) == 30 and set(HANSEG_OARS) - set(files["case_02"]) == {
        "Arytenoid", "Lips"}
    glottis = ras(files["case_01"]["Glottis"]) > 0
    assert (glottis & (ras(files["case_01"]["Larynx_SG"]) > 0)).any()  # overlap exercised
    assert {"Glottis", "Larynx_SG"} <= HANSEG_WIDE
    _check_run("han-seg", root, tmp_path / "out", files)


def test_pddca_structures_folder_and_a_missing_organ(tmp_path):
    root = make_pddca(tmp_path / "src", cases=("0522c0001", "0522c0002", "0522c0878"))
    found = cli("discover", "-d", "pddca", "-r", str(root))
    assert [c["case_id"] for c in found["cases"]] == ["0522c0001", "0522c0002", "0522c0878"]
    assert found["skipped"] == []  # README.txt beside the case folders is not a case
    files = {case: {organ: p for organ in PDDCA_OARS
                    if (p := root / case / "structures" / f"{organ}.nrrd").exists()}
             for case in ("0522c0001", "0522c0002", "0522c0878")}
    assert set(PDDCA_OARS) - set(files["0522c0002"]) == {"Submandibular_L"}
    for case in files:
        assert set(np.unique(sitk.GetArrayFromImage(
            sitk.ReadImage(str(root / case / "structures" / "BrainStem.nrrd")))).tolist()) == {0, 1}
    _check_run("pddca", root, tmp_path / "out", files)


@pytest.mark.parametrize(("dataset", "files"), [("han-seg", HANSEG_OARS), ("pddca", PDDCA_OARS)])
def test_organ_files_map_to_sat_ds_names(dataset, files):
    """SAT-DS's processor.py lists the organ files in the order of its label names: file k is
    SAT-DS's label k, resolved in the vocabulary."""
    from harmonize.labels.sat_ds import load_sat_ds
    from harmonize.labels.vocabulary import load_vocabulary

    vocabulary, sat = load_vocabulary(), load_sat_ds()[SAT_NAMES[dataset]]
    descriptor = Path(__file__).parents[1] / "registry" / "datasets" / f"{dataset}.yaml"
    mapping = yaml.safe_load(descriptor.read_text(encoding="utf-8"))["structure_files"]
    assert list(mapping) == list(files)
    assert [mapping[f] for f in files] == [vocabulary.resolve(n) for n in sat.label[:len(files)]]


#: SegRap2023 Task001 organs -> values, from SAT-DS loader.py SegRap2023_Task1's merges
#: (mc_masks sums, 0-based -> value i + 1) and the release's overlap values
SEGRAP_ORGANS = {
    "brain": list(range(1, 10)), "left temporal lobe": [4, 6], "right temporal lobe": [5, 7],
    "left hippocampus": [6, 8], "right hippocampus": [7, 9], "left eyeball": [10, 12],
    "right eyeball": [11, 13], "left middle ear": [16, 18, 20, 24, 28, 30],
    "right middle ear": [17, 19, 21, 25, 29, 31], "left tympanic cavity": [20, 22],
    "right tympanic cavity": [21, 23], "left vestibule semicircular canal": [24, 26],
    "right vestibule semicircular canal": [25, 27], "left eustachian tube bone": [30, 32],
    "right eustachian tube bone": [31, 33], "larynx": [48, 49, 50, 51],
    "pharynx constrictor muscle": [51, 52], "left cochlea": [28], "trachea": [54],
}


@pytest.mark.parametrize("task", [1, 2])
def test_segrap_combined_labels_with_overlap_values(task, tmp_path):
    from harmonize.plugins.fabricators.sat_heart_hn import make_segrap2023

    dataset = f"segrap2023-task{task}"
    root = make_segrap2023(tmp_path / "src", cases=(0, 119))
    found = cli("discover", "-d", dataset, "-r", str(root))
    assert [c["case_id"] for c in found["cases"]] == ["segrap_0000", "segrap_0119"]
    assert found["skipped"] == []  # image.nii.gz, Brain.nii.gz, GTVp.nii.gz: not cases
    done = runner.invoke(app, ["manifest", "-d", dataset, "-r", str(root), "-o", str(tmp_path)])
    assert done.exit_code == 0, done.output
    for record in read_manifest(tmp_path / f"{dataset}.jsonl"):
        assert record.patient_id == record.case_id and record.official_split == "train"
        assert Path(record.image).name == "image_contrast.nii.gz"
        label = (root / "SegRap2023_Training_Set_120cases_OneHot_Labels" / f"Task00{task}"
                 / f"{record.case_id}.nii.gz")
        values = set(np.unique(np.asarray(nib.load(label).dataobj)).tolist())
        if task == 1:
            assert values == set(range(55))  # 45 organs + 9 overlap values
            assert len(record.labels) == 45
            assert {n: record.labels[n] for n in SEGRAP_ORGANS} == SEGRAP_ORGANS
        else:
            assert values == {0, 1, 2}
            assert record.labels == {"nasopharyngeal tumor": [1], "nasopharyngeal lymph node": [2]}
