"""Coded concepts of the vocabulary: what a canonical structure is in DICOM terms.

Each canonical structure may carry the code triplets a DICOM Segmentation uses to describe a
segment (PS3.3 C.8.20.4, Segment Description Macro)::

    left kidney:
      codes:
        category: SCT 91723000 Anatomical Structure   # Segmented Property Category
        type: SCT 64033007 Kidney                     # Segmented Property Type
        modifier: SCT 7771000 Left                    # Segmented Property Type Modifier

    left kidney cyst:
      codes:
        category: SCT 49755003 Morphologically Abnormal Structure
        type: SCT 367643001 Cyst
        region: SCT 64033007 Kidney                   # Anatomic Region
        region_modifier: SCT 7771000 Left             # Anatomic Region Modifier

A code is written ``SCHEME VALUE MEANING`` (the meaning may contain spaces) or as a mapping
``{scheme: SCT, value: "64033007", meaning: Kidney}``. The side of a paired structure is a modifier:
an anatomical structure carries its side as ``modifier``, a lesion located in one side of an organ
as ``region_modifier`` (the pattern of common DICOM-SEG writers). ``also`` lists the
same concept in other schemes (FMA, UBERON); ``source`` names where a code pydicom's DICOM
dictionary does not know was taken from.

Contract: :class:`Code` and :class:`StructureCodes` validate themselves on construction (known
scheme, value format of that scheme, non-empty meaning; a category and a type; a region modifier
only with a region) and raise :class:`~harmonize.errors.PluginError`; :func:`parse_codes` turns
the YAML form into them and reports a problem as ``fail(message)`` naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from harmonize.errors import PluginError

#: coding scheme designators (DICOM PS3.16 section 8) accepted, with the form of their values
SCHEMES: Mapping[str, re.Pattern[str]] = {
    "SCT": re.compile(r"[1-9][0-9]{5,17}"),  # SNOMED CT identifier: 6 to 18 digits
    "DCM": re.compile(r"[0-9A-Za-z.-]+"),  # DICOM Controlled Terminology (PS3.16 Annex D)
    "NCIt": re.compile(r"C[0-9]+"),  # NCI Thesaurus
    "FMA": re.compile(r"[0-9]+"),  # Foundational Model of Anatomy
    "UBERON": re.compile(r"[0-9]{7}"),  # Uberon anatomy ontology (UBERON:0002113 -> 0002113)
}

#: the code roles of a structure, in the order of the Segment Description Macro
ROLES = ("category", "type", "modifier", "region", "region_modifier")


@dataclass(frozen=True)
class Code:
    """One coded concept: coding scheme designator, code value, code meaning (DICOM triplet)."""

    scheme: str
    value: str
    meaning: str

    def __post_init__(self) -> None:
        for attr in ("scheme", "value", "meaning"):
            item = getattr(self, attr)
            if not isinstance(item, str) or not item.strip() or item != item.strip():
                raise PluginError(f"code {attr} {item!r} must be a non-empty string without "
                                  "outer spaces", hint="write codes as 'SCT 64033007 Kidney'")
        pattern = SCHEMES.get(self.scheme)
        if pattern is None:
            raise PluginError(f"unknown coding scheme {self.scheme!r} in {self}",
                              hint=f"use one of {', '.join(SCHEMES)}")
        if not pattern.fullmatch(self.value):
            raise PluginError(f"{self.value!r} is not a {self.scheme} code value (in {self})",
                              hint=f"{self.scheme} values match {pattern.pattern}")

    def __str__(self) -> str:
        return f"{self.scheme} {self.value} {self.meaning}"

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the concept: (scheme, value); the meaning is only its name."""
        return (self.scheme, self.value)

    def to_dict(self) -> dict[str, str]:
        return {"scheme": self.scheme, "value": self.value, "meaning": self.meaning}


@dataclass(frozen=True)
class StructureCodes:
    """The codes of one canonical structure (see the module docstring for the roles)."""

    category: Code
    type: Code
    modifier: Code | None = None
    region: Code | None = None
    region_modifier: Code | None = None
    also: tuple[Code, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        for role in ROLES:
            code = getattr(self, role)
            if not (isinstance(code, Code) or (code is None and role not in ("category", "type"))):
                raise PluginError(f"codes: {role} must be a Code, got {code!r}",
                                  hint="e.g. Code('SCT', '64033007', 'Kidney')")
        if self.region_modifier is not None and self.region is None:
            raise PluginError("codes: region_modifier without region",
                              hint="a region modifier qualifies the anatomic region")
        if isinstance(self.also, Code) or not all(isinstance(c, Code) for c in self.also):
            raise PluginError(f"codes: also must be a list of codes, got {self.also!r}")
        object.__setattr__(self, "also", tuple(self.also))
        if not isinstance(self.source, str):
            raise PluginError(f"codes: source must be text, got {self.source!r}")

    @property
    def key(self) -> tuple[tuple[str, str] | None, ...]:
        """What a segment is: type, modifier, region and region modifier as (scheme, value).

        Two structures never share a key (checked on load); the category only sorts it."""
        return tuple(None if c is None else c.key for c in
                     (self.type, self.modifier, self.region, self.region_modifier))

    def to_dict(self) -> dict[str, Any]:
        """JSON form: each present role as {scheme, value, meaning}, plus also and source."""
        out: dict[str, Any] = {}
        for role in ROLES:
            code = getattr(self, role)
            if code is not None:
                out[role] = code.to_dict()
        if self.also:
            out["also"] = [c.to_dict() for c in self.also]
        if self.source:
            out["source"] = self.source
        return out

    def __str__(self) -> str:
        """Short human form, e.g. ``SCT 64033007 Kidney + SCT 7771000 Left``."""
        text = str(self.type) + (f" + {self.modifier}" if self.modifier else "")
        if self.region is not None:
            text += f" in {self.region}" + (f" + {self.region_modifier}"
                                            if self.region_modifier else "")
        return text


def parse_code(data: object) -> Code:
    """A :class:`Code` from ``'SCHEME VALUE MEANING'`` or a mapping with those three keys."""
    if isinstance(data, Code):
        return data
    if isinstance(data, str):
        parts = data.split(None, 2)
        if len(parts) != 3:
            raise PluginError(f"{data!r} is not 'SCHEME VALUE MEANING'",
                              hint="e.g. 'SCT 64033007 Kidney'")
        return Code(*parts)
    if isinstance(data, Mapping) and set(data) == {"scheme", "value", "meaning"}:
        return Code(str(data["scheme"]), str(data["value"]), str(data["meaning"]))
    raise PluginError(f"{data!r} is not a code", hint="write 'SCHEME VALUE MEANING' or a mapping "
                      "with the keys scheme, value and meaning")


def parse_codes(data: object, *, fail: Callable[[str], Exception]) -> StructureCodes:
    """:class:`StructureCodes` from the YAML ``codes:`` mapping; ``fail(message)`` is raised for
    an unknown key, a malformed code or a missing category/type, the message naming the key."""
    if isinstance(data, StructureCodes):
        return data
    if not isinstance(data, Mapping):
        raise fail(f"codes must be a mapping of {', '.join(ROLES)}, also, source; got {data!r}")
    known = {f.name for f in fields(StructureCodes)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise fail(f"codes: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for key, item in data.items():
        try:
            if key == "source":
                values[key] = item
            elif key == "also":
                if not isinstance(item, list):
                    raise PluginError(f"must be a list of codes, got {item!r}")
                values[key] = tuple(parse_code(c) for c in item)
            else:
                values[key] = parse_code(item)
        except PluginError as exc:
            raise fail(f"codes.{key}: {exc.message}") from exc
    missing = [role for role in ("category", "type") if role not in values]
    if missing:
        raise fail(f"codes: missing {' and '.join(missing)}")
    try:
        return StructureCodes(**values)
    except PluginError as exc:
        raise fail(exc.message) from exc
