"""Manifests: schema-valid records, relative paths, atomic writes, schema versions."""

from __future__ import annotations

import json
import shutil

import pytest

from harmonize.errors import ManifestError
from harmonize.manifest.build import build_manifest, read_manifest, validate_manifest, write_splits
from harmonize.manifest.records import MANIFEST_SCHEMA, SCHEMA_VERSION
from harmonize.plugin.discovery import discover


@pytest.fixture
def manifest_dir(catalog, kits23_root, tmp_path):
    plugin = catalog.get("kits23")
    out = tmp_path / "out"
    result = build_manifest(plugin, discover(plugin, kits23_root), out)
    assert result.errors == [] and result.path == out / "kits23.jsonl"
    return out


def test_manifest_validates_against_schema_and_splits_file(manifest_dir):
    assert validate_manifest(manifest_dir / "kits23.jsonl") == []
    splits = json.loads((manifest_dir / "splits.json").read_text())
    assert set(splits) == {"train", "val", "test"}
    records = read_manifest(manifest_dir / "kits23.jsonl")
    assert sorted(sum(splits.values(), [])) == sorted(r.patient_key for r in records)
    assert not list(manifest_dir.glob(".*"))  # no temp files left behind


def test_paths_are_relative_so_the_tree_can_move(manifest_dir, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("moved"))
    for record in read_manifest(moved / "out" / "kits23.jsonl"):
        assert not record.image.startswith("/")
        assert (moved / "out" / record.image).resolve().is_file()
        assert (moved / "out" / record.mask).resolve().is_file()
        assert record.source["images"][0]["path"] == record.image


def test_schema_catches_bad_records(manifest_dir):
    path = manifest_dir / "kits23.jsonl"
    lines = path.read_text().splitlines()
    bad = json.loads(lines[0])
    bad["split"] = "training"
    bad["spacing"] = [0, 1, 1]
    path.write_text(json.dumps(bad) + "\n" + "\n".join(lines[1:]) + "\n")
    problems = validate_manifest(path)
    assert any("split" in p for p in problems) and any("spacing" in p for p in problems)


def test_newer_schema_version_and_broken_lines_are_clear_errors(manifest_dir):
    path = manifest_dir / "kits23.jsonl"
    record = json.loads(path.read_text().splitlines()[0])
    record["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ManifestError, match="upgrade harmonize-med"):
        read_manifest(path)
    path.write_text("{not json\n")
    with pytest.raises(ManifestError, match="line 1"):
        read_manifest(path)


def test_splits_file_covers_every_manifest_in_the_folder(manifest_dir, catalog, tmp_path):
    from harmonize.plugins.fabricators.kits import make_kits

    plugin = catalog.get("kits21")
    root = make_kits(tmp_path / "kits21", release="kits21", n_cases=2)
    build_manifest(plugin, discover(plugin, root), manifest_dir)
    doc = write_splits(manifest_dir)
    keys = sum(doc.values(), [])
    assert any(k.startswith("kits21:") for k in keys) and any(k.startswith("kits23:") for k in keys)


def test_checked_in_schema_matches_the_code():
    from pathlib import Path

    checked_in = json.loads((Path(__file__).parents[1] / "jsonl" / "schema.json").read_text())
    assert checked_in == MANIFEST_SCHEMA, "regenerate jsonl/schema.json (see tests/test_golden.py)"


def test_unlabelled_case_of_a_plugin_with_its_own_label_reader_lists_no_class(catalog, kits23_root, tmp_path):
    """``label=None`` means unlabelled even when the plugin overrides read_label: its record must
    not claim every class as annotated (a loader would learn "absent" from a missing mask)."""
    from harmonize.plugins.kits import KiTS23

    class OwnReader(KiTS23):
        def read_label(self, case):
            return None  # what plugins with their own reader return for unlabelled cases

        def discover(self, root):
            for case in super().discover(root):
                yield case if case.case_id != "case_00001" else type(case)(
                    case_id=case.case_id, patient_id=case.patient_id, images=case.images,
                    label=None, official_split="test")

    plugin = OwnReader()
    result = build_manifest(plugin, discover(plugin, kits23_root), tmp_path / "m")
    by_id = {r.case_id: r for r in result.records}
    assert by_id["case_00001"].mask is None
    assert by_id["case_00001"].annotated == [] and by_id["case_00001"].labels == {}
    assert by_id["case_00000"].annotated == ["kidney", "kidney mass", "kidney tumor", "kidney cyst"]


def test_an_errors_report_is_not_taken_for_a_manifest(tmp_path):
    path = tmp_path / "errors.jsonl"
    path.write_text(json.dumps({"kind": "read", "dataset": "kits23", "message": "x"}) + "\n")
    with pytest.raises(ManifestError, match="not a manifest record"):
        read_manifest(path)


def test_manifest_with_workers_writes_the_same_records(catalog, kits23_root, tmp_path):
    """--workers N describes cases in a process pool; the manifest is byte-identical to the
    one-process manifest (records in discovery order)."""
    from typer.testing import CliRunner

    from harmonize.cli.app import app

    runner = CliRunner()
    for name, workers in (("one", "1"), ("two", "2")):
        result = runner.invoke(app, ["manifest", "-d", "kits23", "-r", str(kits23_root),
                                     "-o", str(tmp_path / name), "--workers", workers])
        assert result.exit_code == 0, result.output
    assert ((tmp_path / "one" / "kits23.jsonl").read_bytes()
            == (tmp_path / "two" / "kits23.jsonl").read_bytes())
