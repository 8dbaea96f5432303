"""Free-text structure names (RTSTRUCT ROI names, DICOM-SEG segment labels) -> canonical names.

One matcher per dataset (:meth:`RoiMatcher.from_descriptor`), used by every reader of named
structures. A name is mapped in two steps, and only onto the descriptor's ``classes``:

1. *exact synonym*: the class name itself, its vocabulary synonyms (``registry/vocabulary.yaml``
   and plugin names) and the release's own names of its values (the descriptor's ``values``),
   compared case-insensitively with ``_``, ``-`` and spaces equivalent (:func:`roi_key`);
2. otherwise the descriptor's ``roi_patterns`` (``{class: [regex, ...]}``): Python regular
   expressions that must match the WHOLE name (``re.fullmatch``), case-insensitively, tried on
   the name as written and with its separators written as ``' '``, ``'_'`` and ``'-'``.

A name matching no class, or patterns of two classes, is not mapped: :class:`RoiMatch` says why,
and the reader reports the structure as skipped (never guessed, never merged).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from harmonize.labels.vocabulary import Vocabulary
    from harmonize.plugin.descriptor import Descriptor

__all__ = ["How", "RoiMatch", "RoiMatcher", "compile_patterns", "roi_key"]

How = Literal["synonym", "pattern", "unmatched", "ambiguous"]
_SEPARATORS = re.compile(r"[\s_\-]+")


def roi_key(name: str) -> str:
    """Lookup key of a structure name: lowercase, runs of ``_ - space`` as one space, stripped."""
    return _SEPARATORS.sub(" ", name).strip().lower()


def _spellings(name: str) -> list[str]:
    """``name`` as written, then with its separators as space, underscore and hyphen."""
    key = _SEPARATORS.sub(" ", name.strip())
    return list(dict.fromkeys([name, key, key.replace(" ", "_"), key.replace(" ", "-")]))


def compile_patterns(patterns: Mapping[str, Sequence[str]]) -> dict[str, list[re.Pattern[str]]]:
    """``{class: [regex, ...]}`` compiled case-insensitively; ``re.error`` for a bad regex."""
    return {name: [re.compile(p, re.IGNORECASE) for p in items] for name, items in patterns.items()}


@dataclass(frozen=True)
class RoiMatch:
    """How one structure name was mapped: ``name`` is the canonical class (``None`` when not
    mapped), ``how`` is ``synonym``/``pattern``/``unmatched``/``ambiguous``; ``detail`` is the
    synonym or pattern that matched, or the reason it was not mapped."""

    roi: str
    name: str | None
    how: How
    detail: str

    def to_dict(self) -> dict[str, str | None]:
        return {"roi": self.roi, "name": self.name, "by": self.how, "detail": self.detail}


@dataclass(frozen=True)
class RoiMatcher:
    """Maps structure names onto ``classes`` (see the module doc)."""

    classes: tuple[str, ...]
    synonyms: Mapping[str, tuple[str, ...]]  # roi_key -> classes it names (one, unless clashing)
    patterns: Mapping[str, Sequence[re.Pattern[str]]] = field(default_factory=dict)

    @classmethod
    def from_descriptor(cls, descriptor: Descriptor, vocabulary: Vocabulary | None = None
                        ) -> RoiMatcher:
        """The matcher of a dataset: its classes, their vocabulary synonyms and release names,
        and its ``roi_patterns`` (already checked when the descriptor loaded)."""
        if vocabulary is None:
            from harmonize.labels.vocabulary import load_vocabulary

            vocabulary = load_vocabulary()
        classes = tuple(descriptor.classes)
        names: dict[str, list[str]] = {c: [c] for c in classes}
        for key, canonical in vocabulary.lookup.items():
            if canonical in names:
                names[canonical].append(key)
        for c, values in descriptor.classes.items():
            names[c].extend(descriptor.values[v] for v in values if v in descriptor.values)
        return cls.build(classes, names, descriptor.roi_patterns)

    @classmethod
    def build(cls, classes: Iterable[str], names: Mapping[str, Iterable[str]],
              patterns: Mapping[str, Sequence[str]] | None = None) -> RoiMatcher:
        """A matcher from ``{class: [exact names]}`` and ``{class: [regex]}``."""
        table: dict[str, list[str]] = {}
        for c, spellings in names.items():
            for spelling in spellings:
                owners = table.setdefault(roi_key(spelling), [])
                if c not in owners:
                    owners.append(c)
        return cls(tuple(classes), {k: tuple(v) for k, v in table.items()},
                   compile_patterns(patterns or {}))

    def match(self, roi: str) -> RoiMatch:
        """The mapping of one structure name (see the module doc)."""
        owners = self.synonyms.get(roi_key(roi), ())
        if len(owners) == 1:
            return RoiMatch(roi, owners[0], "synonym", f"exact name of {owners[0]!r}")
        if len(owners) > 1:
            return RoiMatch(roi, None, "ambiguous", "exact name of several classes: "
                            + ", ".join(repr(c) for c in owners))
        hits: dict[str, str] = {}
        for c, compiled in self.patterns.items():
            for pattern in compiled:
                if any(pattern.fullmatch(s) for s in _spellings(roi)):
                    hits.setdefault(c, pattern.pattern)
        if len(hits) == 1:
            (c, text), = hits.items()
            return RoiMatch(roi, c, "pattern", text)
        if hits:
            return RoiMatch(roi, None, "ambiguous", "patterns of several classes match: " + ", ".join(
                f"{c!r} ({p})" for c, p in hits.items()))
        return RoiMatch(roi, None, "unmatched", "no class name, synonym or pattern matches")

    def assign(self, rois: Sequence[str]) -> tuple[dict[str, str], list[RoiMatch]]:
        """Map the structure names of one case: ``({roi: class}, every match in order)``.

        Exact names claim their classes first, then patterns, each in ROI order; a class named
        by a second ROI of the case is not merged: that ROI becomes ``ambiguous`` ("class already
        taken by ROI ...") and only the first is used (``Spinal-Cord`` beats a ``Cord_PRV``
        that a pattern would also take).
        """
        matches = [self.match(roi) for roi in rois]
        taken: dict[str, str] = {}
        owner: dict[str, str] = {}
        for rank in ("synonym", "pattern"):
            for k, found in enumerate(matches):
                if found.how != rank or found.name is None:
                    continue
                if found.name in owner:
                    matches[k] = RoiMatch(found.roi, None, "ambiguous",
                                          f"{found.name!r} is already taken by ROI "
                                          f"{owner[found.name]!r} in this case (structures are "
                                          "never merged)")
                    continue
                owner[found.name] = found.roi
                taken[found.roi] = found.name
        return {roi: taken[roi] for roi in rois if roi in taken}, matches
