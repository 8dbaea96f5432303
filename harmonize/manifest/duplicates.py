"""Find the same image in several cases or datasets (content fingerprints) and linked patients.

Public datasets share cases (one release re-published inside another, a challenge's cases reused
by a later one: each descriptor's ``overlaps`` lists what is known). Records carry a
``fingerprint`` of the RAS-canonical voxels and grid, the same whatever the file format, gzip or
axis order; this module groups them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from harmonize.manifest.records import ManifestRecord
from harmonize.manifest.splits import patient_groups


@dataclass(frozen=True)
class Member:
    dataset: str
    case_id: str
    patient_id: str
    split: str | None


@dataclass(frozen=True)
class DuplicateGroup:
    """Cases that hold the same image (``kind="image"``) or that plugins declare to be the same
    patient (``kind="patient"``)."""

    kind: str
    key: str
    members: tuple[Member, ...]

    @property
    def splits(self) -> list[str]:
        return sorted({m.split for m in self.members if m.split})

    @property
    def datasets(self) -> list[str]:
        return sorted({m.dataset for m in self.members})

    @property
    def leaks(self) -> bool:
        return len(self.splits) > 1

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "key": self.key, "datasets": self.datasets, "splits": self.splits,
            "leaks": self.leaks,
            "members": [m.__dict__ for m in self.members],
        }


@dataclass
class DuplicateReport:
    groups: list[DuplicateGroup]
    without_fingerprint: list[str]

    @property
    def leaks(self) -> list[DuplicateGroup]:
        return [g for g in self.groups if g.leaks]


def _member(record: ManifestRecord) -> Member:
    return Member(record.dataset, record.case_id, record.patient_id, record.split)


def find_duplicates(records: Iterable[ManifestRecord]) -> DuplicateReport:
    """Groups of two or more cases sharing an image fingerprint, and groups of patients linked
    across datasets by ``same_patient_as`` (only those with records on both sides)."""
    records = list(records)
    by_fingerprint: dict[str, list[ManifestRecord]] = defaultdict(list)
    missing = []
    for record in records:
        fingerprint = record.extra.get("fingerprint")
        if fingerprint:
            by_fingerprint[fingerprint].append(record)
        else:
            missing.append(f"{record.dataset}/{record.case_id}")
    groups = [
        DuplicateGroup("image", fp, tuple(_member(r) for r in sorted(recs, key=_order)))
        for fp, recs in sorted(by_fingerprint.items()) if len(recs) > 1
    ]
    linked = [r for r in records if r.same_patient_as]
    if linked:
        keys = patient_groups(records)
        by_group: dict[str, list[ManifestRecord]] = defaultdict(list)
        for record in records:
            by_group[keys[record.patient_key]].append(record)
        for key, recs in sorted(by_group.items()):
            if len({r.dataset for r in recs}) > 1 and any(r.same_patient_as for r in recs):
                groups.append(DuplicateGroup("patient", key, tuple(_member(r) for r in sorted(recs, key=_order))))
    return DuplicateReport(groups=groups, without_fingerprint=missing)


def _order(record: ManifestRecord) -> tuple[str, str]:
    return (record.dataset, record.case_id)
