"""The JSON Schema of a schema-version-2 manifest line (frozen): ``harmonize validate`` checks v1
and v2 lines against it (v1 once its stage is inferred). Version 3 is :mod:`harmonize.manifest.schema`."""

from __future__ import annotations

from typing import Any

from harmonize.gate import SAFE_ID
from harmonize.plugin.case import SPLITS

SCHEMA_VERSION = 2
STAGES = ("source", "normalized")

_PATH = {"type": "string", "minLength": 1}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
#: one source file of a record: its path (relative to the manifest) and content hash
_SOURCE_FILE = {
    "type": "object",
    "required": ["path", "sha256"],
    "properties": {"path": _PATH, "sha256": _SHA256},
}


_NAME_TO_VALUES = {
    "type": "object",
    "additionalProperties": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0},
        "uniqueItems": True,
    },
}


MANIFEST_SCHEMA_V2: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://harmonize-med.invalid/schema/manifest-record-v2.json",
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
        "case_id": {"type": "string", "pattern": SAFE_ID.pattern},
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
                "images": {"type": "array", "items": _SOURCE_FILE},
                "channels": {
                    "description": "The case's channel names as the dataset ships them "
                    "(record-level ``channels`` holds their canonical names).",
                    "type": "array", "items": {"type": "string"},
                },
                "label": {"oneOf": [{"type": "null"}, _SOURCE_FILE]},
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
