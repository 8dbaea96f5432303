"""Which classes a loader asks for, and per record their mask values and annotated flags.

Parent classes: asking for ``kidney`` from a dataset that labels only ``left kidney`` and ``right
kidney`` gives the union of the values of every labelled descendant. It counts as annotated when
the class itself is annotated, or (rule ``"sides"``, default) when both its ``left``/``right``
children are (recursively). Other children are parts, not a cover (``liver tumor`` and ``hepatic
vessel`` are not the liver), so they never make a parent annotated unless ``parents="children"``
is asked for, which also accepts a parent whose every direct child is annotated (right for level
hierarchies such as vertebrae, wrong for organ-and-lesion ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from harmonize.errors import LabelError
from harmonize.labels.vocabulary import Vocabulary
from harmonize.manifest.records import ManifestRecord

ParentRule = Literal["sides", "children"]


@dataclass(frozen=True)
class RecordClasses:
    """Per requested class: the record's mask values and whether the class is annotated."""

    values: tuple[tuple[int, ...], ...]
    annotated: tuple[bool, ...]


def _canonical_labels(record: ManifestRecord, vocabulary: Vocabulary) -> tuple[dict[str, set[int]], set[str]]:
    labels = {vocabulary.resolve(n, dataset=record.dataset): set(v) for n, v in record.labels.items()}
    annotated = {vocabulary.resolve(n, dataset=record.dataset) for n in record.annotated}
    return labels, annotated & set(labels)


def _covered(name: str, annotated: set[str], vocabulary: Vocabulary, rule: ParentRule) -> bool:
    if name in annotated:
        return True
    children = vocabulary.children(name)
    if not children:
        return False
    sides = (f"left {name}", f"right {name}")
    if all(s in children for s in sides) and all(_covered(s, annotated, vocabulary, rule) for s in sides):
        return True
    return rule == "children" and all(_covered(c, annotated, vocabulary, rule) for c in children)


def record_classes(
    record: ManifestRecord, classes: Sequence[str], vocabulary: Vocabulary, parents: ParentRule = "sides"
) -> RecordClasses:
    """Mask values and annotated flags of ``classes`` (canonical names) for one record."""
    labels, annotated = _canonical_labels(record, vocabulary)
    values, present = [], []
    for name in classes:
        members = {name, *vocabulary.descendants(name)}
        values.append(tuple(sorted({v for n in members & set(labels) for v in labels[n]})))
        present.append(_covered(name, annotated, vocabulary, parents))
    return RecordClasses(tuple(values), tuple(present))


def resolve_classes(
    classes: Sequence[str] | None, records: Sequence[ManifestRecord], vocabulary: Vocabulary
) -> list[str]:
    """Canonical names asked for (synonyms resolved), or the sorted union of the manifests' classes."""
    labelled = sorted({vocabulary.resolve(n, dataset=r.dataset) for r in records for n in r.labels})
    if classes is None:
        if not labelled:
            raise LabelError("the manifests label no class at all",
                             hint="pass classes=... or use manifests of labelled datasets")
        return labelled
    if isinstance(classes, str) or not list(classes):
        raise LabelError(f"classes must be a non-empty list of names, got {classes!r}",
                         hint=f"use None for every class, or names from: {', '.join(labelled)}")
    out: list[str] = []
    for name in classes:
        canonical = vocabulary.resolve(name)
        if canonical in out:
            raise LabelError(f"class {name!r} is asked for twice (as {canonical!r})",
                             hint="list each class once")
        members = {canonical, *vocabulary.descendants(canonical)}
        if not members & set(labelled):
            raise LabelError(
                f"no manifest labels {canonical!r} or any of its sub-structures",
                hint=f"the manifests label: {', '.join(labelled)}",
            )
        out.append(canonical)
    return out
