"""Typed records that travel between plugins, the engine and the manifest.

* :class:`Case` is what a plugin's ``discover`` yields for every case it finds.
* :class:`Skipped` is what it yields for everything it saw and did not take (never drop silently).
* :class:`ManifestRecord` is one line of a manifest; :data:`MANIFEST_SCHEMA` is its JSON Schema
  (checked in as ``jsonl/schema.json``).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harmonize.errors import DiscoveryError, ManifestError

#: 2 added ``stage``; version 1 manifests still read (their stage is inferred once, on reading).
SCHEMA_VERSION = 2
SPLITS = ("train", "val", "test")
#: What a record describes: the release's files as found (``harmonize manifest``) or the engine's
#: normalized outputs (``harmonize run``).
STAGES = ("source", "normalized")

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def check_identifier(value: str, *, what: str, dataset: str | None, file: Path | None = None) -> str:
    """Return ``value`` if it is safe as a folder name (no separators, no ``..``, no leading dot)."""
    if not isinstance(value, str) or not _SAFE_ID.match(value) or ".." in value.split("."):
        raise DiscoveryError(
            f"unsafe {what} {value!r}: ids may only use letters, digits and . _ + - "
            "and may not contain path separators or '..'",
            dataset=dataset,
            file=file,
            hint="fix the plugin's id extraction or rename the file",
        )
    if value in {".", ".."} or "/" in value or "\\" in value:
        raise DiscoveryError(f"unsafe {what} {value!r}", dataset=dataset, file=file)
    return value


def check_ct_window(value: Any, *, case: str | None = None) -> tuple[float, float] | None:
    """``None``, or ``value`` as ``(low, high)`` floats: two finite numbers with ``low < high``."""
    if value is None:
        return None
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  for v in value))
    if not ok or value[0] >= value[1]:
        raise DiscoveryError(
            f"ct_window must be (low, high) in HU with low < high, got {value!r}",
            case=case, hint="fix the plugin's discover() or the dataset's window file",
        )
    return (float(value[0]), float(value[1]))


def check_patient_links(value: Any, *, case: str | None = None) -> tuple[str, ...]:
    """``value`` as a tuple of unique ``dataset:patient_id`` keys (a bare string is an error)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise DiscoveryError(
            f"same_patient_as must be a list of 'dataset:patient_id' keys, got {value!r}",
            case=case, hint="e.g. same_patient_as=('other-dataset:patient-12',)",
        )
    for key in value:
        dataset, sep, patient = key.partition(":") if isinstance(key, str) else ("", "", "")
        if not sep or not dataset.strip() or not patient.strip():
            raise DiscoveryError(
                f"same_patient_as entry {key!r} is not a 'dataset:patient_id' key",
                case=case, hint="qualify the other patient id with its dataset id",
            )
    return tuple(dict.fromkeys(value))


@dataclass(frozen=True)
class Case:
    """One case as found in a dataset's released layout.

    ``images`` holds one path per channel (a 4D file or a DICOM folder counts as one path);
    ``label`` is ``None`` for unlabelled cases (e.g. a hidden test set). ``official_split`` is one of
    ``train``/``val``/``test`` or ``None`` when the dataset has no official split for this case.
    ``annotated`` overrides the descriptor's class list for this case (``None`` = all classes if
    the case has a label, none otherwise).

    Typed fields the core reads (validated here, so a bad value fails at discovery):

    * ``ct_window``: a per-series CT window ``(low, high)`` in HU (``low < high``, finite) that wins
      over the descriptor's ``ct_window``; ``None`` = use the run's or dataset's window.
    * ``same_patient_as``: ``dataset:patient_id`` keys of the same person in other datasets; the
      splits keep linked patients together and ``harmonize duplicates`` reports them.

    ``metadata`` is free, JSON-serialisable data the core never reads; it is copied to the record.
    """

    case_id: str
    patient_id: str
    images: tuple[Path, ...]
    label: Path | None = None
    official_split: str | None = None
    channel_names: tuple[str, ...] | None = None
    annotated: tuple[str, ...] | None = None
    labels: Mapping[str, Sequence[int]] | None = None
    ct_window: tuple[float, float] | None = None
    same_patient_as: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(Path(p) for p in self.images))
        object.__setattr__(self, "ct_window", check_ct_window(self.ct_window, case=self.case_id))
        object.__setattr__(self, "same_patient_as",
                           check_patient_links(self.same_patient_as, case=self.case_id))
        if self.label is not None:
            object.__setattr__(self, "label", Path(self.label))
        if not self.images:
            raise DiscoveryError(f"case {self.case_id!r} has no image", case=self.case_id)
        if self.official_split not in (None, *SPLITS):
            raise DiscoveryError(
                f"official_split must be one of {SPLITS} or None, got {self.official_split!r}",
                case=self.case_id,
            )
        if self.channel_names is not None and len(self.channel_names) not in (1, len(self.images)):
            # One multi-channel file may carry several channel names.
            if len(self.images) != 1:
                raise DiscoveryError(
                    f"{len(self.channel_names)} channel names for {len(self.images)} images",
                    case=self.case_id,
                )

    def files(self) -> list[Path]:
        """Every source file or folder of this case, images first."""
        return [*self.images, *([self.label] if self.label is not None else [])]


@dataclass(frozen=True)
class Skipped:
    """Something discovery saw and did not turn into a case, with the reason and a next step."""

    path: Path
    reason: str
    case_id: str | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "case": self.case_id,
            "reason": self.reason,
            "hint": self.hint,
        }


def upgrade_v1(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A schema-version-1 manifest line as version 2 (``stage`` added); other lines unchanged.

    The one place the stage is inferred: version 1 had no field for it.
    """
    if data.get("schema_version") != 1 or "stage" in data:
        return data
    stage = "normalized" if "operations" in data else "source"
    return {**data, "schema_version": SCHEMA_VERSION, "stage": stage}


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
        """JSON object with a stable key order (engine fields from ``extra`` merged at the end)."""
        data = asdict(self)
        extra = data.pop("extra")
        data = {"schema_version": data.pop("schema_version"), "stage": data.pop("stage"),
                **data, **extra}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ManifestRecord:
        """A record from a manifest line of any supported schema version (1 is upgraded: its
        stage is ``normalized`` when it carries the engine's ``operations``, else ``source``)."""
        data = upgrade_v1(data)
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
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


_PATH = {"type": "string", "minLength": 1}
_NAME_TO_VALUES = {
    "type": "object",
    "additionalProperties": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0},
        "uniqueItems": True,
    },
}

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://harmonize-med.invalid/schema/manifest-record.json",
    "title": "harmonize manifest record",
    "description": "One JSON object per line of <dataset>.jsonl; paths are relative to the manifest's folder.",
    "type": "object",
    "required": [
        "schema_version", "stage", "dataset", "case_id", "patient_id", "modality", "image", "mask",
        "label", "labels", "annotated", "official_split", "split", "shape", "spacing",
        "orientation", "source",
    ],
    "properties": {
        "schema_version": {"type": "integer", "const": SCHEMA_VERSION},
        "stage": {
            "description": "source: the release's files as found (`harmonize manifest`); "
            "normalized: the engine's outputs (`harmonize run`).",
            "enum": list(STAGES),
        },
        "dataset": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"},
        "case_id": {"type": "string", "pattern": _SAFE_ID.pattern},
        "patient_id": {"type": "string", "minLength": 1},
        "modality": {"type": "string", "minLength": 1},
        "image": {"oneOf": [_PATH, {"type": "array", "items": _PATH, "minItems": 1}]},
        "mask": {"oneOf": [_PATH, {"type": "null"}]},
        "label": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "labels": _NAME_TO_VALUES,
        "annotated": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "official_split": {"enum": [*SPLITS, None]},
        "split": {"enum": [*SPLITS, None]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 3, "maxItems": 4},
        "spacing": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 3, "maxItems": 3},
        "orientation": {"type": "string", "pattern": "^[RLAPSI]{3}$"},
        "source": {
            "type": "object",
            "required": ["images"],
            "properties": {
                "images": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["path", "sha256"],
                        "properties": {"path": _PATH, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
                    },
                },
                "channels": {
                    "description": "The case's channel names as the dataset ships them "
                    "(record-level ``channels`` holds their canonical names).",
                    "type": "array", "items": {"type": "string"},
                },
                "label": {
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "required": ["path", "sha256"],
                            "properties": {"path": _PATH, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
                        },
                    ]
                },
            },
        },
        "channels": {
            "description": "Canonical channel names (registry/channels.yaml) in the image's channel "
            "order; null only in manifests written before channel names were canonical.",
            "oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}}],
        },
        "affine": {
            "oneOf": [
                {"type": "null"},
                {"type": "array", "items": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}, "minItems": 4, "maxItems": 4},
            ]
        },
        "ct_window": {
            "description": "Per-series CT window [low, high] in HU the plugin gave for this case.",
            "oneOf": [{"type": "null"},
                      {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}],
        },
        "same_patient_as": {
            "description": "dataset:patient_id keys of the same person in other datasets.",
            "type": "array", "items": {"type": "string", "pattern": "^[^:]+:.+$"}, "uniqueItems": True,
        },
        "metadata": {"type": "object", "description": "The plugin's free data; never read by the core."},
        "fingerprint": {
            "description": "SHA-256 of the image's RAS-canonical voxels and grid: the same image "
            "in two cases or datasets has the same value whatever its file format or axis order.",
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
        },
        "instances": {
            "description": "Per-instance lesion features (instance masks): value, class, long/short "
            "in-plane axis (mm), volume (mL), mean intensity, centroid (mm, RAS).",
            "type": "array",
            "items": {
                "type": "object",
                "required": ["value", "voxels", "volume_ml", "long_axis_mm", "short_axis_mm"],
                "properties": {
                    "value": {"type": "integer", "minimum": 1},
                    "voxels": {"type": "integer", "minimum": 0},
                    "volume_ml": {"type": "number", "minimum": 0},
                    "long_axis_mm": {"type": "number", "minimum": 0},
                    "short_axis_mm": {"type": "number", "minimum": 0},
                    "mean_hu": {"type": ["number", "null"]},
                    "centroid_mm": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
                },
            },
        },
    },
    "additionalProperties": True,
}


def as_posix_list(paths: Sequence[str]) -> list[str]:
    return [Path(p).as_posix() for p in paths]
