"""Manifest records: :class:`ManifestRecord` (one line of a manifest), its stages and versions.

:data:`MANIFEST_SCHEMA` (:mod:`harmonize.manifest.schema`) is its JSON Schema. What plugins yield
(:class:`Case`, :class:`Skipped`) lives in :mod:`harmonize.plugin.case` and is re-exported here
for 0.1 imports.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harmonize.errors import ManifestError
from harmonize.manifest.schema import MANIFEST_SCHEMA, SCHEMA_VERSION, STAGES
from harmonize.manifest.serialize import decode, encode
from harmonize.plugin.case import (
    SPLITS,
    Case,
    Skipped,
    check_identifier,
)


def upgrade_v1(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A schema-version-1 manifest line as version 2 (``stage`` added); other lines unchanged.

    The one place the stage is inferred: version 1 had no field for it.
    """
    if data.get("schema_version") != 1 or "stage" in data:
        return data
    stage = "normalized" if "operations" in data else "source"
    return {**data, "schema_version": 2, "stage": stage}


class StageMixWarning(UserWarning):
    """Records of both stages were given to one consumer that tolerates it (the loader)."""


def require_stage(records: Sequence[ManifestRecord], accepted: Sequence[str], *, consumer: str,
                  mix: Literal["allow", "warn", "error"] = "allow") -> str | None:
    """Check ``records`` are of a stage ``consumer`` accepts; return their stage when all share
    one (``None`` for no records or a mix).

    A record of another stage is a :class:`ManifestError`. A mix of stages (original and
    normalized intensities side by side) is allowed, a :class:`StageMixWarning` or a
    :class:`ManifestError` as ``mix`` says; either names a dataset of each stage.
    """
    by_stage: dict[str, ManifestRecord] = {}
    for record in records:
        by_stage.setdefault(record.stage, record)
    for stage, record in by_stage.items():
        if stage not in accepted:
            wants = " or ".join(f"{s} ({_STAGE_SOURCE[s]})" for s in accepted)
            raise ManifestError(
                f"{consumer} takes {wants} manifests; this is a {stage} record",
                dataset=record.dataset, case=record.case_id,
                hint=f"pass the manifest written by {_STAGE_SOURCE[accepted[0]]}",
            )
    if len(by_stage) > 1 and mix != "allow":
        source, normalized = by_stage["source"], by_stage["normalized"]
        message = (f"{consumer} got mixed stages: dataset {source.dataset!r} is a source manifest "
                   f"(original files and intensities) and dataset {normalized.dataset!r} a "
                   "normalized one")
        hint = "run `harmonize run` on every dataset and pass the manifests it writes"
        if mix == "error":
            raise ManifestError(message, dataset=source.dataset, case=source.case_id, hint=hint)
        warnings.warn(f"{message}; {hint}", StageMixWarning, stacklevel=3)
    return next(iter(by_stage)) if len(by_stage) == 1 else None


_STAGE_SOURCE = {"source": "`harmonize manifest`", "normalized": "`harmonize run`"}


@dataclass
class ManifestRecord:
    """One manifest line: everything a loader or a person needs to know about one case.

    ``stage`` says what the record describes: ``"source"`` (the release's files as found, any
    orientation, original intensities; ``harmonize manifest``) or ``"normalized"`` (the engine's
    RAS outputs with the operations and intensity mapping that made them; ``harmonize run``).
    Consumers read it instead of guessing, and state which stages they accept
    (:func:`require_stage`). Paths are POSIX strings relative to the manifest's folder. ``labels`` maps canonical names to the
    mask values that make them up (merges cost nothing: no mask is rewritten). ``label`` is the
    SAT-DS-style list of names; ``annotated`` lists the names labelled in *this* case, so a loader can
    tell "absent" from "not labelled". ``ct_window`` and ``same_patient_as`` are the case's typed
    fields (:class:`Case`); ``metadata`` is the plugin's free data, never read by the core.
    """

    dataset: str
    case_id: str
    patient_id: str
    modality: str
    image: str | list[str]
    mask: str | None
    label: list[str]
    labels: dict[str, list[int]]
    annotated: list[str]
    official_split: str | None
    split: str | None
    shape: list[int]
    spacing: list[float]
    orientation: str
    source: dict[str, Any]
    stage: str
    channels: list[str] | None = None
    affine: list[list[float]] | None = None
    ct_window: list[float] | None = None
    same_patient_as: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ManifestError(f"record stage must be one of {STAGES}, got {self.stage!r}",
                                dataset=self.dataset, case=self.case_id,
                                hint="regenerate the manifest")

    def to_json(self) -> dict[str, Any]:
        """The record as a schema-version-3 line: every field has one type whatever the
        dataset (:mod:`harmonize.manifest.serialize`, the one serializer)."""
        return encode(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifestRecord:
        """A record from a manifest line of any supported schema version (3 is decoded to the
        in-memory shapes; 1 is upgraded: its stage is ``normalized`` when it carries the
        engine's ``operations``, else ``source``)."""
        extra: dict[str, Any] = {}
        if data.get("schema_version") == 3:
            data = decode(data)
            extra = data.pop("extra")
        data = upgrade_v1(data)
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["extra"] = {**extra, **{k: v for k, v in data.items() if k not in known}}
        _typed_from_metadata(kwargs)
        return cls(**kwargs)

    @property
    def patient_key(self) -> str:
        """Patient id qualified by dataset: unique across every manifest."""
        return f"{self.dataset}:{self.patient_id}"


#: Typed case fields that manifests written before they existed kept in ``metadata``.
_TYPED_METADATA = ("ct_window", "same_patient_as")


def _typed_from_metadata(kwargs: dict[str, Any]) -> None:
    """Move ``ct_window``/``same_patient_as`` of an older manifest from ``metadata`` to their
    fields, so the core reads one place whatever the manifest's age."""
    metadata = kwargs.get("metadata")
    if not isinstance(metadata, dict) or not any(k in metadata for k in _TYPED_METADATA):
        return
    metadata = dict(metadata)
    for key in _TYPED_METADATA:
        if key in metadata:
            value = metadata.pop(key)
            if key not in kwargs and value is not None:
                kwargs[key] = list(value)
    kwargs["metadata"] = metadata


def as_posix_list(paths: Sequence[str]) -> list[str]:
    return [Path(p).as_posix() for p in paths]


__all__ = ["MANIFEST_SCHEMA", "SCHEMA_VERSION", "SPLITS", "STAGES", "Case", "ManifestRecord",
           "Skipped", "StageMixWarning", "as_posix_list", "check_identifier", "require_stage",
           "upgrade_v1"]
