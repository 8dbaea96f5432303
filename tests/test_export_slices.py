"""2D slice export (`harmonize export slices`) and its verifier, on fabricated KiTS23 / BraTS."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.brats import make_brats2021
from harmonize.plugins.fabricators.kits import make_kits23
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.engine.pipeline import Target, run
from harmonize.export import ExportError
from harmonize.export.png import PALETTE, overlay, read_png, write_png
from harmonize.export.slice_splits import seeded_case_splits, seeded_split_modes
from harmonize.export.slices import SliceOptions, export_slices
from harmonize.export.verify import POINTS, verify_export
from harmonize.manifest.build import build_manifest, read_manifest, write_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover
from harmonize.read.case import record_files

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """KiTS23 (3 cases) as a source manifest and as a normalized one; BraTS 2021 source."""
    base = tmp_path_factory.mktemp("slices")
    catalog = load_catalog(entry_points=False)
    kits_root = make_kits23(base / "kits23", n_cases=3, seed=4)
    plugin = catalog.get("kits23")
    build_manifest(plugin, discover(plugin, kits_root), base / "manifests")
    run([Target("kits23", kits_root)], base / "normalized", workers=1, progress=False)
    brats_root = make_brats2021(base / "brats", n_cases=2, seed=1)
    plugin = catalog.get("brats2021")
    build_manifest(plugin, discover(plugin, brats_root), base / "brats_manifests")
    return {"base": base, "source": base / "manifests" / "kits23.jsonl",
            "normalized": base / "normalized" / "kits23.jsonl",
            "brats": base / "brats_manifests" / "brats2021.jsonl"}


@pytest.fixture(scope="module")
def exported(data: dict[str, Path]) -> Path:
    out = data["base"] / "export"
    result = export_slices([data["source"]], out)
    assert result.ok, result.errors
    return out


def test_kits23_2d_rule_gives_the_seed_counts() -> None:
    ids = [f"case_{n:05d}" for n in [*range(0, 300), *range(400, 589)]]
    assert seeded_split_modes()["kits23-2d"].seed == 42  # the name users type, as registry data
    splits = seeded_case_splits(ids, 42)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [342, 48, 99]
    reference = sorted(ids)  # the seed's own code path: global random, seed 42
    random.seed(42)
    random.shuffle(reference)
    assert splits["train"] == sorted(reference[:342])
    assert splits["val"] == sorted(reference[342:390])
    assert splits["test"] == sorted(reference[390:])


def test_layout_pixels_and_csv_match_an_independent_computation(
    data: dict[str, Path], exported: Path,
) -> None:
    records = read_manifest(data["source"])
    summary = json.loads((exported / "metadata" / "dataset_summary.json").read_text())
    assert summary["image"]["ct_window"] == [-200.0, 300.0]
    assert summary["palette"] == {"1": [0, 255, 0], "2": [255, 0, 0], "3": [255, 255, 0]}
    total = 0
    for record in records:
        # independent: nibabel's closest canonical, window [-200, 300] -> 0..65535, truncated as
        # the published conversion does (tests/test_export_kits23_2d.py has it verbatim)
        folder = data["source"].parent
        image = nib.as_closest_canonical(nib.load(folder / record.image))
        mask = nib.as_closest_canonical(nib.load(folder / record.mask)).get_fdata()
        hu = image.get_fdata()
        assert hu.shape[2] == json.loads(
            (exported / "metadata" / "cases" / f"{record.case_id}.json").read_text())["slices"]
        for z in (0, hu.shape[2] // 2, hu.shape[2] - 1):
            name = f"{record.case_id}_slice_{z:03d}.png"
            pixels, mode = read_png(exported / "images" / name)
            expected = (np.clip(hu[:, :, z], -200, 300) + 200) / 500 * 65535
            assert mode == "I;16" and pixels.dtype == np.uint16
            assert np.array_equal(pixels, expected.astype(np.uint16))
            labels, mode = read_png(exported / "masks" / name)
            assert mode == "L" and np.array_equal(labels, mask[:, :, z].astype(np.uint8))
            colours, _ = read_png(exported / "masks_visible" / name)
            assert (colours[labels == 2] == [255, 0, 0]).all()  # the highest value drawn last
            assert (colours[labels == 0].sum(axis=-1) == 0).sum() > 0.5 * (labels == 0).sum()
        total += hu.shape[2]
    assert summary["slices"] == total
    rows = []
    for split in ("train", "val", "test"):
        with open(exported / "splits" / f"{split}_slices.csv", newline="") as fh:
            rows += list(csv.DictReader(fh))
        listed = (exported / "splits" / f"{split}.txt").read_text().split()
        # KiTS23's default is the published seed-42 split (tests/test_export_kits23_2d.py)
        assert listed == seeded_case_splits([r.case_id for r in records], 42)[split]
    assert len(rows) == total
    middle = [r for r in rows if r["slice"] == "12" and r["case_id"] == records[0].case_id][0]
    labels, _ = read_png(exported / middle["mask"])
    assert middle["kidney tumor"] == str(int((labels == 2).any()))
    assert middle["kidney"] == str(int((labels > 0).any()))


def test_overlay_is_60_percent_ct_and_40_percent_colour_inside_its_contours() -> None:
    image = np.full((11, 11), 32896, dtype=np.uint16)  # grey: 32896 / 65535 * 255 = 128.002 -> 128
    image[0, 0] = 65535
    mask = np.zeros((11, 11), dtype=np.uint8)
    mask[2:9, 2:9] = 2
    got = overlay(image, mask)
    assert got[5, 5].tolist() == [179, 77, 77]  # round(0.6 * 128 + 0.4 * (255, 0, 0))
    assert got[2, 2].tolist() == [255, 0, 0]  # the contour, in the class colour
    assert got[0, 0].tolist() == [255, 255, 255] and got[10, 10].tolist() == [128, 128, 128]
    assert PALETTE[0].tolist() == [0, 0, 0] and len({tuple(c) for c in PALETTE[1:40]}) == 39


def test_verify_passes_every_point(exported: Path) -> None:
    report = verify_export(exported)
    assert set(report.points) == set(POINTS)
    assert report.ok, {n: p.problems[:3] for n, p in report.points.items() if p.problems}
    assert all(p.checked > 0 for p in report.points.values())


def _break(out: Path, how: str) -> None:
    name = "case_00000_slice_005.png"
    if how == "pairing":
        (out / "overlays" / name).unlink()
    elif how == "label_values":
        labels, _ = read_png(out / "masks" / name)
        labels[0, 0] = 9
        write_png(out / "masks" / name, labels)
    elif how == "overlay_colours":
        colours, _ = read_png(out / "masks_visible" / name)
        colours[0, 0] = [1, 2, 3]
        write_png(out / "masks_visible" / name, colours)
    elif how == "round_trip":
        pixels, _ = read_png(out / "images" / name)
        pixels[3, 3] = pixels[3, 3] ^ 1  # one bit: the overlay (image // 257) barely notices
        write_png(out / "images" / name, pixels)
        labels, _ = read_png(out / "masks" / name)
        write_png(out / "overlays" / name, overlay(pixels, labels))
    elif how == "dtypes":
        pixels, _ = read_png(out / "images" / name)
        write_png(out / "images" / name, (pixels // 257).astype(np.uint8))
    elif how == "shapes":
        labels, _ = read_png(out / "masks" / name)
        write_png(out / "masks" / name, labels[:-1])
    elif how == "slice_range":
        for folder in ("images", "masks", "masks_visible", "overlays"):
            shutil.copy(out / folder / name, out / folder / "case_00000_slice_999.png")
    elif how == "file_counts":
        for folder in ("images", "masks", "masks_visible", "overlays"):
            (out / folder / name).unlink()
    elif how == "splits":
        test = (out / "splits" / "test.txt").read_text().split()
        (out / "splits" / "train.txt").write_text("\n".join(["case_00000", *test]) + "\n")


@pytest.mark.parametrize("point", ["pairing", "label_values", "overlay_colours", "round_trip",
                                   "dtypes", "shapes", "slice_range", "file_counts", "splits"])
def test_verify_fails_the_right_point(exported: Path, tmp_path: Path, point: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    _break(broken, point)
    report = verify_export(broken)
    assert not report.points[point].passed, point
    splits = json.loads((broken / "splits" / "splits.json").read_text())
    where = {"file_counts": [s for s in splits if "case_00000" in splits[s]][0] + ":",
             "splits": "train.txt"}.get(point, "case_00000")
    assert any(where in p for p in report.points[point].problems), report.points[point].problems
    untouched = {"pairing": ["label_values", "round_trip", "splits", "dtypes"],
                 "overlay_colours": ["round_trip", "label_values", "pairing"],
                 "round_trip": ["overlay_colours", "label_values", "pairing", "dtypes"],
                 "splits": ["round_trip", "pairing"]}.get(point, [])
    for other in untouched:
        assert report.points[other].passed, (other, report.points[other].problems[:2])


def test_normalized_manifest_gives_the_same_pngs_and_refuses_lost_values(
    data: dict[str, Path], exported: Path,
) -> None:
    out = data["base"] / "from_normalized"
    result = export_slices([data["normalized"]], out)
    assert result.ok, result.errors
    for name in ("case_00001_slice_000.png", "case_00002_slice_010.png"):
        for folder in ("images", "masks", "overlays"):
            assert np.array_equal(read_png(out / folder / name)[0],
                                  read_png(exported / folder / name)[0])
    assert verify_export(out).ok
    wide = export_slices([data["normalized"]], data["base"] / "wide",
                         SliceOptions(window=(-1000.0, 1000.0)))
    assert len(wide.errors) == 3 and not wide.cases
    assert "clipped to [-200, 300]" in wide.errors[0].message
    assert "source manifest" in (wide.errors[0].hint or "")


def test_skip_existing_resumes_and_redoes_damaged_cases(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "resume"
    first = export_slices([data["source"]], out)
    stamp = (out / "images" / "case_00001_slice_000.png").stat().st_mtime_ns
    (out / "masks" / "case_00000_slice_003.png").unlink()
    again = export_slices([data["source"]], out, skip_existing=True)
    assert sorted(again.skipped) == ["case_00001", "case_00002"]
    assert (out / "masks" / "case_00000_slice_003.png").is_file()
    assert (out / "images" / "case_00001_slice_000.png").stat().st_mtime_ns == stamp
    assert again.splits == first.splits and verify_export(out).ok


def test_stale_slices_of_a_shorter_case_are_removed(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "stale"
    export_slices([data["source"]], out)
    for folder in ("images", "masks", "masks_visible", "overlays"):
        shutil.copy(out / folder / "case_00000_slice_000.png",
                    out / folder / "case_00000_slice_500.png")
    result = export_slices([data["source"]], out, skip_existing=True)
    assert "images/case_00000_slice_500.png" in result.removed
    assert verify_export(out).ok
    other = export_slices([data["brats"]], out)  # the folder now holds the BraTS export only
    assert "metadata/cases/case_00000.json" in other.removed
    assert not list((out / "images").glob("case_*")) and verify_export(out).ok


def test_mr_channels_raw_label_values_and_channel_choice(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "brats"
    result = export_slices([data["brats"]], out, SliceOptions(channel="FLAIR"))
    assert result.ok, result.errors
    info = result.cases["BraTS2021_00000"]
    assert info["channel"] == 3 and info["allowed_values"] == [0, 1, 2, 4]
    values = set()
    for path in (out / "masks").glob("BraTS2021_00000_*.png"):
        values |= set(np.unique(read_png(path)[0]).tolist())
    assert values == {0, 1, 2, 4}  # the dataset's own values, not remapped
    assert (out / "images" / "BraTS2021_00001_slice_000.png").is_file()  # unlabelled val case
    assert not (out / "masks" / "BraTS2021_00001_slice_000.png").exists()
    assert verify_export(out).ok
    bad = export_slices([data["brats"]], tmp_path / "bad", SliceOptions(channel="T3"))
    assert len(bad.errors) == 3 and "no channel named 'T3'" in bad.errors[0].message
    assert bad.errors[0].case == "BraTS2021_00000" and bad.errors[0].dataset == "brats2021"
    failed = verify_export(tmp_path / "bad").points["file_counts"]  # failed cases are a FAIL
    assert any("3 case(s) failed to export" in p for p in failed.problems), failed.problems
    assert any("holds no case" in p for p in failed.problems), failed.problems
    lower = export_slices([data["brats"]], tmp_path / "lower", SliceOptions(channel="flair"))
    assert lower.ok and lower.cases["BraTS2021_00000"]["channel"] == 3  # names case-insensitive
    synonym = export_slices([data["brats"]], tmp_path / "syn", SliceOptions(channel="t1gd"))
    assert synonym.ok and synonym.cases["BraTS2021_00000"]["channel"] == 1  # BraTS's T1ce file


def test_split_mode_kits23_2d_and_missing_splits(data: dict[str, Path], tmp_path: Path) -> None:
    result = export_slices([data["source"]], tmp_path / "seedsplit", split_mode="kits23-2d")
    assert result.splits == seeded_case_splits(["case_00000", "case_00001", "case_00002"], 42)
    records = read_manifest(data["source"])
    bare = tmp_path / "bare" / "kits23.jsonl"
    bare.parent.mkdir()
    for record in records:  # no split; paths relative to the new manifest's folder
        record.split = None
        images, mask = record_files(record, data["source"].parent)
        record.image = [os.path.relpath(p, bare.parent) for p in images]
        record.mask = os.path.relpath(mask, bare.parent) if mask else None
    write_manifest(bare, records)
    with pytest.raises(ExportError, match="record has no split"):
        export_slices([bare], tmp_path / "nosplit", split_mode="manifest")
    with pytest.raises(ExportError, match="unknown split mode 'kits23'"):
        export_slices([data["source"]], tmp_path / "typo", split_mode="kits23")
    cli = runner.invoke(app, ["export", "slices", "-m", str(data["source"]), "-o", str(tmp_path / "cli"),
                              "--split-mode", "kits23-2d", "--no-progress", "--format", "json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["cases"] == 3
    summary = json.loads((tmp_path / "cli" / "metadata" / "dataset_summary.json").read_text())
    assert summary["split_mode"] == "kits23-2d"
    assert {s: n["cases"] for s, n in summary["splits"].items()} == {
        s: len(keys) for s, keys in result.splits.items()}


def test_seeded_split_modes_are_registry_data_and_malformed_entries_are_refused() -> None:
    from harmonize.errors import DescriptorError
    from harmonize.export.slice_splits import parse_split_modes, split_modes

    assert split_modes() == ("default", "manifest", "kits23-2d")
    good = {"seed": 7, "summary": "s", "source": "x"}
    assert parse_split_modes({"mine": good})["mine"].seed == 7
    assert parse_split_modes({"mine": {**good, "datasets": ["a"]}})["mine"].datasets == ("a",)
    with pytest.raises(DescriptorError, match="default of both"):
        parse_split_modes({"one": {**good, "datasets": ["a"]}, "two": {**good, "datasets": ["a"]}})
    for name, entry in (("mine", {**good, "seed": "7"}), ("mine", {**good, "seed": True}),
                        ("mine", {"seed": 7}), ("mine", {**good, "ratios": [1]}),
                        ("mine", {**good, "datasets": "kits23"}), ("manifest", good),
                        ("default", good)):
        with pytest.raises(DescriptorError, match="slice_split_modes"):
            parse_split_modes({name: entry})


def test_cli_slices_and_verify(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = runner.invoke(app, ["export", "slices", "--manifest", str(data["source"]), "--out",
                               str(out), "--window", "-200", "300", "--no-progress",
                               "--format", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["cases"] == 3
    checked = runner.invoke(app, ["export", "verify", "--out", str(out), "--no-progress",
                                  "--format", "json"])
    assert checked.exit_code == 0, checked.output
    assert {p["status"] for p in json.loads(checked.stdout)["points"]} == {"PASS"}
    (out / "masks" / "case_00002_slice_001.png").unlink()
    failed = runner.invoke(app, ["export", "verify", "--out", str(out), "--no-progress"])
    assert failed.exit_code == 1 and "FAIL" in failed.stdout


def test_verify_fails_a_csv_row_whose_filename_is_not_its_slice(exported: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    split = next(s for s in ("train", "val", "test")
                 if len((broken / "splits" / f"{s}_slices.csv").read_text().splitlines()) > 1)
    path = broken / "splits" / f"{split}_slices.csv"
    lines = path.read_text().splitlines()
    name = lines[1].split(",")[0]
    lines[1] = lines[1].replace(name, "renamed.png", 1)
    path.write_text("\n".join(lines) + "\n")
    problems = verify_export(broken).points["splits"].problems
    assert any("filename is not their image's file name" in p for p in problems), problems
