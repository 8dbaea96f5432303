"""``harmonize discover``'s ROI-name section: how each structure name of the cases' RTSTRUCT
labels maps onto the dataset's classes, so a user can write ``roi_patterns`` from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harmonize.plugin.case import Case


def case_rois(cases: Sequence[Case]) -> dict[str, list[dict[str, Any]]]:
    """Case id -> ROI rows (``roi``, ``name``, ``by``, ``detail``) of every case whose label is
    an RTSTRUCT file (discovery stores them in ``metadata["rois"]``)."""
    return {c.case_id: list(c.metadata["rois"]) for c in cases if "rois" in c.metadata}


def roi_summary(rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One entry per distinct (ROI name, mapping), with the number of cases, by ROI name."""
    seen: dict[tuple, dict[str, Any]] = {}
    for case_rows in rows.values():
        for row in case_rows:
            key = (row["roi"], row["name"], row["by"], row["detail"])
            seen.setdefault(key, {**row, "cases": 0})["cases"] += 1
    return sorted(seen.values(), key=lambda r: (str(r["roi"]).lower(), -r["cases"]))


def roi_table(summary: list[dict[str, Any]]) -> Any:
    """A rich table of :func:`roi_summary` (fits 80 columns; long text folds)."""
    from rich.table import Table

    table = Table(title="ROI names in the RTSTRUCT labels", title_justify="left")
    for col, width in (("ROI", 16), ("cases", 5), ("class", 12), ("by", 9), ("pattern / reason", 24)):
        table.add_column(col, overflow="fold", max_width=width)
    for row in summary:
        table.add_row(str(row["roi"]), str(row["cases"]), row["name"] or "-", row["by"],
                      row["detail"] if row["by"] != "synonym" else "")
    return table
