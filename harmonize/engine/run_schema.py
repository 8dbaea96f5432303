"""The JSON Schema of run files (``harmonize run --config run.yaml``): the one definition of their
structure.

:data:`RUN_SCHEMA` (draft 2020-12) states every key a run file may have, its type, allowed values
and meaning; :func:`harmonize.engine.config.parse_config` validates with it first, then converts
values and checks what a schema cannot say (``ct_window`` low < high, ratios summing to 1, a preset's
own rules) through the same functions the flags use. Published, byte for byte, as
``registry/schema/run.schema.json`` (a test fails on drift) for editors and other tools.

Settings words are read from the :class:`~harmonize.engine.presets.Settings` type annotations and
preset names from :data:`~harmonize.engine.presets.PRESETS`, so the schema follows the engine.
In a run file a settings value takes its canonical YAML form (lists of numbers, lowercase words);
the flags' string forms (``"1.5,1.5,3"``) are for the command line.
"""

from __future__ import annotations

import typing
from typing import Any

from harmonize.engine.presets import PRESETS, Settings

#: Executors a run can use.
EXECUTORS = ("local", "dask")
#: The word that means "no value" where null is allowed (``ct_window: none``).
NONE_WORD = "none"


def _words(field: str) -> list[str]:
    """The string literals in the type annotation of ``Settings.<field>``."""
    found: list[str] = []

    def walk(tp: Any) -> None:
        if typing.get_origin(tp) is typing.Literal:
            found.extend(a for a in typing.get_args(tp) if isinstance(a, str))
        else:
            for arg in typing.get_args(tp):
                walk(arg)

    walk(typing.get_type_hints(Settings)[field])
    return found


def _numbers(n: int, description: str, **bounds: float) -> dict[str, Any]:
    return {"type": "array", "minItems": n, "maxItems": n, "description": description,
            "items": {"type": "number", **bounds}}


#: One schema per settings key, in the order flags and docs list them.
SETTING_SCHEMAS: dict[str, dict[str, Any]] = {
    "preset": {
        "enum": [*PRESETS, None],
        "description": "A published normalization convention the other keys start from "
        "(`harmonize presets` lists them); null: the defaults.",
    },
    "spacing": {
        "description": "Target spacing in mm in RAS axis order: three numbers (x, y, z), one number "
        "(isotropic), or native (default; null too): no resampling.",
        "anyOf": [
            _numbers(3, "three positive numbers (mm)", exclusiveMinimum=0),
            {"type": "number", "exclusiveMinimum": 0},
            {"enum": ["native", NONE_WORD, None]},
        ],
    },
    "interpolation": {
        "enum": _words("interpolation"),
        "description": "Image interpolation when resampling; masks are always nearest "
        "neighbour.",
    },
    "grid": {
        "enum": _words("grid"),
        "description": "Output grid when resampling: torchio (default): TorchIO Resample's "
        "floor(n * spacing / target) voxels centred on the field of view; monai: MONAI Spacing's "
        "round((n - 1) * spacing / target) + 1 voxels from the first voxel, border padding (the "
        "sat preset).",
    },
    "crop_foreground": {
        "type": "boolean",
        "description": "After resampling, cut image and mask to the box of image voxels > 0 in "
        "any channel (MONAI CropForeground; the sat preset), so intensity statistics are those "
        "of that box. Default false.",
    },
    "ct_window": {
        "description": "CT window: two numbers (low, high) in HU with low < high; dataset (default): the "
        "case's own window, else the descriptor's ct_window; foreground: the dataset's pooled "
        "foreground 0.5/99.5 percentiles; none (or null): raw HU.",
        "anyOf": [
            _numbers(2, "two numbers (low, high) in HU, low < high"),
            {"enum": [*_words("ct_window"), NONE_WORD, None]},
        ],
    },
    "ct_scaling": {
        "enum": _words("ct_scaling"),
        "description": "After the CT window: unit maps it to [0, 1]; zscore uses the image's "
        "mean/std; dataset-zscore the dataset's foreground mean/std.",
    },
    "mr_percentiles": {
        "description": "MR clip percentiles (low, high) (0 <= low < high <= 100) before a "
        "per-image z-score (PET too with pet_intensity percentile-zscore); none (or null) "
        "leaves them raw.",
        "anyOf": [
            _numbers(2, "two percentiles (low, high)", minimum=0, maximum=100),
            {"enum": [NONE_WORD, None]},
        ],
    },
    "pet_intensity": {
        "enum": _words("pet_intensity"),
        "description": "PET channels: suv-clip (default) keeps SUV units clipped to 0..50; "
        "percentile-zscore clips to mr_percentiles and z-scores (the sat preset). CT channels "
        "of PET/CT follow the CT settings.",
    },
    "intensity": {
        "enum": _words("intensity"),
        "description": "auto: the intensity convention of each modality; raw: no intensity "
        "change for any modality.",
    },
    "irregular_dicom": {
        "enum": _words("irregular_dicom"),
        "description": "refuse (default): a DICOM series that is not one regular grid is a read "
        "error; resample: interpolate irregular slice gaps onto a regular grid and drop "
        "byte-identical duplicated slices, recorded in the operations "
        "(--resample-irregular-dicom).",
    },
}
SETTING_KEYS = tuple(SETTING_SCHEMAS)

_PATH = {"type": "string", "pattern": r"\S"}
_ROOT = {**_PATH, "description": "The folder the dataset was released into (relative paths are "
         "relative to the run file's folder; ~ is expanded)."}

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "Run-wide normalization settings; every key optional. The run-wide preset "
    "(or the defaults) is the base, the other keys replace its fields.",
    "additionalProperties": False,
    "properties": SETTING_SCHEMAS,
}

TARGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One dataset: its root and any settings key overriding the run-wide "
    "settings for it; a dataset naming its own preset starts again from that preset.",
    "required": ["root"],
    "additionalProperties": False,
    "properties": {"root": _ROOT, **{k: {"$ref": f"#/$defs/settings/properties/{k}"}
                                     for k in SETTING_KEYS}},
}

RUN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://harmonize-med.invalid/schema/run.json",
    "title": "harmonize run file",
    "description": "What `harmonize run --config FILE` processes and how. Relative paths are "
    "relative to the file's folder; a key left out (or null) is taken from the flags or the "
    "defaults. Flags given with --config override the file's run-wide keys.",
    "type": "object",
    "required": ["datasets"],
    "additionalProperties": False,
    "properties": {
        "out": {**_PATH, "type": ["string", "null"],
                "description": "The output folder (--out)."},
        "workers": {"type": ["integer", "null"], "minimum": 1,
                    "description": "Parallel workers (--workers); 1 runs in this process."},
        "executor": {"enum": [*EXECUTORS, None],
                     "description": "local: a process pool (default); dask: a Dask cluster."},
        "scheduler": {"type": ["string", "null"],
                      "description": "Dask scheduler address such as tcp://host:8786 (default: "
                      "a local Dask cluster)."},
        "seed": {"type": ["integer", "null"], "description": "Seed of the split hash (--seed)."},
        "allow_shrink": {"type": ["boolean", "null"],
                         "description": "true: replace a dataset's manifest even if cases it lists "
                         "are missing from this run (--allow-shrink); default false: keep it and "
                         "exit 1 naming the missing cases."},
        "ratios": {**_numbers(3, "", minimum=0), "type": ["array", "null"],
                   "description": "train, val, test ratios (non-negative, summing to 1)."},
        "descriptors": {
            "description": "Extra YAML-only dataset descriptors: files or folders (--descriptor).",
            "anyOf": [_PATH, {"type": "array", "items": _PATH}, {"type": "null"}],
        },
        "settings": {"$ref": "#/$defs/settings"},
        "datasets": {
            "type": "object",
            "minProperties": 1,
            "description": "The datasets to process: dataset id -> {root: PATH, ...settings "
            "overrides}, or dataset id -> PATH.",
            "additionalProperties": {
                "description": "The dataset's root folder, or its root and settings overrides.",
                "anyOf": [_ROOT, {"$ref": "#/$defs/target"}],
            },
        },
    },
    "$defs": {"settings": SETTINGS_SCHEMA, "target": TARGET_SCHEMA},
}
