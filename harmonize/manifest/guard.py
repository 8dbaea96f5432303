"""Never lose a manifest: a dataset's new manifest replaces the old one only if it keeps every case.

A partial download (segmentations deleted, a folder not yet extracted) makes discovery skip cases;
writing the manifest anyway would silently drop them, and their patients from ``splits.json``.
:func:`check_shrink` compares the case ids of the manifest on disk with the new records: when some
are gone, the caller keeps the old manifest (and ``splits.json``), reports a ``kind="manifest"``
error and every gone case with the reason this run gave for it, and exits 1. ``allow_shrink``
(``--allow-shrink``) writes the smaller manifest. A manifest with no record is never written.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmonize.errors import ErrorRecord

SHRINK_FLAG = "--allow-shrink"
#: Width of the readable report (:meth:`Shrink.lines`).
REPORT_WIDTH = 80


def skipped_record(dataset: str, item: Any) -> ErrorRecord:
    """A discovery :class:`~harmonize.plugin.case.Skipped` item as a ``kind="skipped"`` record."""
    return ErrorRecord("skipped", dataset, item.case_id, str(item.path), item.reason, item.hint)


def nothing_to_write(dataset: str, path: Path, skipped: int) -> ErrorRecord:
    """The error of a dataset that yields no record and no other error: nothing is written."""
    return ErrorRecord(
        "discovery", dataset, None, str(path),
        f"no case to write: discovery found none ({skipped} items skipped), so {Path(path).name} "
        "was not written (an existing one is kept)",
        "the skipped items say why each was left out; check --root")


def manifest_case_ids(path: Path) -> list[str]:
    """Case ids of the manifest at ``path`` (any schema version; unreadable lines are ignored;
    no file: none)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    ids = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("case_id"), str):
            ids.append(obj["case_id"])
    return ids


def _reason(case: str, problems: Sequence[ErrorRecord]) -> str:
    for item in problems:
        if item.case == case or (item.case is None and item.file and case in Path(item.file).parts):
            where = f" (file: {item.file})" if item.file else ""
            return f"{item.kind}: {item.message}{where}"
    return "not found by discovery: its files are no longer under --root"


@dataclass(frozen=True)
class Shrink:
    """A manifest kept because the new one would lack some of its cases (case id -> reason)."""

    dataset: str
    path: Path
    old: int
    new: int
    gone: dict[str, str]

    def error(self) -> ErrorRecord:
        """The ``kind="manifest"`` error record of the run (in ``errors.jsonl`` and the summary)."""
        names = ", ".join(list(self.gone)[:5]) + (" ..." if len(self.gone) > 5 else "")
        return ErrorRecord(
            "manifest", self.dataset, None, str(self.path),
            f"kept the previous manifest and splits.json: {len(self.gone)} of its {self.old} "
            f"cases are missing from this run ({names})",
            f"restore the missing files (reasons listed per case) and rerun, or pass "
            f"{SHRINK_FLAG} to write the smaller manifest",
        )

    def lines(self, width: int = REPORT_WIDTH) -> list[str]:
        """A readable report, every line at most ``width`` characters (long paths wrap)."""
        head = (f"kept {self.path} ({self.old} cases): this run has {self.new} of them; "
                f"{len(self.gone)} are gone:")
        lines = textwrap.wrap(head, width, break_on_hyphens=False)
        for case, reason in self.gone.items():
            lines.extend(textwrap.wrap(f"{case}: {reason}", width, initial_indent="  ",
                                       subsequent_indent="      ", break_on_hyphens=False))
        lines.extend(textwrap.wrap(
            f"Next step: restore the missing files and rerun, or pass {SHRINK_FLAG} to write "
            "the smaller manifest.", width, break_on_hyphens=False))
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"dataset", "manifest", "old", "new", "gone": [{"case", "reason"}]}``."""
        return {"dataset": self.dataset, "manifest": str(self.path), "old": self.old,
                "new": self.new,
                "gone": [{"case": c, "reason": r} for c, r in self.gone.items()]}


def check_shrink(path: Path, case_ids: Sequence[str], problems: Sequence[ErrorRecord], *,
                 dataset: str, allow_shrink: bool = False) -> Shrink | None:
    """A :class:`Shrink` when the manifest at ``path`` lists cases missing from ``case_ids`` (the
    new records) and ``allow_shrink`` is false; ``None`` when the new manifest may be written.
    ``problems`` (this run's errors and skipped items of the dataset) give each gone case's reason.
    """
    if allow_shrink:
        return None
    old = manifest_case_ids(path)
    kept = set(case_ids)
    gone = sorted(set(old) - kept)
    if not gone:
        return None
    return Shrink(dataset, Path(path), len(set(old)), len(kept & set(old)),
                  {case: _reason(case, problems) for case in gone})
