"""Shared fixtures: fabricated datasets are small and seeded, so tests are fast and deterministic."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from harmonize.gate import REMEMBERED_ROOTS_ENV
from harmonize.plugin.catalog import load_catalog

# The roots `harmonize manifest` remembers go to a file of this test session, never the user's
# config folder (subprocesses inherit it).
os.environ[REMEMBERED_ROOTS_ENV] = str(Path(tempfile.mkdtemp(prefix="harmonize-roots-")) / "roots")


@pytest.fixture(scope="session")
def catalog():
    return load_catalog(entry_points=False)


@pytest.fixture
def kits23_root(tmp_path: Path) -> Path:
    from harmonize.plugins.fabricators.kits import make_kits23

    return make_kits23(tmp_path / "kits23", n_cases=3, seed=1)
