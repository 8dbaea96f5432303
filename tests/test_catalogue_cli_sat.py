"""`harmonize plugins --sat-ds`: SAT-DS's dataset list against the descriptors' sat_ds keys."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.labels.sat_ds import load_sat_ds
from harmonize.plugin.catalog import load_catalog


def test_sat_ds_view_lists_all_72_names_and_the_ids_declaring_each() -> None:
    result = CliRunner().invoke(app, ["plugins", "--sat-ds", "--format", "json"])
    assert result.exit_code == 0, result.output
    coverage = json.loads(result.stdout)
    names = set(load_sat_ds())
    assert len(names) == 72 and set(coverage["sat_ds"]) == names
    declared: dict[str, set[str]] = {}
    for dataset_id, plugin in load_catalog(entry_points=False).datasets.items():
        for name in plugin.descriptor.sat_ds:
            declared.setdefault(name, set()).add(dataset_id)
    assert {n: set(ids) for n, ids in coverage["sat_ds"].items() if ids} == declared
    assert sorted(coverage["missing"]) == sorted(names - set(declared))
    assert coverage["covered"] == len(declared)
    table = CliRunner().invoke(app, ["plugins", "--sat-ds"], env={"COLUMNS": "80"})
    assert table.exit_code == 0 and "BraTS2023_GLI" in table.stdout
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
