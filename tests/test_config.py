"""Run files and settings flags: strict keys, value parsing, per-dataset overrides, multi-dataset runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harmonize.plugins.fabricators.kits import make_kits
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.cli.run import join_multi_values
from harmonize.engine.config import (
    ConfigError,
    Target,
    build_settings,
    load_config,
    parse_setting,
    parse_settings,
)
from harmonize.engine.normalize import Settings, preset_settings
from harmonize.manifest.build import read_manifest


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("spacing", "native", None),
        ("spacing", None, None),
        ("spacing", 1.5, (1.5, 1.5, 1.5)),
        ("spacing", "2", (2.0, 2.0, 2.0)),
        ("spacing", "1.5,1.5,3", (1.5, 1.5, 3.0)),
        ("spacing", [0.8, 0.8, 5], (0.8, 0.8, 5.0)),
        ("ct_window", "dataset", "dataset"),
        ("ct_window", "none", None),
        ("ct_window", "-200,300", (-200.0, 300.0)),
        ("ct_window", [-175, 250], (-175.0, 250.0)),
        ("interpolation", "BSpline", "bspline"),
        ("mr_percentiles", [1, 99], (1.0, 99.0)),
        ("preset", "sat", "sat"),
        ("preset", None, None),
    ],
)
def test_setting_values_are_parsed(key: str, value, expected) -> None:
    assert parse_setting(key, value) == expected


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("spacing", [1, 2], "expected 3 numbers"),
        ("spacing", [1, 0, 1], "positive"),
        ("spacing", "fine", "spacing"),
        ("ct_window", [300, -200], "low < high"),
        ("ct_window", "lung", "ct_window"),
        ("interpolation", "cubic", "interpolation"),
        ("preset", "nnunet", "unknown preset"),
        ("mr_percentiles", [5, 200], "percentiles"),
        ("spacng", 1, "unknown settings key"),
    ],
)
def test_bad_setting_values_name_the_key(key: str, value, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_setting(key, value, where="settings", file=Path("run.yaml"))
    assert repr(f"settings.{key}") in info.value.message and info.value.file == "run.yaml"


def test_preset_is_the_base_and_other_keys_override_it() -> None:
    settings = build_settings(parse_settings({"preset": "sat", "spacing": "native"}))
    assert settings == preset_settings("sat").replace(spacing=None)
    assert build_settings({}) == Settings()
    target = Target("kits23", Path("/x"), {"ct_window": [-100, 100]})
    assert target.settings(settings).ct_window == (-100.0, 100.0)
    assert target.settings(settings).ct_scaling == "zscore"  # run-wide preset kept
    restart = Target("kits23", Path("/x"), {"preset": "kits23-2d"})
    assert restart.settings(settings) == preset_settings("kits23-2d")


RUN_FILE = """
out: results
workers: 2
seed: 3
ratios: [0.6, 0.2, 0.2]
settings:
  spacing: [2, 2, 2]
  ct_window: [-100, 200]
datasets:
  kits23:
    root: data/kits23
  kits19:
    root: data/kits19
    spacing: native
    preset: kits23-2d
"""


def test_run_file_parses_with_paths_relative_to_it(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "run.yaml", RUN_FILE))
    assert config.out == tmp_path / "results" and config.workers == 2 and config.seed == 3
    assert config.ratios == (0.6, 0.2, 0.2)
    assert [(t.dataset, t.root) for t in config.targets] == [
        ("kits23", tmp_path / "data/kits23"), ("kits19", tmp_path / "data/kits19")]
    base = build_settings(config.settings)
    assert config.targets[0].settings(base) == Settings(spacing=(2.0, 2.0, 2.0),
                                                        ct_window=(-100.0, 200.0))
    assert config.targets[1].settings(base) == preset_settings("kits23-2d")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("datasets: {kits23: {root: x}}\nwrkers: 2\n", "wrkers"),
        ("datasets: {kits23: {root: x, spacin: 1}}\n", "spacin"),
        ("settings: {windw: dataset}\ndatasets: {kits23: {root: x}}\n", "windw"),
        ("datasets: {kits23: {spacing: 1}}\n", "root"),
        ("datasets: {}\n", "datasets"),
        ("workers: zero\ndatasets: {kits23: {root: x}}\n", "workers"),
        ("executor: slurm\ndatasets: {kits23: {root: x}}\n", "executor"),
        ("datasets: {kits23: {root: x}}\ndatasets: {kits19: {root: y}}\n", "duplicate key"),
    ],
)
def test_run_file_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "run.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert key in str(info.value) and str(path) in str(info.value)


def test_join_multi_values() -> None:
    assert join_multi_values(["--spacing", "1.5", "1.5", "3", "--ct-window", "-200", "300"]) == [
        "--spacing", "1.5,1.5,3", "--ct-window", "-200,300"]
    assert join_multi_values(["--spacing", "native", "-w", "2"]) == ["--spacing", "native", "-w", "2"]
    assert join_multi_values(["--spacing", "2", "--out", "x"]) == ["--spacing", "2", "--out", "x"]
    assert join_multi_values(["--mr-percentiles", "1", "99"]) == ["--mr-percentiles", "1,99"]


def test_cli_intensity_flags_reach_the_records(tmp_path: Path) -> None:
    root = make_kits(tmp_path / "kits23", release="kits23", n_cases=1, seed=33)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", "-d", "kits23", "-r", str(root), "-o", str(out),
                                   "--ct-window", "-100", "200", "--ct-scaling", "zscore",
                                   "--mr-percentiles", "1", "99", "--workers", "1",
                                   "--no-progress", "--format", "json"])
    assert res.exit_code == 0, res.output
    record = read_manifest(out / "kits23.jsonl")[0]
    assert record.extra["settings"]["ct_scaling"] == "zscore"
    assert record.extra["settings"]["mr_percentiles"] == [1.0, 99.0]
    assert record.extra["intensity"]["scaling"] == "zscore"
    res = CliRunner().invoke(app, ["run", "-d", "kits23", "-r", str(root), "-o", str(out),
                                   "--intensity", "raw", "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    record = read_manifest(out / "kits23.jsonl")[0]
    assert record.extra["intensity"] == {"method": "none"}
    assert not any(op["op"] == "ct_window" for op in record.extra["operations"])
    bad = CliRunner().invoke(app, ["run", "-d", "kits23", "-r", str(root), "-o", str(out),
                                   "--ct-scaling", "minmax"])
    assert bad.exit_code == 2 and "ct_scaling" in bad.output


def test_cli_interrupt_says_how_to_finish(tmp_path: Path, monkeypatch) -> None:
    import harmonize.engine.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harmonize.engine.pipeline, "run", interrupted)
    res = CliRunner().invoke(app, ["run", "-d", "kits23", "-r", str(tmp_path), "-o",
                                   str(tmp_path / "out"), "--no-progress"])
    assert res.exit_code == 130 and "rerun the same command" in res.output


def test_cli_config_runs_several_datasets_with_overrides(tmp_path: Path) -> None:
    make_kits(tmp_path / "data/kits23", release="kits23", n_cases=2, seed=31)
    make_kits(tmp_path / "data/kits19", release="kits19", n_cases=2, seed=32)
    path = write(tmp_path / "run.yaml", RUN_FILE)
    res = CliRunner().invoke(app, ["run", "--config", str(path), "--workers", "1",
                                   "--no-progress", "--format", "json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert [d["dataset"] for d in summary["datasets"]] == ["kits19", "kits23"]
    out = tmp_path / "results"
    kits23 = read_manifest(out / "kits23.jsonl")
    kits19 = read_manifest(out / "kits19.jsonl")
    # full precision (schema 3): the resampled grid's float64 round-off shows (1.9999999999999998)
    assert all(r.spacing == pytest.approx([2.0, 2.0, 2.0], rel=1e-12, abs=0) for r in kits23)
    assert all(r.extra["settings"]["preset"] == "kits23-2d" for r in kits19)
    assert kits19[0].extra["intensity"]["clip"] == [-200.0, 300.0]
    assert kits23[0].extra["intensity"]["clip"] == [-100.0, 200.0]
    splits = json.loads((out / "splits.json").read_text())
    assert len(sum(splits.values(), [])) == 4
    # a flag overrides the run file's settings
    res = CliRunner().invoke(app, ["run", "--config", str(path), "--spacing", "native",
                                   "--no-progress", "--format", "json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert read_manifest(out / "kits23.jsonl")[0].extra["settings"]["spacing"] is None


def test_cli_rejects_mixed_or_missing_arguments(tmp_path: Path) -> None:
    path = write(tmp_path / "run.yaml", RUN_FILE)
    runner = CliRunner()
    mixed = runner.invoke(app, ["run", "--config", str(path), "-d", "kits23"])
    assert mixed.exit_code == 2 and "either --config or --dataset" in mixed.output
    missing = runner.invoke(app, ["run", "-d", "kits23", "-o", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "--root" in missing.output
    bad = runner.invoke(app, ["run", "-d", "kits23", "-r", str(tmp_path), "-o", str(tmp_path / "o"),
                              "--spacing", "1", "0", "1"])
    assert bad.exit_code == 2 and "spacing" in bad.output
    assert not (tmp_path / "o").exists()


def test_summary_caps_items_with_the_same_reason() -> None:
    from harmonize.cli.run import SAME_REASON_SHOWN, problem_lines
    from harmonize.errors import ErrorRecord

    same = [ErrorRecord("skipped", "msd-liver", None, f"/d/._x{i}.nii.gz", "AppleDouble file")
            for i in range(SAME_REASON_SHOWN + 7)]
    other = ErrorRecord("read", "msd-liver", "liver_3", "/d/liver_3.nii.gz", "truncated", "redo")
    lines = problem_lines([*same, other])
    assert len(lines) == SAME_REASON_SHOWN + 2
    assert lines[SAME_REASON_SHOWN].startswith("... and 7 more [msd-liver]")
    assert "liver_3" in lines[-1] and "redo" in lines[-1]
    assert len(problem_lines(same[:SAME_REASON_SHOWN])) == SAME_REASON_SHOWN
