"""LiTS and MSD Task03 hold the same volumes under other names, formats and orientations:
fingerprints find them, splits keep each shared image on one side, `harmonize duplicates` reports."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.msd import make_msd_task
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.manifest.build import build_manifest, read_manifest
from harmonize.manifest.duplicates import find_duplicates
from harmonize.manifest.splits import find_leaks
from harmonize.plugin.discovery import discover


def relabel_as_lits(msd_task, lits_root):
    """Store each labelled MSD liver case as LiTS does: volume-N.nii / segmentation-N.nii,
    uncompressed, with the voxel axes permuted and flipped (same world grid, other layout)."""
    lits_root.mkdir(parents=True)
    for image in sorted((msd_task / "imagesTr").glob("liver_*.nii.gz")):
        number = int(image.name.split("_")[1].split(".")[0])
        for src, name in ((image, "volume"), (msd_task / "labelsTr" / image.name, "segmentation")):
            img = nib.load(src)
            data = np.asarray(img.dataobj)
            # new voxel (i, j, k) = old (k, n_j - 1 - j, i): permute axes 0<->2 and flip axis 1
            new = np.flip(np.transpose(data, (2, 1, 0)), axis=1)
            perm = np.zeros((4, 4))
            perm[0, 2] = perm[2, 0] = perm[3, 3] = 1
            perm[1, 1], perm[1, 3] = -1, data.shape[1] - 1
            affine = img.affine @ perm
            nib.save(nib.Nifti1Image(np.ascontiguousarray(new), affine), lits_root / f"{name}-{number}.nii")


@pytest.fixture
def shared(catalog, tmp_path):
    msd = make_msd_task(tmp_path / "msd", task="Task03_Liver", n_train=4, n_test=1)
    lits = tmp_path / "lits"
    relabel_as_lits(msd, lits)
    return msd, lits


def test_same_volume_in_two_datasets_is_found_and_kept_in_one_split(catalog, shared, tmp_path):
    msd, lits = shared
    out = tmp_path / "manifests"
    for dataset, root in (("msd-liver", msd), ("lits", lits)):
        plugin = catalog.get(dataset)
        result = build_manifest(plugin, discover(plugin, root), out, seed=1)
        assert result.errors == []
    records = read_manifest(out / "msd-liver.jsonl") + read_manifest(out / "lits.jsonl")
    report = find_duplicates(records)
    pairs = {tuple(sorted(f"{m.dataset}/{m.case_id}" for m in g.members)) for g in report.groups}
    numbers = [int(p.name.split("_")[1].split(".")[0]) for p in (msd / "imagesTr").glob("liver_*.nii.gz")]
    assert pairs == {(f"lits/volume-{n}", f"msd-liver/liver_{n}") for n in numbers}
    assert report.without_fingerprint == [] and report.leaks == []
    assert find_leaks(records) == []  # lits was written second and followed msd-liver's splits


def test_duplicates_command_reports_and_fails_on_a_leak(catalog, shared, tmp_path):
    msd, lits = shared
    out = tmp_path / "manifests"
    for dataset, root in (("msd-liver", msd), ("lits", lits)):
        plugin = catalog.get(dataset)
        build_manifest(plugin, discover(plugin, root), out)
    runner = CliRunner()
    ok = runner.invoke(app, ["duplicates", str(out), "--format", "json"])
    assert ok.exit_code == 0, ok.output
    assert len(json.loads(ok.stdout)["groups"]) == 4
    # move one LiTS case to another split by hand: now the same image sits on both sides
    path = out / "lits.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0]["split"] = "val" if lines[0]["split"] != "val" else "train"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    leak = runner.invoke(app, ["duplicates", str(out)])
    assert leak.exit_code == 1 and "LEAK" in leak.output
    assert runner.invoke(app, ["validate", str(out / "lits.jsonl"), str(out / "msd-liver.jsonl")]).exit_code == 1
