"""The JSON Schema of a manifest line (checked in as ``jsonl/schema.json``, drift-tested).

Version 3 is generated from :data:`~harmonize.manifest.columns.COLUMNS` (one type per field, every
field present, so a collection of manifests is one table) plus the constraints below. Version 1
and 2 lines still read; ``harmonize validate`` checks them against the frozen version-2 schema
(:mod:`harmonize.manifest.schema_v2`).
"""

from __future__ import annotations

from typing import Any

from harmonize.gate import SAFE_ID
from harmonize.manifest.columns import COLUMNS, Col
from harmonize.plugin.case import SPLITS

#: 2 added ``stage``; 3 gave every field one type (a collection of manifests is one table).
#: Version 1 and 2 manifests still read (v1's stage is inferred once, on reading).
SCHEMA_VERSION = 3
#: What a record describes: the release's files as found (``harmonize manifest``) or the engine's
#: normalized outputs (``harmonize run``).
STAGES = ("source", "normalized")

_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "json": "string"}
#: Fields that are never null.
_NOT_NULL = {"schema_version", "stage", "dataset", "case_id", "patient_id", "modality", "image",
             "label", "labels", "annotated", "shape", "spacing", "orientation", "source",
             "same_patient_as", "metadata"}
_SHA256 = "^[0-9a-f]{64}$"

#: Descriptions and constraints added to the generated types (JSON pointer-ish paths).
_MORE: dict[str, dict[str, Any]] = {
    "schema_version": {"const": SCHEMA_VERSION},
    "stage": {"enum": list(STAGES), "description": "source: the release's files as found "
              "(`harmonize manifest`); normalized: the engine's outputs (`harmonize run`)."},
    "dataset": {"pattern": "^[a-z0-9][a-z0-9._-]*$"},
    "case_id": {"pattern": SAFE_ID.pattern},
    "patient_id": {"minLength": 1},
    "modality": {"minLength": 1},
    "image": {"minItems": 1, "description": "Image file(s) relative to the manifest's folder: "
              "one path, or one per channel file (always a list)."},
    "image/*": {"minLength": 1},
    "mask": {"description": "Label map relative to the manifest's folder, or null."},
    "label": {"uniqueItems": True},
    "labels": {"description": "Canonical class names and the mask values making up each, in "
               "the record's order (a list of {name, values}: one type for every dataset)."},
    "labels/*/values/*": {"minimum": 0},
    "annotated": {"uniqueItems": True, "description": "Classes labelled in this case."},
    "official_split": {"enum": [*SPLITS, None]},
    "split": {"enum": [*SPLITS, None]},
    "shape": {"minItems": 3, "maxItems": 4},
    "shape/*": {"minimum": 1},
    "spacing": {"minItems": 3, "maxItems": 3},
    "spacing/*": {"exclusiveMinimum": 0},
    "orientation": {"pattern": "^[RLAPSI]{3}$"},
    "source/images/*/sha256": {"pattern": _SHA256},
    "source/label/sha256": {"pattern": _SHA256},
    "source/channels": {"description": "The case's channel names as the dataset ships them."},
    "channels": {"description": "Canonical channel names (registry/channels.yaml) in the "
                 "image's channel order."},
    "affine": {"minItems": 4, "maxItems": 4},
    "affine/*": {"minItems": 4, "maxItems": 4},
    "ct_window": {"minItems": 2, "maxItems": 2, "description": "Per-series CT window [low, high] "
                  "in HU the plugin gave for this case."},
    "same_patient_as": {"uniqueItems": True, "description": "dataset:patient_id keys of the same "
                        "person in other datasets."},
    "same_patient_as/*": {"pattern": "^[^:]+:.+$"},
    "metadata": {"description": "The plugin's free data as a JSON object's text; never read by "
                 "the core."},
    "fingerprint": {"pattern": _SHA256, "description": "SHA-256 of the image's RAS-canonical "
                    "voxels and grid: the same image in two datasets has the same value."},
    "instances": {"description": "Per-instance lesion features (instance masks); the plugin's "
                  "own attributes as JSON text in `attributes`."},
    "original": {"description": "Shape, spacing, orientation, affine and dtype of the image "
                 "before normalization (normalized records)."},
    "operations": {"description": "What normalization did, in order: {op, params (JSON text)}."},
    "intensity": {"description": "The intensity mapping y = (clip(x, *clip) - offset) / scale, "
                  "one object per channel (same keys for CT and MR; method `none` changed "
                  "nothing)."},
    "settings": {"description": "The run's normalization settings as JSON text."},
    "provenance": {"description": "Versions of harmonize and the libraries that touched voxels."},
    "extra": {"description": "Fields the schema does not type, as a JSON object's text, or null."},
}


def _schema(col: Col, path: str, *, nullable: bool) -> dict[str, Any]:
    if col.kind == "list":
        assert col.item is not None
        out: dict[str, Any] = {"type": "array", "items": _schema(col.item, f"{path}/*",
                                                                 nullable=False)}
    elif col.kind == "struct":
        out = {"type": "object", "required": [name for name, _ in col.fields],
               "additionalProperties": False,
               "properties": {name: _schema(sub, f"{path}/{name}", nullable=True)
                              for name, sub in col.fields}}
    else:
        out = {"type": _JSON_TYPES[col.kind]}
    out.update(_MORE.get(path, {}))
    if nullable:
        out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://harmonize-med.invalid/schema/manifest-record.json",
    "title": "harmonize manifest record",
    "description": "One JSON object per line of <dataset>.jsonl, schema version 3: every field "
    "present with one type whatever the dataset; paths are relative to the manifest's folder.",
    "type": "object",
    "required": list(COLUMNS),
    "properties": {name: _schema(col, name, nullable=name not in _NOT_NULL)
                   for name, col in COLUMNS.items()},
    "additionalProperties": False,
}


def schema_for(version: object) -> dict[str, Any]:
    """The JSON Schema a line of ``version`` is checked against (v1 lines once upgraded)."""
    if version == SCHEMA_VERSION:
        return MANIFEST_SCHEMA
    from harmonize.manifest.schema_v2 import MANIFEST_SCHEMA_V2

    return MANIFEST_SCHEMA_V2
