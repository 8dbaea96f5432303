"""The checked-in golden manifests in jsonl/ are exactly what the demo produces.

Regenerate after an intended format change with:
    HARMONIZE_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from harmonize.demo import MANIFEST_DIR, run_demo
from harmonize.records import MANIFEST_SCHEMA

GOLDEN = Path(__file__).parents[1] / "jsonl"
#: Fields that legitimately differ between machines (library versions); compared separately.
VOLATILE = ("provenance",)
#: Run reports, not part of the format: they name absolute paths of this machine.
REPORTS = ("errors.jsonl",)


def comparable(path: Path) -> list:
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows:
            for key in VOLATILE:
                row.pop(key, None)
        return rows
    return [json.loads(path.read_text())]


def test_demo_manifests_match_the_golden_copies(tmp_path):
    result = run_demo(tmp_path / "demo", progress=False)
    assert result.errors == []
    produced = tmp_path / "demo" / MANIFEST_DIR
    files = sorted(p.name for p in produced.iterdir()
                   if p.suffix in (".jsonl", ".json") and p.name not in REPORTS)
    if os.environ.get("HARMONIZE_UPDATE_GOLDEN"):
        for old in GOLDEN.glob("*.json*"):
            if old.name != "schema.json":
                old.unlink()
        for name in files:
            shutil.copy(produced / name, GOLDEN / name)
        (GOLDEN / "schema.json").write_text(json.dumps(MANIFEST_SCHEMA, indent=2) + "\n")
    golden = sorted(p.name for p in GOLDEN.iterdir() if p.name != "schema.json")
    assert files == golden, "demo outputs differ from jsonl/: regenerate (see module docstring)"
    for name in files:
        assert comparable(produced / name) == comparable(GOLDEN / name), (
            f"{name} drifted from jsonl/{name}: regenerate if the change is intended"
        )
