"""The JSON Schema of dataset descriptors: the one definition of their structure.

:data:`DESCRIPTOR_SCHEMA` (draft 2020-12) states every key a descriptor may have, its type, its
allowed values and what it means; :func:`harmonize.plugin.descriptor.parse_descriptor` validates
with it first and then checks only what a schema cannot say (label values used by ``classes`` are
declared in ``values``, channel names are in the channel vocabulary, ``ct_window`` low < high, the
id regexes compile as Python regexes with a group ``id``). It is published, byte for byte, as
``registry/schema/descriptor.schema.json`` (a test fails on drift) for editors and other tools.

Enumerations come from the constants the code uses (:data:`MODALITIES`, the case contract's ``SPLITS``).
Descriptors are YAML: label values are written as integer keys (``1: liver``), which the schema
sees as the strings JSON has (``"1"``), as a YAML language server does.
"""

from __future__ import annotations

from typing import Any

from harmonize.plugin.descriptor_schema_layout import (
    LABEL_VALUE,
    LAYOUT_GROUP,
    LAYOUT_KEYS,
    RESCALE,
    TEXT,
)

#: Imaging modalities a descriptor may declare. ``CBCT`` (cone-beam CT) is its own modality: its
#: grey values are not calibrated Hounsfield units, so it takes the MR intensity rule, not a CT
#: window (:data:`harmonize.engine.normalize.PERCENTILE_ZSCORE_MODALITIES`).
MODALITIES = ("CT", "CBCT", "MR", "PET", "US", "XR")
#: A dataset id: lowercase letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit.
DATASET_ID = r"^[a-z0-9][a-z0-9._-]*$"
DESCRIPTOR_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://harmonize-med.invalid/schema/descriptor.json",
    "title": "harmonize dataset descriptor",
    "description": "What a dataset is (label values, class merges, modality, licence, ...) and, "
    "for a YAML-only dataset, how its cases are found (layout, case_id, patient_id). One YAML "
    "file per dataset: registry/datasets/<id>.yaml, or any file given with --descriptor.",
    "type": "object",
    "required": ["id", "name", "modality", "values", "classes"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": DATASET_ID,
               "description": "The dataset id: lowercase letters, digits, '.', '_' or '-', "
               "unique in the catalogue; a bundled descriptor's file name is <id>.yaml."},
        "name": {**TEXT, "description": "Human-readable name of the dataset."},
        "modality": {"enum": list(MODALITIES),
                     "description": "Imaging modality of every case."},
        "values": {
            "type": "object",
            "minProperties": 1,
            "description": "The release's label values and its own names for them "
            "({0: background, 1: kidney}); every value a mask may contain.",
            "propertyNames": {"pattern": "^[0-9]+$",
                              "description": "a label value is an integer >= 0"},
            "additionalProperties": {**TEXT, "description": "the release's name of the value"},
        },
        "classes": {
            "type": "object",
            "minProperties": 1,
            "description": "Canonical structure names (registry/vocabulary.yaml, or names "
            "plugins add) mapped to the label values they cover; a list merges values "
            "(kidney: [1, 2, 3]), one integer is a one-value list.",
            "propertyNames": {"pattern": r"\S",
                              "description": "a class is a canonical structure name"},
            "additionalProperties": {
                "type": ["integer", "array"],
                "minimum": 1,
                "items": LABEL_VALUE,
                "minItems": 1,
                "description": "The label values of this class: foreground values (>= 1) "
                "declared in 'values', as a list or one integer.",
            },
        },
        "region": {**TEXT, "description": "Body region (abdomen, brain, spine, ...)."},
        "licence": {**TEXT, "description": "The data licence, as the release states it."},
        "citation": {**TEXT, "description": "The publication to cite when using the data."},
        "homepage": {**TEXT, "description": "URL of the dataset's page."},
        "download": {**TEXT, "description": "How to download the release."},
        "version": {**TEXT, "description": "The release version described (quote numbers)."},
        "description": {**TEXT, "description": "Free text: what the data is, caveats."},
        "cases": {"type": "integer", "minimum": 0,
                  "description": "Number of cases in the release (informational)."},
        "channels": {
            "type": "array",
            "minItems": 1,
            "items": TEXT,
            "description": "Image channel names in file order (one file per channel, or the "
            "channels of a 4D file): names or synonyms from registry/channels.yaml, or names "
            "mapped by channel_synonyms. Without it a case has its modality's one channel.",
        },
        "channel_grid": {
            "enum": ["same", "first"],
            "description": "Channels from several files: same (default) requires one grid (a "
            "channel on another grid is a read error); first resamples each channel on another "
            "grid linearly onto the first channel's grid when read (PET/CT released on their "
            "own grids; the label must be on the first channel's grid), recorded "
            "in the record's operations.",
            "examples": ["first"],
        },
        "channel_synonyms": {
            "type": "object",
            "description": "This dataset's own channel names mapped onto canonical channel "
            "names of registry/channels.yaml ({MRI: T1}).",
            "additionalProperties": {**TEXT, "description": "a canonical channel name"},
        },
        "partial_labels": {
            "type": "boolean",
            "description": "The release labels only some classes in each case: a "
            "class is annotated in a case only when every value of it occurs in the case's "
            "label; a class without voxels there is not annotated (unknown, never read as "
            "absent). Default false: every class is annotated in every labelled case.",
        },
        "ct_window": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"type": "number"},
            "description": "Default CT window, two numbers (low, high) in HU with low < high, used by "
            "ct_window: dataset when a case has no window of its own.",
        },
        "rescale": {**RESCALE, "description": "Releases whose images are not stored in "
                    "physical units (HU for CT): physical = stored * slope + intercept, applied "
                    "once when an image is read ({intercept: -1000} for images stored with a "
                    "+1000 offset). The image is then float32 and the operation is recorded; "
                    "ct_window is in physical units. A layout group's rescale wins."},
        "official_split": {**TEXT, "description": "Free text: the release's official split "
                           "rule (layout groups or the plugin apply it)."},
        "expected_root": {**TEXT, "description": "What the folder given as --root looks like "
                          "(shown in hints when discovery finds nothing)."},
        "sat_ds": {
            "oneOf": [{"type": "string", "pattern": "^[A-Za-z0-9_]+$"},
                      {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9_]+$"},
                       "minItems": 1, "uniqueItems": True}],
            "description": "The dataset's name(s) in SAT-DS (zhaoziheng/SAT-DS; a "
            "list where one id is several SAT-DS datasets), one of registry/sat-ds.yaml's; "
            "`harmonize export sat` writes these names and SAT-DS's label lists.",
        },
        "overlaps": {
            "type": "array",
            "description": "Other datasets known to share cases or patients with this one.",
            "items": {
                "type": "object",
                "required": ["dataset"],
                "additionalProperties": False,
                "properties": {
                    "dataset": {"type": "string", "pattern": DATASET_ID,
                                "description": "id of the overlapping dataset"},
                    "note": {**TEXT, "description": "what is shared, and the source"},
                },
            },
        },
        "layout": {
            "description": "YAML-only datasets: how cases are found under the dataset root, as "
            "a list of groups (or one group). A descriptor with a layout needs no code.",
            "anyOf": [
                {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/layoutGroup"}},
                {"$ref": "#/$defs/layoutGroup"},
            ],
        },
        "roi_patterns": {
            "type": "object",
            "description": "Datasets whose structures carry free-text names (RTSTRUCT ROI "
            "names, DICOM-SEG segment labels): Python regular expressions per class, tried when "
            "a name is not exactly a class name, one of its vocabulary synonyms or a release "
            "name in 'values' (case-insensitive, '_', '-' and space equivalent). A pattern must "
            "match the whole name, case-insensitively, with separators written as space, '_' "
            "or '-'; a name matching no class or two classes is skipped and reported "
            "(`harmonize discover` shows every name and its mapping).",
            "propertyNames": {"pattern": r"\S",
                              "description": "a class of this descriptor ('classes')"},
            "additionalProperties": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1,
                          "description": "a Python regular expression (re.fullmatch)"},
                "description": "The patterns of one class, e.g. ['^lung[_ ]?l(eft)?$'].",
            },
        },
        "case_id": {
            "type": "string",
            "description": "YAML-only datasets: a Python regular expression searched in each "
            "image's {case} text (when its images pattern has one) or file name; its named group "
            "(?P<id>...) is the case id. An image it does not match is skipped and reported. "
            "Default: the {case} text, else the file name without its image suffix (.nii.gz, "
            ".nii, .nrrd, .mha, .mhd).",
        },
        "patient_id": {
            "type": "string",
            "description": "YAML-only datasets: a Python regular expression searched in the "
            "case id; its named group (?P<id>...) is the patient id (cases of one patient share "
            "a split). Default: the case id; a {patient} placeholder in images wins.",
        },
        **LAYOUT_KEYS,
    },
    "$defs": {"layoutGroup": LAYOUT_GROUP},
}
