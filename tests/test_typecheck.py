"""mypy reports no error on ``harmonize`` and ``plugins`` with the ``[tool.mypy]`` settings of
pyproject.toml (skipped when mypy is not installed: ``pip install -e .[test]``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean() -> None:
    import mypy.api  # noqa: F401 - a test dependency (test extras)
    # A child process, not mypy.api.run: in-process, mypy keeps ~1 GB of module state alive
    # for the rest of the session and tearing it down adds ~20 s at exit. The cache is the
    # repository's git-ignored .mypy_cache: a cold run takes ~20 s, a warm one ~1 s.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(ROOT / ".mypy_cache"), "--no-error-summary", "--show-error-codes",
         str(ROOT / "harmonize"), str(ROOT / "plugins")],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), (
        f"mypy found problems:\n{result.stdout}{result.stderr}"
    )
