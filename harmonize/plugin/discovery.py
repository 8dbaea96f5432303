"""Run a plugin's discovery safely: validate ids, reject duplicates, keep every problem."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harmonize.errors import ErrorRecord, HarmonizeError
from harmonize.plugin.case import Case, Skipped, check_identifier
from harmonize.plugin.dataset import DatasetPlugin


@dataclass
class Discovery:
    """What discovery found under one root: cases, skipped items (with reasons), errors."""

    dataset: str
    root: Path
    cases: list[Case] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)


def discover(plugin: DatasetPlugin, root: Path) -> Discovery:
    """All cases of ``plugin`` under ``root``.

    A plugin that raises becomes an error record (the caller goes on with other datasets); unsafe
    case ids (``../x``), empty patient ids and duplicate case ids are turned into skipped items
    with the reason. A case whose label is an RTSTRUCT file gets ``metadata["rois"]``: how each
    ROI name maps onto the classes (copied to its records; ``harmonize discover`` shows it).
    """
    dataset = plugin.dataset_id
    result = Discovery(dataset=dataset, root=Path(root))
    seen: dict[str, Case] = {}
    try:
        for item in plugin.discover(Path(root)):
            if isinstance(item, Skipped):
                result.skipped.append(item)
                continue
            if not isinstance(item, Case):
                raise TypeError(f"discover() yielded {type(item).__name__}, not Case or Skipped")
            try:
                check_identifier(item.case_id, what="case id", dataset=dataset, file=item.images[0])
            except HarmonizeError as exc:
                result.skipped.append(Skipped(item.images[0], exc.message, hint=exc.hint))
                continue
            if not isinstance(item.patient_id, str) or not item.patient_id.strip():
                result.skipped.append(Skipped(
                    item.images[0], f"empty patient id {item.patient_id!r}", case_id=item.case_id,
                    hint="fix the plugin's patient id extraction (splits are made per patient)",
                ))
                continue
            if item.case_id in seen:
                result.skipped.append(
                    Skipped(
                        item.images[0],
                        f"duplicate case id {item.case_id!r} (already found at "
                        f"{seen[item.case_id].images[0]})",
                        case_id=item.case_id,
                        hint="remove the duplicate copy from the dataset folder",
                    )
                )
                continue
            seen[item.case_id] = item
            result.cases.append(_with_rois(plugin, item))
    except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop a run
        result.errors.append(ErrorRecord.from_exception(exc, dataset=dataset))
    return result


def _with_rois(plugin: DatasetPlugin, case: Case) -> Case:
    """``case`` with ``metadata["rois"]`` when its label is an RTSTRUCT file (header only; an
    unreadable file gets one ``by: "error"`` row, and reading the case reports it in full)."""
    from harmonize.read.rtstruct_label import is_rtstruct, rtstruct_rois

    if case.label is None or "rois" in case.metadata or not is_rtstruct(case.label):
        return case
    try:
        rows: list[dict[str, Any]] = [*rtstruct_rois(case.label, plugin.descriptor)]
    except HarmonizeError as exc:
        rows = [{"roi": None, "name": None, "by": "error", "detail": exc.message}]
    return replace(case, metadata={**case.metadata, "rois": rows})
