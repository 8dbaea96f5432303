"""`harmonize demo`, the README's first command: fabricate, normalize, manifests, splits, one batch."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.cli.demo import MANIFEST_DIR, demo_plugins


def test_demo_runs_end_to_end_and_loads_a_mixed_batch(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--cases", "3",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    datasets = [row["dataset"] for row in report["datasets"]]
    assert datasets == sorted(p.dataset_id for p in demo_plugins())
    assert len(datasets) >= 4 and report["leaks"] == [] and report["errors"] == []
    assert all(row["cases"] >= 3 for row in report["datasets"])
    batch = report["batch"]
    assert sorted(batch["datasets"]) == datasets  # one sample per dataset: a mixed batch
    assert batch["image"][0] == len(datasets) and batch["mask"][:1] == batch["image"][:1]
    assert len(batch["label_present"][0]) == batch["mask"][1]
    out = tmp_path / "demo" / MANIFEST_DIR
    for dataset in datasets:
        assert (out / f"{dataset}.jsonl").is_file()
        assert list((out / dataset).glob("*/image.nii.gz"))
    assert (out / "splits.json").is_file() and (out / "errors.jsonl").is_file()


def test_demo_can_be_limited_to_named_datasets(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "-d", "kits23", "--cases", "2"])
    assert result.exit_code == 0, result.output
    assert "kits23" in result.stdout and "one mixed batch" in result.stdout
    bad = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "-d", "nope"])
    assert bad.exit_code == 2 and "unknown dataset 'nope'" in bad.output
