"""The command line, as a user runs it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harmonize.cli.app import app

runner = CliRunner()


def test_help_and_version():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("plugins", "discover", "manifest", "validate", "demo"):
        assert command in result.stdout
    assert "harmonize-med" in runner.invoke(app, ["--version"]).stdout


def test_plugins_lists_builtins_with_labels_and_licence():
    result = runner.invoke(app, ["plugins", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in json.loads(result.stdout)["datasets"]}
    kits = rows["kits23"]
    assert kits["source"] == "built-in" and kits["modality"] == "CT"
    assert kits["labels"] == ["kidney", "kidney mass", "kidney tumor", "kidney cyst"]
    assert "CC BY-NC-SA" in kits["licence"] and kits["cases"] == 489
    table = runner.invoke(app, ["plugins"])
    assert "kits23" in table.stdout


def test_discover_lists_cases_and_skips(kits23_root):
    (kits23_root / "dataset" / "case_00001" / "segmentation.nii.gz").unlink()
    result = runner.invoke(app, ["discover", "-d", "kits23", "-r", str(kits23_root), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [c["case_id"] for c in data["cases"]] == ["case_00000", "case_00002"]
    assert data["skipped"][0]["case"] == "case_00001"
    human = runner.invoke(app, ["discover", "-d", "kits23", "-r", str(kits23_root)])
    assert "segmentation.nii.gz is missing" in human.output


def test_manifest_and_validate(kits23_root, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["manifest", "-d", "kits23", "-r", str(kits23_root), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 cases" in result.stdout
    assert (out / "kits23.jsonl").is_file() and (out / "splits.json").is_file()
    check = runner.invoke(app, ["validate", str(out / "kits23.jsonl")])
    assert check.exit_code == 0 and "PASS" in check.stdout
    folder = runner.invoke(app, ["validate", str(out)])  # a folder: every manifest in it
    assert folder.exit_code == 0 and "PASS 3 records" in folder.stdout


def test_bad_dataset_root_and_ratios_exit_non_zero(tmp_path):
    result = runner.invoke(app, ["discover", "-d", "kits23", "-r", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "does not exist" in result.output
    result = runner.invoke(app, ["manifest", "-d", "nope", "-r", str(tmp_path), "-o", str(tmp_path)])
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.output
    result = runner.invoke(app, ["manifest", "-d", "kits23", "-r", str(tmp_path), "-o", str(tmp_path),
                                 "--ratios", "0.5", "0.5", "0.5"])
    assert result.exit_code == 2 and "sum to 1" in result.output


def test_error_lines_keep_the_dataset_and_case_prefix(tmp_path):
    # rich would read "[kits23]" as a style tag and drop it: the user must see which dataset failed
    result = runner.invoke(app, ["discover", "-d", "kits23", "-r", str(tmp_path / "missing")])
    assert "[kits23] dataset root does not exist" in result.output


def test_wrong_root_keeps_the_existing_manifest(kits23_root, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["manifest", "-d", "kits23", "-r", str(kits23_root), "-o", str(out)]).exit_code == 0
    before = (out / "kits23.jsonl").read_text(), (out / "splits.json").read_text()
    typo = runner.invoke(app, ["manifest", "-d", "kits23", "-r", str(kits23_root / "dataset" / "case_00000"),
                               "-o", str(out)])
    assert typo.exit_code == 1 and "not written" in typo.output
    assert ((out / "kits23.jsonl").read_text(), (out / "splits.json").read_text()) == before


def test_unreadable_manifests_are_clear_errors_not_tracebacks(kits23_root, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "other.jsonl").write_text("{not json\n")
    result = runner.invoke(app, ["manifest", "-d", "kits23", "-r", str(kits23_root), "-o", str(out)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)  # no traceback
    assert "other.jsonl" in result.output and "not valid JSON" in result.output
    check = runner.invoke(app, ["validate", str(out / "other.jsonl")])
    assert check.exit_code == 1 and isinstance(check.exception, SystemExit)
    assert "other.jsonl:1: not a JSON object" in check.output
