"""Patient-level train/val/test splits that never leak and stay stable as datasets grow.

Rules (DESIGN.md):

* official test and val sets are kept;
* a dataset whose official split is *complete* (it has labelled val or test cases) keeps its
  official train set too;
* every other patient (no official split, or official train of a dataset whose test set is
  hidden) is placed by a stable hash of ``(seed, dataset, patient id)`` with the given ratios, so
  adding patients never moves existing ones;
* patients that share an image across datasets (same fingerprint) or that a plugin links
  (``Case.same_patient_as``) form one group and move together (test beats val beats train when
  their official splits disagree).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harmonize.errors import ManifestError
from harmonize.manifest.records import SPLITS, ManifestRecord

DEFAULT_RATIOS = (0.7, 0.1, 0.2)
KEPT_OFFICIAL = ("test", "val")


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ManifestError(
            f"split ratios must be three non-negative numbers that sum to 1, got {list(ratios)}",
            hint="e.g. --ratios 0.7 0.1 0.2",
        )
    return (float(ratios[0]), float(ratios[1]), float(ratios[2]))


def hash_unit(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by ``(seed, key)`` alone."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_for(seed: int, key: str, ratios: Sequence[float] = DEFAULT_RATIOS) -> str:
    """The split a patient key lands in by hash."""
    u = hash_unit(seed, key)
    train, val, _ = check_ratios(ratios)
    if u < train:
        return "train"
    if u < train + val:
        return "val"
    return "test"


def patient_groups(records: Iterable[ManifestRecord]) -> dict[str, str]:
    """Map every patient key to its group key. Patients are joined when they share an image
    fingerprint or when a record names the other in ``same_patient_as`` (``dataset:patient_id``)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_fingerprint: dict[str, str] = {}
    for record in records:
        key = record.patient_key
        find(key)
        for other in record.same_patient_as:
            union(key, str(other))
        fingerprint = record.extra.get("fingerprint")
        if fingerprint:
            if fingerprint in by_fingerprint:
                union(key, by_fingerprint[fingerprint])
            else:
                by_fingerprint[fingerprint] = key
    return {key: find(key) for key in list(parent)}


def assign_splits(
    records: Sequence[ManifestRecord],
    *,
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    fixed: Sequence[ManifestRecord] = (),
) -> list[str]:
    """Set ``record.split`` on every record; return warnings (e.g. conflicting official splits).

    ``fixed`` are records of other datasets whose split is already decided (other manifests in the
    same output folder): a new record in the same patient group (same image fingerprint, or a
    ``same_patient_as`` link) takes their split, so adding a dataset never moves existing patients
    and never puts a shared image on both sides.
    """
    ratios = check_ratios(ratios)
    fixed = [r for r in fixed if r.split is not None]
    groups = patient_groups([*records, *fixed])
    members: dict[str, list[ManifestRecord]] = defaultdict(list)
    for record in records:
        members[groups[record.patient_key]].append(record)
    decided: dict[str, set[str]] = defaultdict(set)
    for record in fixed:
        decided[groups[record.patient_key]].add(record.split)  # type: ignore[arg-type]
    complete = complete_official_datasets(records)
    warnings: list[str] = []
    for group, recs in members.items():
        official = {r.official_split for r in recs if r.official_split in KEPT_OFFICIAL}
        kept_train = any(r.official_split == "train" and r.dataset in complete for r in recs)
        earlier = decided.get(group, set())
        if len(official) > 1:
            warnings.append(
                f"patient group {group} has cases in official splits {sorted(official)}; "
                "all of them go to test so no patient straddles splits"
            )
        if "test" in official:
            split = "test"
        elif "val" in official:
            split = "val"
        elif earlier:
            split = "test" if "test" in earlier else sorted(earlier)[0]
        elif kept_train:
            split = "train"
        else:
            split = split_for(seed, group, ratios)
        if earlier and earlier != {split}:
            warnings.append(
                f"patient group {group} is already in split(s) {sorted(earlier)} in another "
                f"manifest but its official split here is {split}: `harmonize validate` will "
                "report the leak; regenerate the other dataset's manifest into this folder"
            )
        for record in recs:
            record.split = split
    return warnings


def complete_official_datasets(records: Iterable[ManifestRecord]) -> set[str]:
    """Datasets whose official split has labelled val or test cases: their train set is kept."""
    return {
        r.dataset for r in records if r.official_split in KEPT_OFFICIAL and r.mask is not None
    }


def splits_document(records: Iterable[ManifestRecord]) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "test": [...]}`` of ``dataset:patient`` keys, sorted."""
    doc: dict[str, set[str]] = {s: set() for s in SPLITS}
    for record in records:
        if record.split is not None:
            doc[record.split].add(record.patient_key)
    return {s: sorted(v) for s, v in doc.items()}


@dataclass(frozen=True)
class Leak:
    """One thing found in more than one split."""

    kind: str  # "patient" or "fingerprint"
    key: str
    splits: tuple[str, ...]
    cases: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.key} appears in splits {list(self.splits)} "
            f"(cases: {', '.join(self.cases)})"
        )


def find_leaks(records: Iterable[ManifestRecord]) -> list[Leak]:
    """Patients (with their linked patients in other datasets) or identical images (fingerprints)
    that sit in more than one split."""
    records = list(records)
    groups = patient_groups(records)
    seen: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for record in records:
        if record.split is None:
            continue
        case = f"{record.dataset}/{record.case_id}"
        seen[("patient", groups[record.patient_key])][record.split].add(case)
        fingerprint = record.extra.get("fingerprint")
        if fingerprint:
            seen[("fingerprint", fingerprint)][record.split].add(case)
    leaks = []
    for (kind, key), by_split in sorted(seen.items()):
        if len(by_split) > 1:
            cases = tuple(sorted(c for cs in by_split.values() for c in cs))
            leaks.append(Leak(kind, key, tuple(sorted(by_split)), cases))
    return leaks


def split_counts(records: Iterable[ManifestRecord]) -> Mapping[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    for record in records:
        if record.split is not None:
            counts[record.split] += 1
    return counts
