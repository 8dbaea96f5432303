"""Every case of one or more manifests measured and summarized: what ``harmonize qa`` reports.

:func:`collect_qa` measures each case once (:func:`harmonize.qa.inspect.inspect_case`) and
returns a :class:`QAReport`: per case geometry, intensity statistics, label voxel counts and
flags; per dataset and overall summaries and histograms, class tables overall and per split; per
dataset the pooled foreground and per-class intensity statistics (nnU-Net's fingerprint,
:mod:`harmonize.qa.fingerprint`) and component counts per class. :mod:`harmonize.qa.report` turns it into
``qa.json``, PNG charts, montages and ``index.html``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.manifest.build import read_manifest
from harmonize.manifest.records import ManifestRecord
from harmonize.qa.fingerprint import pooled
from harmonize.qa.inspect import AXES, FLAG_CODES, THRESHOLDS, CaseQA, inspect_case
from harmonize.qa.montage import Panels
from harmonize.qa.stats import INTENSITY_BINS, QUANTILES, ChannelStats, histogram


@dataclass
class QAReport:
    """Cases, per-dataset and overall summaries, and the montage panels."""

    manifests: list[Path]
    cases: list[CaseQA]
    datasets: dict[str, dict[str, Any]]
    overall: dict[str, Any]
    panels: dict[str, list[Panels]]

    @property
    def flags(self) -> list[dict[str, str]]:
        return [{"dataset": c.dataset, "case_id": c.case_id, "code": f.code, "message": f.message}
                for c in self.cases for f in c.flags]

    def to_dict(self) -> dict[str, Any]:
        return {"version": 2, "manifests": [str(m) for m in self.manifests],
                "thresholds": THRESHOLDS, "overall": self.overall, "datasets": self.datasets,
                "flags": self.flags, "cases": [c.to_dict() for c in self.cases]}


def _axis_summary(rows: list[list[float]] | list[list[int]]) -> dict[str, Any]:
    out = {}
    for i, axis in enumerate(AXES):
        values = [r[i] for r in rows]
        out[axis] = ({"min": min(values), "median": float(np.median(values)), "max": max(values),
                      "histogram": histogram(values)} if values else {})
    return out


def _intensity_summary(groups: dict[str, list[ChannelStats]]) -> dict[str, Any]:
    out = {}
    for name, stats in groups.items():
        voxels = sum(s.voxels for s in stats)
        points = np.concatenate([s.quantiles for s in stats])
        weights = np.concatenate([np.full(QUANTILES, s.voxels / QUANTILES) for s in stats])
        out[name] = {"cases": len(stats), "voxels": voxels,
                     "min": min(s.min for s in stats), "max": max(s.max for s in stats),
                     "mean": sum(s.mean * s.voxels for s in stats) / voxels,
                     "histogram": histogram(points, weights, bins=INTENSITY_BINS)}
    return out


def _label_summary(cases: list[CaseQA]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        for name in case.annotated:
            row = out.setdefault(name, {"annotated_cases": 0, "present_cases": 0, "voxels": 0,
                                        "volume_ml": 0.0, "components": 0})
            row["annotated_cases"] += 1
            voxels = case.label_voxels.get(name, 0)
            if case.labels is not None and name in case.labels.components:
                row["components"] += case.labels.components[name]["count"]
            row["voxels"] += voxels
            row["volume_ml"] += voxels * case.voxel_ml
            row["present_cases"] += voxels > 0
    for row in out.values():
        row["absent_cases"] = row["annotated_cases"] - row["present_cases"]
        row["volume_ml"] = round(row["volume_ml"], 3)
    return dict(sorted(out.items()))


def summarize(cases: list[CaseQA], *, intensity_key: Callable[[CaseQA, str], str]) -> dict[str, Any]:
    """Counts, geometry and intensity histograms, label numbers and flag counts of ``cases``."""
    readable = [c for c in cases if c.readable]
    groups: dict[str, list[ChannelStats]] = {}
    for case in readable:
        for name, stats in case.intensity.items():
            groups.setdefault(intensity_key(case, name), []).append(stats)
    flags = Counter(f.code for c in cases for f in c.flags)
    return {
        "cases": len(cases),
        "patients": len({(c.dataset, c.patient_id) for c in cases}),
        "labelled_cases": sum(c.mask is not None for c in cases),
        "readable_cases": len(readable),
        "flagged_cases": sum(bool(c.flags) for c in cases),
        "flags": {code: flags[code] for code in FLAG_CODES if flags[code]},
        "spacing": _axis_summary([c.spacing for c in readable if c.spacing]),
        "shape": _axis_summary([c.shape for c in readable if c.shape]),
        "intensity": _intensity_summary(groups),
        "labels": _label_summary(readable),
        "splits": {split: _label_summary([c for c in readable if (c.split or "unassigned") == split])
                   for split in sorted({c.split or "unassigned" for c in readable})},
    }


def _component_summary(cases: list[CaseQA]) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        for name, comp in (case.labels.components if case.labels else {}).items():
            rows.setdefault(name, []).append(comp)
    return {name: {"cases": len(found), "total": sum(c["count"] for c in found),
                   "median_per_case": float(np.median([c["count"] for c in found])),
                   "max_per_case": max(c["count"] for c in found),
                   "largest_mm3": max(c["largest_mm3"] for c in found),
                   "smallest_mm3": min(c["smallest_mm3"] for c in found)}
            for name, found in sorted(rows.items())}


def fingerprint(cases: list[CaseQA]) -> dict[str, Any]:
    """Per dataset: channel units, pooled foreground and per-class intensity statistics (nnU-Net
    keys), component counts per class (see :mod:`harmonize.qa.fingerprint`)."""
    measured = [c.labels for c in cases if c.labels is not None]
    units: dict[str, set[str]] = {}
    clipped: dict[str, set[tuple[float, ...]]] = {}
    for case in cases:
        for name, unit in case.units.items():
            units.setdefault(name, set()).add(unit.units)
            if unit.clipped:
                clipped.setdefault(name, set()).add(tuple(unit.clipped))
    classes = sorted({n for m in measured for n in m.classes})
    return {
        "units": {n: {"units": " / ".join(sorted(u)),
                      "clipped": [list(w) for w in sorted(clipped.get(n, ()))]}
                  for n, u in units.items()},
        "foreground_intensity": pooled([m.samples["(foreground)"] for m in measured
                                        if "(foreground)" in m.samples]),
        "class_intensity": {n: pooled([m.samples[n] for m in measured if n in m.samples])
                            for n in classes},
        "components": _component_summary(cases),
    }


def _spacing_outliers(cases: list[CaseQA]) -> None:
    readable = [c for c in cases if c.readable and c.spacing]
    if len(readable) < THRESHOLDS["min_cases_for_outliers"]:
        return
    medians = np.median(np.array([c.spacing for c in readable]), axis=0)
    factor = THRESHOLDS["spacing_outlier_factor"]
    for case in readable:
        odd = [f"{axis} {s:g} mm vs median {m:g} mm"
               for axis, s, m in zip(AXES, case.spacing or [], medians)
               if s > m * factor or s * factor < m]
        if odd:
            case.flag("spacing_outlier", f"spacing more than {factor:g}x off the dataset median: "
                                         + "; ".join(odd))


def _montage_choice(records: list[ManifestRecord], n: int) -> set[str]:
    ordered = sorted(records, key=lambda r: (r.mask is None, r.case_id))
    return {r.case_id for r in ordered[:n]}


def collect_qa(manifests: Sequence[Path], *, montage_cases: int = 4, montage_classes: int = 32,
               progress: Callable[[], None] | None = None,
               on_total: Callable[[int], None] | None = None) -> QAReport:
    """Measure every case of ``manifests`` and summarize per dataset and overall.

    ``on_total`` gets the number of cases before the work starts and ``progress`` is called after
    each case. Unreadable manifests raise :class:`~harmonize.errors.ManifestError`; unreadable cases
    are flagged and counted.
    """
    loaded = [(Path(m), read_manifest(Path(m))) for m in manifests]
    by_dataset: dict[str, list[tuple[Path, ManifestRecord]]] = {}
    for path, records in loaded:
        for record in records:
            by_dataset.setdefault(record.dataset, []).append((path, record))
    if on_total is not None:
        on_total(sum(len(v) for v in by_dataset.values()))
    cases: list[CaseQA] = []
    panels: dict[str, list[Panels]] = {}
    datasets: dict[str, dict[str, Any]] = {}
    for dataset in sorted(by_dataset):
        items = sorted(by_dataset[dataset], key=lambda item: item[1].case_id)
        chosen = _montage_choice([r for _, r in items], montage_cases)
        dataset_cases = []
        for path, record in items:
            case, case_panels = inspect_case(record, path, want_panels=record.case_id in chosen,
                                             max_classes=montage_classes)
            dataset_cases.append(case)
            if case_panels is not None:
                panels.setdefault(dataset, []).append(case_panels)
            if progress is not None:
                progress()
        _spacing_outliers(dataset_cases)
        seen = Counter(c.case_id for c in dataset_cases)
        datasets[dataset] = summarize(dataset_cases, intensity_key=lambda c, name: name)
        datasets[dataset]["duplicate_case_ids"] = sorted(k for k, n in seen.items() if n > 1)
        datasets[dataset]["normalized"] = any(c.normalized for c in dataset_cases)
        datasets[dataset]["modality"] = sorted({c.modality for c in dataset_cases})
        datasets[dataset].update(fingerprint(dataset_cases))
        for case in dataset_cases:  # the pooled samples are summarized; free them
            if case.labels is not None:
                case.labels.samples.clear()
        cases.extend(dataset_cases)
    overall = summarize(cases, intensity_key=lambda c, name: c.modality)
    overall["datasets"] = len(datasets)
    return QAReport([p for p, _ in loaded], cases, datasets, overall, panels)
