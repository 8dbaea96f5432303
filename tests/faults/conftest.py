"""Shared helpers of the fault tests: the real CLI entry point and folder snapshots."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harmonize.cli.app import main


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """Run ``harmonize ARGS`` through the real entry point (``main``, as the console script does);
    return its exit code and stdout + stderr with whitespace folded (the console wraps lines)."""

    def run(*args: object) -> tuple[int, str]:
        argv = sys.argv
        sys.argv = ["harmonize", *map(str, args)]
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            sys.argv = argv
        out = capsys.readouterr()
        return code, " ".join((out.out + out.err).split())

    return run


def snapshot(folder: Path, *, exclude: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, by relative POSIX name (``exclude``: names)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in exclude}


@pytest.fixture()
def tree() -> Callable[..., dict[str, bytes]]:
    return snapshot
