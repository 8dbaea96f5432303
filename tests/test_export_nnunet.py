"""nnU-Net v2 raw export (`harmonize export nnunet`) on fabricated KiTS19/KiTS23, BraTS 2021 and
MSD Task01; the last test runs nnU-Net v2 itself (installed by the test, see `nnunet_site`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from harmonize.plugins.fabricators.brats import make_brats2021, make_brats2023_gli
from harmonize.plugins.fabricators.kits import make_kits, make_kits23
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.engine.pipeline import Target, run
from harmonize.export import ExportError, load_entries
from harmonize.export.nnunet import channel_names, dataset_folder, export_nnunet
from harmonize.manifest.build import build_manifest, read_manifest, write_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover

runner = CliRunner()
SPLITS = {"case_00000": "train", "case_00001": "train", "case_00002": "val", "case_00003": "test"}


def _manifest(plugin_id: str, root: Path, out: Path, splits: dict[str, str] | None = None) -> Path:
    plugin = load_catalog(entry_points=False).get(plugin_id)
    result = build_manifest(plugin, discover(plugin, root), out)
    assert result.path is not None and not result.errors
    if splits:
        for record in result.records:
            record.split = splits[record.case_id]
        write_manifest(result.path, result.records)
    return result.path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("nnunet")
    kits_root = make_kits23(base / "kits23", n_cases=4, seed=2)
    brats_root = make_brats2021(base / "brats", n_cases=2, seed=3)
    kits19_root = make_kits(base / "kits19", release="kits19", n_cases=2, first_case=0, seed=5)
    return {
        "base": base,
        "kits": _manifest("kits23", kits_root, base / "m_kits", SPLITS),
        "brats": _manifest("brats2021", brats_root, base / "m_brats"),
        "kits19": _manifest("kits19", kits19_root, base / "m_kits19"),
        "kits_root": kits_root,
    }


def _labels(path: Path) -> set[int]:
    return {int(v) for v in np.unique(np.asarray(nib.load(path).dataobj))}


def test_kits23_layout_dataset_json_and_splits(data: dict[str, Path], tmp_path: Path) -> None:
    result = export_nnunet([data["kits"]], tmp_path, dataset_id=501, name="KiTS23")
    folder = tmp_path / "Dataset501_KiTS23"
    assert result.ok and result.folder == folder
    assert not [w for w in result.warnings if "do not annotate" in w]
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        "case_00000_0000.nii.gz", "case_00001_0000.nii.gz", "case_00002_0000.nii.gz"]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == [
        "case_00000.nii.gz", "case_00001.nii.gz", "case_00002.nii.gz"]
    assert [p.name for p in (folder / "imagesTs").iterdir()] == ["case_00003_0000.nii.gz"]
    assert [p.name for p in (folder / "labelsTs").iterdir()] == ["case_00003.nii.gz"]
    doc = json.loads((folder / "dataset.json").read_text())
    assert doc["channel_names"] == {"0": "CT"}
    assert doc["labels"] == {"background": 0, "kidney": 1, "kidney tumor": 2, "kidney cyst": 3}
    assert doc["numTraining"] == 3 and doc["file_ending"] == ".nii.gz"
    assert json.loads((folder / "splits_final.json").read_text()) == [
        {"train": ["case_00000", "case_00001"], "val": ["case_00002"]}]
    source = data["kits_root"] / "dataset" / "case_00000"
    assert (folder / "imagesTr" / "case_00000_0000.nii.gz").read_bytes() == (
        source / "imaging.nii.gz").read_bytes()  # copied, not re-encoded
    label = nib.load(folder / "labelsTr" / "case_00000.nii.gz")
    original = nib.load(source / "segmentation.nii.gz")
    assert np.array_equal(np.asarray(label.dataobj), np.asarray(original.dataobj))
    assert np.allclose(label.affine, nib.load(source / "imaging.nii.gz").affine)


def test_brats_channels_and_non_consecutive_labels(data: dict[str, Path], tmp_path: Path) -> None:
    result = export_nnunet([data["brats"]], tmp_path, dataset_id=137, name="BraTS2021")
    folder = result.folder
    assert result.ok, result.errors
    doc = result.dataset_json
    assert doc["channel_names"] == {"0": "T1", "1": "T1 contrast-enhanced", "2": "T2", "3": "FLAIR"}
    assert doc["labels"] == {"background": 0, "necrotic brain tumor core": 1,
                             "peritumoral edema": 2, "enhancing brain tumor": 3}
    assert doc["harmonize"]["label_of_mask_value"]["brats2021"] == {"1": 1, "2": 2, "4": 3}
    case = "BraTS2021_00000"
    for c, suffix in enumerate(("t1", "t1ce", "t2", "flair")):
        written = nib.load(folder / "imagesTr" / f"{case}_{c:04d}.nii.gz")
        src = next(data["base"].glob(f"brats/*/{case}/{case}_{suffix}.nii.gz"))
        assert (folder / "imagesTr" / f"{case}_{c:04d}.nii.gz").is_file()
        assert np.array_equal(np.asarray(written.dataobj), np.asarray(nib.load(src).dataobj))
    src_label = np.asarray(nib.load(next(data["base"].glob(f"brats/*/{case}/{case}_seg.nii.gz")))
                           .dataobj)
    label = np.asarray(nib.load(folder / "labelsTr" / f"{case}.nii.gz").dataobj)
    assert _labels(folder / "labelsTr" / f"{case}.nii.gz") == {0, 1, 2, 3}
    assert np.array_equal(label == 3, src_label == 4) and np.array_equal(label == 1, src_label == 1)
    # the unlabelled validation case goes to imagesTs, all four channels
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [
        f"BraTS2021_00001_{c:04d}.nii.gz" for c in range(4)]


def _decode(labels: dict, order: list[int], label: int) -> int:
    """nnU-Net's region decoding: paint regions in order with regions_class_order."""
    result = 0
    for region, paint in zip(list(labels.values())[1:], order):
        members = region if isinstance(region, list) else [region]
        if label in members:
            result = paint
    return result


def test_regions_decode_every_label(data: dict[str, Path], tmp_path: Path) -> None:
    for key in ("kits", "brats"):
        doc = export_nnunet([data[key]], tmp_path / key, dataset_id=2, name="R",
                            regions=True).dataset_json
        labels, order = doc["labels"], doc["regions_class_order"]
        assert len(order) == len(labels) - 1
        top = max(max(v) if isinstance(v, list) else v for v in labels.values())
        assert [_decode(labels, order, g) for g in range(1, top + 1)] == list(range(1, top + 1))
    kits = export_nnunet([data["kits"]], tmp_path / "k2", dataset_id=3, name="K",
                         regions=True).dataset_json["labels"]
    assert kits["kidney"] == [1, 2, 3] and kits["kidney mass"] == [2, 3]


def test_two_datasets_share_labels_by_name(data: dict[str, Path], tmp_path: Path) -> None:
    result = export_nnunet([data["kits"], data["kits19"]], tmp_path, dataset_id=600, name="Kidney")
    assert result.ok, result.errors
    assert result.dataset_json["labels"] == {"background": 0, "kidney": 1, "kidney tumor": 2,
                                             "kidney cyst": 3}
    unannotated = [w for w in result.warnings if "do not annotate" in w]
    assert unannotated == ["kits19: cases do not annotate ['kidney cyst']; nnU-Net will learn "
                           "those classes as background there (export datasets with the same "
                           "classes together)"]  # KiTS19 has no cyst class
    names = {p.name for p in (result.folder / "imagesTr").iterdir()}
    assert "kits23_case_00000_0000.nii.gz" in names
    assert any(n.startswith("kits19_case_") for n in names | {
        p.name for p in (result.folder / "imagesTs").iterdir()})


def test_uncovered_mask_value_is_a_case_error(data: dict[str, Path], tmp_path: Path) -> None:
    records = read_manifest(data["kits"])
    records[0].labels = {"kidney": [1, 2], "kidney tumor": [2]}  # value 3 left uncovered
    path = data["kits"].parent / "partial" / "kits23.jsonl"
    path.parent.mkdir(exist_ok=True)
    for record in records:  # keep paths valid from the new folder
        record.image = "../" + record.image
        record.mask = "../" + record.mask
    write_manifest(path, records)
    result = export_nnunet([path], tmp_path, dataset_id=7, name="P")
    assert [(e.case, e.kind) for e in result.errors] == [("case_00000", "label")]
    assert "[3]" in result.errors[0].message and result.errors[0].file.endswith(".nii.gz")
    assert "case_00000_0000.nii.gz" not in {p.name for p in (result.folder / "imagesTr").iterdir()}
    assert result.dataset_json["numTraining"] == 2


def test_bad_id_name_and_channel_mix(data: dict[str, Path], tmp_path: Path) -> None:
    assert dataset_folder(5, "KiTS") == "Dataset005_KiTS"
    with pytest.raises(ExportError, match="1 to 999"):
        dataset_folder(1000, "X")
    with pytest.raises(ExportError, match="letters"):
        dataset_folder(5, "a b")
    # nnU-Net cannot mark a channel missing: CT next to MR is refused, naming both datasets
    with pytest.raises(ExportError, match=r"kits23 lacks channel\(s\) T1.* that brats2021 has"):
        export_nnunet([data["kits"], data["brats"]], tmp_path, dataset_id=9, name="Mix")
    with pytest.raises(ExportError, match="brats2021 lacks channel"):
        export_nnunet([data["kits"], data["brats"]], tmp_path, dataset_id=9, name="Mix",
                      channels=["CT"])


def test_normalized_manifest_exports_and_cli(data: dict[str, Path], tmp_path: Path) -> None:
    run([Target("kits23", data["kits_root"])], tmp_path / "norm", workers=1, progress=False)
    done = runner.invoke(app, ["export", "nnunet", "--manifest", str(tmp_path / "norm" /
                               "kits23.jsonl"), "--dataset-id", "502", "--out",
                               str(tmp_path / "raw"), "--no-progress", "--format", "json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["folder"].endswith("Dataset502_kits23")
    assert summary["splits_final"] is True and summary["folds"] >= 1  # 4 cases, any split
    folder = Path(summary["folder"])
    image = nib.load(next((folder / "imagesTr").iterdir()))
    assert "".join(nib.aff2axcodes(image.affine)) == "RAS"


def test_mixed_modalities_never_get_ct_normalization(data: dict[str, Path]) -> None:
    entries = load_entries([data["kits"]])
    assert channel_names(entries) == {"0": "CT"}
    entries[1].record.modality, entries[1].record.channels = "MR", ["MR"]  # e.g. CHAOS MR
    entries[1].record.dataset = "chaos-mr"
    with pytest.raises(ExportError, match="lacks channel"):  # never CT normalization on MR
        channel_names(entries)


# ------------------------------------------------------------------ units nnU-Net expects (problem 1)

REGISTRY = Path(__file__).resolve().parents[1] / "registry" / "datasets"
#: canonical channel slots of an MR export and, per slot, the BraTS 2021 file suffix and the MSD
#: Task01 4D channel (its dataset.json: 0 FLAIR, 1 T1w, 2 t1gd, 3 T2w)
MR_SLOTS = [("T1", "t1", 1), ("T1 contrast-enhanced", "t1ce", 2), ("T2", "t2", 3),
            ("FLAIR", "flair", 0)]


@pytest.fixture(scope="module")
def normalized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`harmonize run` (native spacing, default intensity: CT window -> [0, 1], MR percentile
    z-score) on two CT and three MR datasets, and their source roots."""
    from harmonize.plugins.fabricators.msd import make_msd_task

    base = tmp_path_factory.mktemp("nnunet_norm")
    roots = {
        "kits23": make_kits23(base / "kits23", n_cases=3, seed=11),
        "kits19": make_kits(base / "kits19", release="kits19", n_cases=2, first_case=0, seed=12),
        "brats2021": make_brats2021(base / "brats", n_cases=2, n_validation=1, seed=13),
        "brats2023-gli": make_brats2023_gli(base / "brats23", n_cases=2, n_validation=0,
                                            second_timepoint=False, seed=15),
        "msd-braintumour": make_msd_task(base / "msd", task="Task01_BrainTumour", n_train=2,
                                         n_test=0, seed=14),
    }
    result = run([Target(d, r) for d, r in roots.items()], base / "norm", workers=1,
                 progress=False)
    assert not result.errors, result.errors
    return {"norm": base / "norm", **{f"root:{d}": r for d, r in roots.items()}}


def _canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A source file's voxels (float64) and affine in RAS+ closest canonical (nibabel)."""
    image = nib.as_closest_canonical(nib.load(path))
    return np.asarray(image.dataobj, dtype=np.float64), image.affine


def _exported(folder: Path) -> list[tuple[Path, str, str, int]]:
    """(file, dataset, case id, channel) of every exported image."""
    found = []
    for sub in ("imagesTr", "imagesTs"):
        for path in sorted((folder / sub).glob("*.nii.gz")):
            stem = path.name[: -len(".nii.gz")]
            key, channel = stem.rsplit("_", 1)
            dataset = next(d for d in ("kits23", "kits19", "brats2021", "brats2023-gli",
                                       "msd-braintumour") if key.startswith(d + "_"))
            found.append((path, dataset, key[len(dataset) + 1:], int(channel)))
    return found


def _source_ct(normalized: dict[str, Path], dataset: str, case: str) -> Path:
    return next(normalized[f"root:{dataset}"].rglob(f"{case}/imaging.nii.gz"))


def test_normalized_ct_is_exported_in_hu(normalized: dict[str, Path], tmp_path: Path) -> None:
    """Problem 1: after `harmonize run` the export copied CT mapped to [0, 1] under the name CT."""
    norm = normalized["norm"]
    result = export_nnunet([norm / "kits23.jsonl", norm / "kits19.jsonl"], tmp_path,
                           dataset_id=510, name="CT")
    assert result.ok, result.errors
    assert result.dataset_json["channel_names"] == {"0": "CT"}
    files = _exported(result.folder)
    assert {d for _, d, _, _ in files} == {"kits23", "kits19"} and len(files) == 5
    for path, dataset, case, _ in files:
        lo, hi = yaml.safe_load((REGISTRY / f"{dataset}.yaml").read_text())["ct_window"]
        source, affine = _canonical(_source_ct(normalized, dataset, case))
        written = nib.load(path)
        data = np.asarray(written.dataobj)
        assert data.dtype == np.int16, path  # integer HU stay integers
        assert np.array_equal(data, np.clip(source, lo, hi)), path  # HU, clipped to the window
        assert np.allclose(written.affine, affine)
    assert result.dataset_json["harmonize"]["intensity"] == {
        d: {"CT": {"units": "HU", "undone": ["ct_window"], "clipped_to": [[-200.0, 300.0]]}}
        for d in ("kits19", "kits23")}
    assert [w for w in result.warnings if "clipped to the run's window" in w] == [
        f"{d}: CT is exported in HU, clipped to the run's window(s) [-200, 300]; values outside "
        "were lost in `harmonize run` (export the `harmonize manifest` source manifest for "
        "unclipped HU)" for d in ("kits19", "kits23")]


def test_normalized_mr_is_exported_in_source_units(normalized: dict[str, Path],
                                                   tmp_path: Path) -> None:
    """MR: the per-image z-score is undone (nnU-Net z-scores itself, over the nonzero region),
    channels in canonical order whatever the file order (MSD Task01 ships FLAIR first)."""
    norm = normalized["norm"]
    result = export_nnunet([norm / "brats2021.jsonl", norm / "msd-braintumour.jsonl"], tmp_path,
                           dataset_id=511, name="MR")
    assert result.ok, result.errors
    assert list(result.dataset_json["channel_names"].values()) == [n for n, _, _ in MR_SLOTS]
    files = _exported(result.folder)
    assert {d for _, d, _, _ in files} == {"brats2021", "msd-braintumour"} and len(files) == 20
    for path, dataset, case, channel in files:
        _, suffix, msd_index = MR_SLOTS[channel]
        if dataset == "brats2021":
            source, affine = _canonical(next(normalized["root:brats2021"].rglob(
                f"{case}/{case}_{suffix}.nii.gz")))
        else:
            volume, affine = _canonical(next(normalized["root:msd-braintumour"].rglob(
                f"imagesTr/{case}.nii.gz")))
            source = volume[..., msd_index]
        lo, hi = np.percentile(source, (0.5, 99.5))  # the run's MR clip, computed here
        written = nib.load(path)
        assert np.allclose(np.asarray(written.dataobj, dtype=np.float64),
                           np.clip(source, lo, hi), atol=1e-3), path
        assert np.allclose(written.affine, affine)
        assert (np.asarray(written.dataobj) == 0).sum() == (np.clip(source, lo, hi) == 0).sum()
    assert result.dataset_json["harmonize"]["intensity"]["msd-braintumour"]["FLAIR"] == {
        "units": "source", "undone": ["percentile_zscore"]}
    assert not [w for w in result.warnings if "window" in w]


# ------------------------------------------------------------------ splits_final.json (problem 2)


def _split_manifest(tmp_path: Path, splits: list[str], patients: list[str] | None = None) -> Path:
    from harmonize.testing.normalized import make_normalized_dataset

    path = make_normalized_dataset(tmp_path / "m", "kits23", n_cases=len(splits),
                                   shape=(8, 8, 4), splits=splits)
    if patients is not None:
        records = read_manifest(path)
        for record, patient in zip(records, patients):
            record.patient_id = patient
        write_manifest(path, records)
    return path


def _check_folds(folds: list[dict[str, list[str]]], cases: list[str],
                 patient_of: dict[str, str]) -> None:
    """What nnU-Net needs and what a patient-level split means, checked from the file alone."""
    for fold in folds:
        assert set(fold) == {"train", "val"} and fold["train"] and fold["val"]
        assert sorted(fold["train"] + fold["val"]) == sorted(cases)  # every case, once
        assert not {patient_of[c] for c in fold["train"]} & {patient_of[c] for c in fold["val"]}
    assert sorted(c for fold in folds for c in fold["val"]) == sorted(cases)  # vals partition


@pytest.mark.parametrize("n", [2, 3, 7])
def test_splits_final_for_few_training_cases(tmp_path: Path, n: int) -> None:
    """Problem 2: no val case used to mean no splits_final.json, and nnU-Net's own 5-fold split
    fails below 5 cases. Now: min(5, patients) patient-level folds."""
    patients = [f"p{i // 2 if n == 7 else i}" for i in range(n)]  # n=7: pairs share a patient
    result = export_nnunet([_split_manifest(tmp_path, ["train"] * n, patients)], tmp_path / "raw",
                           dataset_id=520, name="Small")
    written = json.loads((result.folder / "splits_final.json").read_text())
    assert written == result.splits
    cases = [f"kits23_{i:03d}" for i in range(n)]
    _check_folds(written, cases, dict(zip(cases, patients)))
    assert len(written) == min(5, len(set(patients)))
    assert not [w for w in result.warnings if "split" in w]


def test_splits_final_for_one_case_none_and_the_manifest_split(tmp_path: Path) -> None:
    one = export_nnunet([_split_manifest(tmp_path / "1", ["train"])], tmp_path / "r1",
                        dataset_id=521, name="One")
    assert json.loads((one.folder / "splits_final.json").read_text()) == [
        {"train": ["kits23_000"], "val": ["kits23_000"]}]  # nnU-Net trains; val = train
    assert any("one patient" in w and "validates on the same" in w for w in one.warnings)
    none = export_nnunet([_split_manifest(tmp_path / "0", ["test", "test"])], tmp_path / "r0",
                         dataset_id=522, name="None")
    assert not (none.folder / "splits_final.json").exists() and none.splits is None
    assert any("no labelled train or val case" in w for w in none.warnings)
    given = export_nnunet([_split_manifest(tmp_path / "m", ["train", "val", "train", "test"])],
                          tmp_path / "rm", dataset_id=523, name="Given")
    assert json.loads((given.folder / "splits_final.json").read_text()) == [
        {"train": ["kits23_000", "kits23_002"], "val": ["kits23_001"]}]


# ------------------------------------------------------------------ nnU-Net v2 itself

NNUNET_REQUIREMENTS = Path(__file__).with_name("nnunet-requirements.txt")
NNUNET_DRIVER = Path(__file__).with_name("nnunet_driver.py")


@pytest.fixture(scope="session")
def nnunet_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with nnU-Net v2 and exactly the modules its planning and split loading import
    beyond the `test` extra (tests/nnunet-requirements.txt), installed with ``pip --no-deps
    --target`` beside the running venv (``<venv>/harmonize-test-nnunet``) and reused while the
    list is unchanged. Only the nnU-Net subprocess puts it on its path: the test venv (and its
    pinned CPU torch) is never changed. Needs the package index (PyPI) the first time."""
    wanted = hashlib.sha256(NNUNET_REQUIREMENTS.read_bytes()).hexdigest()
    home = Path(sys.prefix)
    target = (home if os.access(home, os.W_OK) else tmp_path_factory.mktemp("nnunet-site")
              ) / "harmonize-test-nnunet"
    stamp = target / ".requirements-sha256"
    if stamp.is_file() and stamp.read_text() == wanted:
        return target
    staging = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-input",
         "--disable-pip-version-check", "--target", str(staging), "-r", str(NNUNET_REQUIREMENTS)],
        capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"installing nnU-Net for the test failed:\n{done.stderr[-4000:]}"
    (staging / stamp.name).write_text(wanted)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _run_nnunet(site: Path, base: Path, args: dict) -> dict:
    env = {**os.environ, "nnUNet_raw": str(base / "raw"),
           "nnUNet_preprocessed": str(base / "preprocessed"),
           "nnUNet_results": str(base / "results"), "nnUNet_def_n_proc": "1",
           "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, str(NNUNET_DRIVER), json.dumps(args)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + "\n" + done.stderr[-6000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_nnunet_plans_and_preprocesses_the_export(normalized: dict[str, Path], tmp_path: Path,
                                                  nnunet_site: Path) -> None:
    """nnU-Net v2's own verify_dataset_integrity, fingerprint, planning and 3d_fullres
    preprocessing on a CT export and an MR export of `harmonize run` output (two datasets
    each; nnU-Net takes no CT next to MR in one dataset), and its trainer's do_split on a
    two-case export without a val case."""
    norm, raw = normalized["norm"], tmp_path / "raw"
    ct = export_nnunet([norm / "kits23.jsonl", norm / "kits19.jsonl"], raw, dataset_id=501,
                       name="CT", regions=True)
    mr = export_nnunet([norm / "brats2021.jsonl", norm / "brats2023-gli.jsonl"], raw,
                       dataset_id=502, name="MR")
    small_root = make_kits23(tmp_path / "small", n_cases=2, seed=21)
    small = export_nnunet([_manifest("kits23", small_root, tmp_path / "m_small",
                                     {"case_00000": "train", "case_00001": "train"})],
                          raw, dataset_id=503, name="Small")
    assert ct.ok and mr.ok and small.ok
    found = _run_nnunet(nnunet_site, tmp_path, {"datasets": [501, 502, 503], "samples": 100000,
                                                "splits": {"503": [0, 1]}, "regions": [501]})
    pre = tmp_path / "preprocessed"

    # CT: nnU-Net's fingerprint sees HU (the source files' foreground values), not [0, 1]
    fingerprint = json.loads((pre / "Dataset501_CT" / "dataset_fingerprint.json").read_text())
    seen = fingerprint["foreground_intensity_properties_per_channel"]["0"]
    per_case = []
    for path, dataset, case, _ in _exported(ct.folder):
        if path.parent.name == "imagesTr":
            source, _ = _canonical(_source_ct(normalized, dataset, case))
            label, _ = _canonical(next(normalized[f"root:{dataset}"].rglob(
                f"{case}/segmentation.nii.gz")))
            per_case.append(source[label > 0])
    pooled = np.concatenate(per_case)
    assert (seen["min"], seen["max"]) == (pooled.min(), pooled.max()) == (10.0, 180.0)
    assert pooled.min() <= seen["percentile_00_5"] <= seen["percentile_99_5"] <= pooled.max()
    assert abs(seen["mean"] - np.mean([c.mean() for c in per_case])) < 2.0  # equal per case
    plans = json.loads((pre / "Dataset501_CT" / "nnUNetPlans.json").read_text())
    fullres = plans["configurations"]["3d_fullres"]
    assert fullres["normalization_schemes"] == ["CTNormalization"]
    assert plans["foreground_intensity_properties_per_channel"]["0"] == seen

    # MR: z-score per image, over the nonzero region: BraTS's zero background is zero again, so
    # nnU-Net's crop to nonzero shrinks the images and it masks its z-score (z-scored images
    # have no zero background and got neither)
    plans = json.loads((pre / "Dataset502_MR" / "nnUNetPlans.json").read_text())
    fullres = plans["configurations"]["3d_fullres"]
    assert fullres["normalization_schemes"] == ["ZScoreNormalization"] * 4
    assert fullres["use_mask_for_norm"] == [True] * 4
    for name, result in (("Dataset501_CT", ct), ("Dataset502_MR", mr)):
        cases = sorted((pre / name / fullres["data_identifier"]).glob("*.b2nd"))
        assert len([c for c in cases if not c.name.endswith("_seg.b2nd")]) == len(result.training)

    # --regions: nnU-Net decodes every label back from its region scores
    assert found["regions"]["501"] == {str(v): v for v in (1, 2, 3)}
    assert ct.dataset_json["labels"]["kidney"] == [1, 2, 3]

    # a two-case export without a val case: nnU-Net's trainer reads its folds
    assert (pre / "Dataset503_Small" / "splits_final.json").is_file()  # copied by the planner
    assert small.splits is not None and len(small.splits) == 2
    assert found["splits"]["503"] == {str(f): {"train": s["train"], "val": s["val"]}
                                      for f, s in enumerate(small.splits)}
