"""Shared fixtures: fabricated datasets are small and seeded, so tests are fast and deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest

from harmonize.plugin.catalog import load_catalog


@pytest.fixture(scope="session")
def catalog():
    return load_catalog(entry_points=False)


@pytest.fixture
def kits23_root(tmp_path: Path) -> Path:
    from harmonize.plugins.fabricators.kits import make_kits23

    return make_kits23(tmp_path / "kits23", n_cases=3, seed=1)
