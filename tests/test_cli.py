"""The command line, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


def plugins_in_a_terminal(*args: str, columns: int = 80) -> list[str]:
    """``harmonize plugins`` as a user's 80-column terminal shows it (a new process: rich reads
    COLUMNS when the console is made)."""
    env = {**os.environ, "COLUMNS": str(columns), "PYTHONIOENCODING": "utf-8"}
    env.pop("HARMONIZE_DESCRIPTORS", None)
    done = subprocess.run([sys.executable, "-m", "harmonize", "plugins", *args], env=env,
                          capture_output=True, text=True, encoding="utf-8", check=True)
    return done.stdout.splitlines()


def test_plugins_fits_an_80_column_terminal_one_line_per_dataset():
    ids = json.loads(runner.invoke(app, ["plugins", "--format", "json"]).stdout)["datasets"]
    lines = plugins_in_a_terminal()
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, too_wide
    assert len(lines) <= len(ids) + 5, lines  # a title, a header, one line per dataset
    for row in ids:  # each dataset's line: id, modality, cases, label count, source
        (line,) = [x for x in lines if x.split() and x.split()[0] == row["id"]]
        cells = line.split()
        cases = "?" if row["cases"] is None else str(row["cases"])  # a descriptor without it
        assert cells[1] == row["modality"] and cells[2] == cases
        assert cells[3] == str(len(row["labels"])) and cells[4] == row["source"]


def test_plugins_labels_lists_every_label_within_80_columns():
    rows = json.loads(runner.invoke(app, ["plugins", "--format", "json"]).stdout)["datasets"]
    lines = plugins_in_a_terminal("--labels")
    assert max(len(line) for line in lines) <= 80
    text = " ".join(" ".join(line.split()) for line in lines)
    widest = max(rows, key=lambda row: len(row["labels"]))
    assert f"{widest['id']} ({len(widest['labels'])})" in text
    # the label column, rejoined across wrapped lines, holds every label in order
    start = [k for k, line in enumerate(lines) if line.startswith(f"{widest['id']} (")][0]
    width = lines[start].index(widest["labels"][0])
    body: list[str] = []
    for line in lines[start:]:
        if body and line[:width].strip():
            break  # the next dataset
        body.append(line[width:].strip())
    assert " ".join(body) == ", ".join(widest["labels"])


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


def test_cache_help_names_the_loaders_default_folder():
    from harmonize.cli.cache import CACHE_DIRNAME
    from harmonize.loader.cache import DEFAULT_CACHE_DIRNAME

    assert CACHE_DIRNAME == DEFAULT_CACHE_DIRNAME


def test_split_mode_help_lists_the_validated_modes():
    from harmonize.cli.export import split_mode_help
    from harmonize.export.slice_splits import seeded_split_modes

    text = split_mode_help()
    for mode in seeded_split_modes().values():
        assert f"{mode.name} ({mode.summary}" in text


def test_the_command_line_starts_without_the_numeric_stack():
    """`harmonize --help` imports the command modules only: numpy, nibabel, SimpleITK, torch and
    the engine load in the commands that use them (start-up ~0.3 s instead of ~3 s)."""
    import subprocess
    import sys

    code = ("import sys, harmonize.cli.app; "  # importing it registers every command module
            "print(sorted(m for m in ('numpy', 'nibabel', 'SimpleITK', 'torch', 'pydicom') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
