"""The fast cache: same samples as the files, lazy and CLI builds, invalidation, corruption."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from harmonize.plugins.fabricators.kits import make_kits23
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.errors import ReadError
from harmonize.loader.cache import CacheWarning, VolumeCache, build_cache, cache_key, read_case
from harmonize.loader.dataset import HarmonizedDataset
from harmonize.manifest.build import build_manifest, read_manifest, write_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover
from harmonize.testing.normalized import make_normalized_dataset


def kits_manifest(tmp: Path, n_cases: int = 2) -> Path:
    plugin = load_catalog(entry_points=False).get("kits23")
    root = make_kits23(tmp / "kits23", n_cases=n_cases)
    return build_manifest(plugin, discover(plugin, root), tmp / "manifests").path


@pytest.fixture()
def both(tmp_path) -> list[Path]:
    mr = make_normalized_dataset(tmp_path / "manifests", "mrk", n_cases=2, modality="MR",
                                 channels=("T1", "T2"), four_d=False)
    return [kits_manifest(tmp_path), mr]


def entry_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_cached_samples_equal_file_samples(both, tmp_path):
    kwargs = {"classes": ["kidney", "kidney tumor", "left kidney"], "patch_size": 12,
              "foreground_fraction": 0.5}
    files = HarmonizedDataset(both, **kwargs)
    cached = HarmonizedDataset(both, cache=tmp_path / "c", **kwargs)
    for key in [(i, 100 + i) for i in range(len(files))] * 2:
        a, b = files[key], cached[key]
        for name in ("image", "mask", "label_present", "channel_present", "start"):
            assert torch.equal(a[name], b[name]), name
    record = files.records[0]
    folder = tmp_path / "c" / record.dataset / record.case_id
    short = cache_key(record, files.roots[0])[:16]
    assert entry_files(folder) == [f"foreground-{short}.npz", f"image-{short}.npy",
                                   f"label-{short}.npy", f"meta-{short}.json"]
    case = cached.load_case(0)
    assert isinstance(case.image, np.memmap) and isinstance(case.label, np.memmap)
    assert case.label.dtype == np.uint8
    np.testing.assert_array_equal(case.image, read_case(record, files.roots[0]).image)


def test_pickled_dataset_leaves_open_volumes_behind(both, tmp_path):
    ds = HarmonizedDataset(both[1], cache=tmp_path / "c", patch_size=8)
    ds[0]
    copy = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker receives
    assert len(pickle.dumps(ds)) < 100_000 and not copy.cache._open
    assert torch.equal(copy[(0, 1)]["image"], ds[(0, 1)]["image"])


def test_default_cache_lives_next_to_the_manifest(both):
    ds = HarmonizedDataset(both[0], cache=True, patch_size=8)
    ds[0]
    assert (both[0].parent / "cache" / "kits23" / ds.records[0].case_id).is_dir()


def test_changed_record_invalidates_its_entry(both, tmp_path):
    manifest = both[1]
    cache = VolumeCache(tmp_path / "c")
    record = read_manifest(manifest)[0]
    assert cache.ensure(record, manifest.parent) == "built"
    assert cache.ensure(record, manifest.parent) == "ok"
    old = entry_files(cache.folder(record, manifest.parent))
    # labels/split do not change voxels; the source hash and engine settings do
    record.split, record.annotated = "test", ["left kidney"]
    assert cache.ensure(record, manifest.parent) == "ok"
    record.extra["normalization"] = {"percentiles": [1, 99], "zscore": True}
    assert cache.ensure(record, manifest.parent) == "built"
    new = entry_files(cache.folder(record, manifest.parent))
    assert len(new) == 4 and not set(new) & set(old)  # old entry removed


def corrupt(path: Path, how: str) -> None:
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00not a cache file\xff" * 10)
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("part, how", [("image", "truncate"), ("label", "garbage"), ("meta", "garbage"),
                                       ("foreground", "truncate"), ("image", "empty")])
def test_corrupt_entry_is_rebuilt_not_crashed(both, tmp_path, part, how):
    manifest = both[0]
    ds = HarmonizedDataset(manifest, cache=tmp_path / "c", patch_size=10)
    expected = ds[(0, 3)]
    record = ds.records[0]
    folder = tmp_path / "c" / record.dataset / record.case_id
    target = next(p for p in folder.iterdir() if p.name.startswith(part))
    corrupt(target, how)
    fresh = HarmonizedDataset(manifest, cache=tmp_path / "c", patch_size=10)  # new process memo
    with pytest.warns(CacheWarning, match="rebuilding"):
        sample = fresh[(0, 3)]
    assert torch.equal(sample["image"], expected["image"]) and torch.equal(sample["mask"], expected["mask"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        HarmonizedDataset(manifest, cache=tmp_path / "c", patch_size=10)[(0, 3)]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left


def test_verify_detects_silent_corruption(both, tmp_path):
    manifest = both[1]
    report = build_cache([manifest], tmp_path / "c")
    assert report.counts == {"ok": 0, "built": 2, "rebuilt": 0} and not report.errors
    record = read_manifest(manifest)[0]
    folder = VolumeCache(tmp_path / "c").folder(record, manifest.parent)
    image = next(folder.glob("image-*.npy"))
    data = bytearray(image.read_bytes())
    data[-5] ^= 0xFF  # same size, one flipped byte: only the hash can tell
    image.write_bytes(bytes(data))
    assert build_cache([manifest], tmp_path / "c").counts["ok"] == 2
    assert build_cache([manifest], tmp_path / "c", verify=True).counts == {"ok": 1, "built": 0, "rebuilt": 1}


def test_cli_cache_builds_then_finds_up_to_date(both, tmp_path):
    runner = CliRunner()
    args = ["cache", "--manifest", str(both[0]), "--manifest", str(both[1]),
            "--cache-dir", str(tmp_path / "c"), "--format", "json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) | {} == {"cache": str(tmp_path / "c"), "records": 4, "ok": 0,
                                             "built": 4, "rebuilt": 0, "errors": []}
    second = runner.invoke(app, [*args, "--workers", "2"])
    assert json.loads(second.stdout)["ok"] == 4
    table = runner.invoke(app, args[:-2])
    assert "4 up to date" in table.output
    wrong = runner.invoke(app, [*args, "--split", "training"])  # a typo must not cache nothing quietly
    assert wrong.exit_code == 2 and "--split must be one of" in wrong.output


def test_cli_cache_reports_missing_source(tmp_path):
    manifest = kits_manifest(tmp_path)
    records = read_manifest(manifest)
    (manifest.parent / records[1].image).unlink()
    result = CliRunner().invoke(app, ["cache", "-m", str(manifest), "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["built"] == 1 and len(report["errors"]) == 1
    error = report["errors"][0]
    assert error["case"] == records[1].case_id and error["file"].endswith("imaging.nii.gz")
    with pytest.raises(ReadError, match="does not exist"):
        VolumeCache(tmp_path / "c").load(records[1], manifest.parent)
    write_manifest(manifest, records[:1])  # the manifest without the broken case caches fine
    assert CliRunner().invoke(app, ["cache", "-m", str(manifest)]).exit_code == 0
