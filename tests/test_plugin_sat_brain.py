"""BraTS 2023 MEN, MET, PED and SSA: YAML-only datasets in their released layouts, and one
canonical name for the non-enhancing tumour core across brain-tumour datasets.

The oracle is the fabricated release itself (folders and case ids transcribed from SAT-DS's
processor.py and data/jsonl into the fabricator, label files read back with nibabel), never the
layout reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.sat_brain import BRATS_SUBS, MISSING, make_brats2023_sub
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.labels.vocabulary import load_vocabulary
from harmonize.loader import HarmonizedDataset
from harmonize.manifest.build import read_manifest
from harmonize.plugin.catalog import load_catalog

RUNNER = CliRunner()
BRATS_CLASSES = {"brain tumor": [1, 2, 3], "brain tumor core": [1, 3],
                 "enhancing brain tumor": [3], "necrotic brain tumor core": [1],
                 "peritumoral edema": [2]}
CHANNELS = ["T1", "T1 contrast-enhanced", "T2", "FLAIR"]


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _expected(sub: str) -> tuple[dict[str, str], set[str]]:
    """case id -> folder its files come from (a later folder listed in BRATS_SUBS wins, as
    MEN's Train-Fix over Train), and the t1n files that must be reported as skipped."""
    chosen: dict[str, str] = {}
    for folder, cases in BRATS_SUBS[sub].items():
        for case in cases:
            chosen[case] = folder
    skipped = {f"{folder}/{case}/{case}-t1n.nii.gz" for folder, cases in BRATS_SUBS[sub].items()
               for case in cases if chosen[case] != folder or (folder, case) in MISSING}
    return {c: f for c, f in chosen.items() if (f, c) not in MISSING}, skipped


@pytest.mark.parametrize("sub", sorted(BRATS_SUBS))
def test_brats2023_sub_challenge_in_its_released_layout(sub, tmp_path):
    dataset = f"brats2023-{sub}"
    root = make_brats2023_sub(tmp_path / "src", sub)
    want, want_skipped = _expected(sub)
    found = json.loads(_invoke("discover", "-d", dataset, "-r", str(root), "--format", "json"))
    assert sorted(c["case_id"] for c in found["cases"]) == sorted(want)
    assert {Path(s["path"]).relative_to(root).as_posix() for s in found["skipped"]} == \
        want_skipped
    assert not found["errors"]
    _invoke("manifest", "-d", dataset, "-r", str(root), "-o", str(tmp_path / "m"))
    records = {r.case_id: r for r in read_manifest(tmp_path / "m" / f"{dataset}.jsonl")}
    assert sorted(records) == sorted(want)
    for case_id, record in records.items():
        folder = root / want[case_id] / case_id
        assert record.patient_id == case_id[: -len("-000")]
        assert record.official_split == "train"
        assert record.channels == CHANNELS
        assert [(tmp_path / "m" / p).resolve() for p in record.image] == [
            (folder / f"{case_id}-{s}.nii.gz").resolve() for s in ("t1n", "t1c", "t2w", "t2f")]
        assert (tmp_path / "m" / str(record.mask)).resolve() == \
            (folder / f"{case_id}-seg.nii.gz").resolve()
        values = np.unique(np.asarray(nib.load(folder / f"{case_id}-seg.nii.gz").dataobj))
        assert values.tolist() == [0, 1, 2, 3]
        assert record.labels == BRATS_CLASSES
    if sub == "men":  # one patient, two scans; the Fix copy is another label map
        assert records["BraTS-MEN-01435-001"].patient_id == "BraTS-MEN-01435"
        fixed, original = (np.asarray(nib.load(root / f / "BraTS-MEN-00023-000" /
                                               "BraTS-MEN-00023-000-seg.nii.gz").dataobj)
                           for f in ("BraTS-MEN-Train-Fix", "BraTS-MEN-Train"))
        assert not np.array_equal(fixed, original)


def test_one_region_one_name_across_brain_tumour_datasets():
    """BraTS's NCR/NET (2021), NETC (2023) and MSD Task01's 'non-enhancing tumor' are one
    region: every descriptor names the class holding exactly that value alike, and MSD's
    name resolves to it."""
    catalog = load_catalog(entry_points=False)
    region_value = {"brats2021": 1, "brats2023-gli": 1, "msd-braintumour": 2,
                    **{f"brats2023-{s}": 1 for s in BRATS_SUBS}}
    names = set()
    for dataset, value in region_value.items():
        classes = catalog.get(dataset).descriptor.classes
        names |= {name for name, values in classes.items() if list(values) == [value]}
    assert names == {"necrotic brain tumor core"}
    vocabulary = load_vocabulary()
    for alias in ("non-enhancing brain tumor", "non-enhancing tumor", "NETC", "NCR/NET"):
        assert vocabulary.resolve(alias) == "necrotic brain tumor core"
    assert "non-enhancing brain tumor" not in vocabulary.names


def test_brats2023_men_run_loader_and_sat_export(tmp_path):
    root = make_brats2023_sub(tmp_path / "src", "men", seed=4)
    out = tmp_path / "out"
    _invoke("run", "-d", "brats2023-men", "-r", str(root), "-o", str(out), "-w", "1",
            "--no-progress")
    classes = ["necrotic brain tumor core", "peritumoral edema", "enhancing brain tumor"]
    data = HarmonizedDataset(out / "brats2023-men.jsonl", patch_size=None, classes=classes)
    assert len(data) == 4
    for i in range(len(data)):
        sample, record = data[i], data.records[i]
        folder = "BraTS-MEN-Train-Fix" if record.case_id == "BraTS-MEN-00023-000" else \
            "BraTS-MEN-Train"
        seg = nib.as_closest_canonical(nib.load(
            root / folder / record.case_id / f"{record.case_id}-seg.nii.gz"))
        values = np.asarray(seg.dataobj)  # RAS, native 1 mm: voxel for voxel
        assert sample["image"].shape[0] == 4
        for k, name in enumerate(sample["classes"]):
            want = values == BRATS_CLASSES[name][0]
            np.testing.assert_array_equal(sample["mask"][k].numpy().astype(bool), want,
                                          err_msg=f"{record.case_id} {name}")
    done = json.loads(_invoke("export", "sat", "--manifest", str(out / "brats2023-men.jsonl"),
                              "--out", str(tmp_path / "sat"), "--no-progress", "--format",
                              "json"))
    lines = [json.loads(x) for x in Path(done["jsonl"]["BraTS2023_MEN"]).read_text().splitlines()]
    assert {x["dataset"] for x in lines} == {"BraTS2023_MEN"}
    assert lines[0]["label"] == ["necrotic brain tumor core", "brain edema",
                                 "enhancing brain tumor", "brain tumor"]
