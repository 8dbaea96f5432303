"""The checked-in golden manifests in jsonl/ are exactly what the demo produces.

Regenerate after an intended format change with:
    HARMONIZE_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

from harmonize.cli.demo import MANIFEST_DIR, run_demo
from harmonize.manifest.records import MANIFEST_SCHEMA

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


#: Floats (intensity statistics) differ in their last bits between CPUs and BLAS kernels (SIMD
#: summation order: ~1e-14 relative for float64 sums of many float32 values), so they are compared
#: within a relative FLOAT_RTOL.
FLOAT_RTOL = 1e-9
#: Values near zero (affine entries computed in float64) also match within an absolute tolerance.
FLOAT_ATOL = 1.5e-6


def same(produced, golden, where: str = "") -> str | None:
    """Where ``produced`` differs from ``golden`` (floats within FLOAT_RTOL or FLOAT_ATOL, at any
    depth of dicts and lists; strings, ints and bools exactly), or ``None``."""
    if isinstance(golden, float) or isinstance(produced, float):
        ok = (isinstance(produced, (int, float)) and isinstance(golden, (int, float))
              and math.isclose(produced, golden, rel_tol=FLOAT_RTOL, abs_tol=FLOAT_ATOL))
        return None if ok else f"{where}: {produced!r} != {golden!r}"
    if isinstance(golden, dict) and isinstance(produced, dict):
        if produced.keys() != golden.keys():
            return f"{where}: keys {sorted(produced)} != {sorted(golden)}"
        return next((d for k in golden if (d := same(produced[k], golden[k], f"{where}.{k}"))), None)
    if isinstance(golden, list) and isinstance(produced, list):
        if len(produced) != len(golden):
            return f"{where}: {len(produced)} items != {len(golden)}"
        return next((d for i, (a, b) in enumerate(zip(produced, golden))
                     if (d := same(a, b, f"{where}[{i}]"))), None)
    return None if produced == golden else f"{where}: {produced!r} != {golden!r}"


def test_same_tolerates_only_float_round_off():
    assert same({"a": [1.0, 2]}, {"a": [1.0 + 1e-12, 2]}) is None
    assert same({"a": [1.0]}, {"a": [1.001]}) is not None
    assert same({"a": {"b": [[0.123457]]}}, {"a": {"b": [[0.123456]]}}) is None  # 6th decimal flip
    assert same({"a": {"b": [[0.12346]]}}, {"a": {"b": [[0.12345]]}}) is not None
    assert same({"std": 185.89794838434204}, {"std": 185.89794838434128}) is None  # issue 13
    assert same({"a": 1.0}, {"a": "1.0"}) is not None  # a float never matches a string
    assert same({"a": "x"}, {"a": "y"}) is not None
    assert same({"a": 1}, {"b": 1}) is not None


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
        drift = same(comparable(produced / name), comparable(GOLDEN / name), name)
        assert drift is None, (
            f"{name} drifted from jsonl/{name} at {drift}: regenerate if the change is intended"
        )
