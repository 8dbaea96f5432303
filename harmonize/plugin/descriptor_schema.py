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

from harmonize.plugin.case import SPLITS

#: Imaging modalities a descriptor may declare.
MODALITIES = ("CT", "MR", "PET", "US", "XR")
#: A dataset id: lowercase letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit.
DATASET_ID = r"^[a-z0-9][a-z0-9._-]*$"
#: A path inside the dataset root: no leading ``/`` or ``\``, no ``..`` component.
_INSIDE_ROOT = r"^(?![/\\])(?!(.*[/\\])?\.\.([/\\]|$))"

_TEXT = {"type": "string"}
_LABEL_VALUE = {"type": "integer", "minimum": 1,
                "description": "A foreground label value (>= 1) declared in 'values'."}

_TEMPLATE = _INSIDE_ROOT + r"([^{}]|\{\w+\})*$"

LAYOUT_GROUP: dict[str, Any] = {
    "type": "object",
    "description": "One group of images found by a glob, with its label template and official "
    "split. Groups are scanned in order; a case id found twice (in one group or two) is an "
    "error naming both files.",
    "required": ["images"],
    "additionalProperties": False,
    "properties": {
        "images": {
            "type": "string",
            "pattern": _INSIDE_ROOT,
            "description": "Glob relative to the dataset root (pathlib syntax: '*', '?', "
            "'[...]', '**' for any depth) selecting this group's image files, one case per "
            "file; it must stay inside the dataset root (no leading '/' and no '..'). "
            "Hidden and AppleDouble files are skipped and reported. It may name parts of the "
            "path with placeholders, each inside one folder or file name: {case} (the case id), "
            "{patient} (the patient id), {session} (kept in the record's metadata) and {split} "
            "(the official split, through split_names), or any other name (e.g. {region}) "
            "that templates reuse; {name:glob} constrains one (default '*'); a placeholder used twice must match the same text both times. Without {case} "
            "the case id comes from the file name (case_id).",
            "examples": ["imagesTr/*.nii.gz", "{case:BDMAP_*}/ct.nii.gz",
                         "{case}/{case}-t1n.nii.gz",
                         "images{split}/{case}_0000.nii.gz", "{case:case_*}/{case}_IMG_CT.nrrd"],
        },
        "case_template": {
            "type": "string",
            "pattern": r"\{\w+\}",
            "description": "The case id's text built from several placeholders of images, "
            "where no single path part is unique (a patient's studies: '{patient}_{study}'); "
            "used instead of {case} (case_id then applies to it), and templates' {case} is "
            "this id.",
            "examples": ["{patient}_{study}"],
        },
        "label": {
            "type": ["string", "null"],
            "pattern": _TEMPLATE,
            "description": "Path of a case's label file relative to the dataset root, with the "
            "placeholders {case} (the case id), {name} (the image file name), {parent} (the "
            "image's folder relative to the root), {patient} and the images pattern's "
            "placeholders ({rater} in the file name with raters), and no other braces; "
            "it must stay inside the dataset root (no leading '/' and no '..'). Omit it (or "
            "null) for a group released without labels. Label files no image claims are "
            "reported as skipped.",
            "examples": ["labelsTr/{name}", "{parent}/{case}-seg.nii.gz"],
        },
        "structures": {
            "type": "string",
            "pattern": _TEMPLATE,
            "description": "Instead of label (not both): one binary mask file per structure. A path "
            "template like label's whose file name holds {structure}, the structure's part of "
            "the file name, mapped to a class by structure_files (default: the text itself is "
            "the class name). The masks of a case are combined into one label map keeping "
            "overlaps (every structure's voxels come back exactly); a structure without a file "
            "is not annotated in that case; several files of one class (one per lesion) are "
            "united. A structure may be a DICOM series folder. The descriptor's values must "
            "number the classes 1..N, one value each, in order.",
            "examples": ["{parent}/segmentations/{structure}.nii.gz",
                         "{parent}/{case}_OAR_{structure}.seg.nrrd"],
        },
        "channel_files": {
            "type": "object",
            "minProperties": 1,
            "description": "One image file per channel: channel name (registry/channels.yaml or "
            "channel_synonyms) -> path template like label's, in channel order. The file "
            "matched by images anchors the case; a missing channel file skips the case.",
            "propertyNames": {"pattern": r"\S"},
            "additionalProperties": {"type": "string", "pattern": _TEMPLATE},
            "examples": [{"T1": "{parent}/{case}-t1n.nii.gz", "T1ce": "{parent}/{case}-t1c.nii.gz",
                          "T2": "{parent}/{case}-t2w.nii.gz", "FLAIR": "{parent}/{case}-t2f.nii.gz"}],
        },
        "raters": {
            "oneOf": [
                {"enum": ["union", "majority"]},
                {"type": "object", "required": ["choose"], "additionalProperties": False,
                 "properties": {"choose": {"type": "string", "minLength": 1}}},
            ],
            "description": "With a label template whose file name holds {rater}: several label "
            "files per case, one per rater. union / majority: per class, a voxel is in the "
            "class when any rater / more than half of the case's raters put it there (overlaps "
            "kept); {choose: <rater>}: that rater's file only.",
            "examples": ["union", "majority", {"choose": "1"}],
        },
        "images_root": {
            "type": "string", "pattern": r"^\w+$",
            "description": "Find this group's images (and channel files) under the named "
            "extra root (roots) instead of --root.",
            "examples": ["base"],
        },
        "label_root": {
            "type": "string", "pattern": r"^\w+$",
            "description": "Find this group's label, structure or rater files under the named "
            "extra root (roots) instead of --root.",
            "examples": ["dap"],
        },
        "split": {
            "enum": [*SPLITS, None],
            "description": "Official split of every case in the group (train, val or test); "
            "omit it (or null) when the release has none. Official test cases stay test. "
            "A {split} placeholder, split_file and split_ids take precedence.",
        },
        "label_required": {
            "type": "boolean",
            "default": True,
            "description": "true (default): an image whose label file is missing is skipped "
            "and reported. false: the case is kept unlabelled (labels published later).",
        },
        "duplicates": {
            "enum": ["error", "skip"],
            "default": "error",
            "description": "error (default): a case id an earlier group already found is an "
            "error naming both files. skip: the earlier group wins, this group's copy is "
            "reported as skipped (a release's corrected cases listed before the originals).",
        },
    },
    "not": {"required": ["label", "structures"]},
}

#: The descriptor's top-level layout keys beyond ``layout``, ``case_id`` and ``patient_id``.
LAYOUT_KEYS: dict[str, Any] = {
    "structure_files": {
        "type": "object",
        "description": "YAML-only datasets with structures (or slicer-segments): the "
        "{structure} text of a file name, or a segment name, -> its class (a key of classes). Files whose text is neither listed nor a class are "
        "skipped and reported; several texts may map to one class (their masks are united).",
        "additionalProperties": {"type": "string", "pattern": r"\S"},
        "examples": [{"kidney_left": "left kidney", "gall_bladder": "gallbladder"}],
    },
    "split_names": {
        "type": "object",
        "description": "YAML-only datasets: the release's split names ({split} placeholder "
        "text, split_file values) -> train, val or test. Unlisted names must already be one of "
        "those three.",
        "additionalProperties": {"enum": list(SPLITS)},
        "examples": [{"Tr": "train", "Ts": "test", "training": "train"}],
    },
    "split_file": {
        "type": "object",
        "description": "YAML-only datasets: the official split read from a file of the release "
        "(by extension: .csv/.tsv with id_column and split_column; .json, an object of split "
        "name -> list of ids, or of objects whose id_key holds the id; .txt, one id per line, "
        "all in split, or without split, sections each opened by a line '<split name>:'). Ids "
        "not listed keep the group's split.",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {
            "path": {"type": "string", "pattern": _INSIDE_ROOT + r"[^{}]*$",
                     "description": "the file, relative to the dataset root"},
            "id_column": {**_TEXT, "description": "CSV: the column holding the id"},
            "split_column": {**_TEXT, "description": "CSV: the column holding the split"},
            "delimiter": {"type": "string", "minLength": 1, "maxLength": 1,
                          "description": "CSV: the field separator (default ',' for .csv, "
                          "tab for .tsv; e.g. ';')"},
            "id_key": {**_TEXT, "description": "JSON: the key of an entry object holding the id"},
            "id_pattern": {**_TEXT, "description": "Python regex with a group (?P<id>...) "
                           "searched in each listed id (e.g. a path); default: the whole text"},
            "split": {"enum": list(SPLITS), "description": ".txt: the split of every id listed "
                      "(omit it for a file of '<split name>:' sections)"},
            "by": {"enum": ["case", "patient"], "default": "case",
                   "description": "whether the file lists case ids or patient ids"},
        },
        "examples": [
            {"path": "metadata/patients.csv", "id_column": "patient_id",
             "split_column": "subset", "by": "patient"},
            {"path": "metadata/data_split.txt", "id_pattern": "^(?P<id>.+?)\\.nii\\.gz$"},
            {"path": "dataset.json", "id_key": "image",
             "id_pattern": "(?P<id>[^/]+)\\.nii\\.gz$"},
        ],
    },
    "value_ranges": {
        "type": "object",
        "description": "YAML-only datasets: grey-value ranges [low, high] (inclusive) of the "
        "label files that stand for a label value (masks saved as images); a non-zero voxel in "
        "no range is an error.",
        "propertyNames": {"pattern": "^[0-9]+$"},
        "additionalProperties": {"type": "array", "items": {"type": "number"},
                                 "minItems": 2, "maxItems": 2},
        "examples": [{"1": [55, 70], "2": [110, 135], "3": [175, 200], "4": [240, 255]}],
    },
    "label_encoding": {
        "enum": ["values", "one-hot", "one-hot-with-background", "slicer-segments"],
        "default": "values",
        "description": "YAML-only datasets: how a label file encodes structures. values "
        "(default): one 3D map of label values. one-hot: a 4D file whose channel k is the k-th "
        "class in value order (values 1..N, one per class; overlaps kept); "
        "one-hot-with-background: the same after a background channel 0. slicer-segments: a "
        "3D Slicer segmentation (.seg.nrrd) whose Segment<k>_Name/_LabelValue/_Layer header "
        "fields name the segments (mapped by structure_files; overlaps kept).",
        "examples": ["one-hot"],
    },
    "roots": {
        "type": "object",
        "description": "YAML-only datasets: extra folders, by name, for releases whose images and "
        "labels are apart (labels added to another release's images). Each path is relative to "
        "--root (it may leave it) or absolute; HARMONIZE_ROOTS=name=path overrides it at run "
        "time. Groups use them with images_root / label_root.",
        "propertyNames": {"pattern": r"^\w+$"},
        "additionalProperties": {"type": "string", "minLength": 1},
        "examples": [{"base": "../base-release"}],
    },
    "split_ids": {
        "type": "object",
        "description": "YAML-only datasets: official split -> list of case ids; wins over every "
        "other split source.",
        "propertyNames": {"enum": list(SPLITS)},
        "additionalProperties": {"type": "array", "items": _TEXT, "uniqueItems": True},
        "examples": [{"val": ["case_07", "case_09"]}],
    },
    "exclude_cases": {
        "type": "object",
        "description": "YAML-only datasets: case id -> why the release's own errata withdraw "
        "it. The case is not used; discovery reports it as skipped with that reason.",
        "additionalProperties": {"type": "string", "pattern": r"\S"},
        "examples": [{"case_164": "withdrawn by the organisers' announcement"}],
    },
}

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
        "name": {**_TEXT, "description": "Human-readable name of the dataset."},
        "modality": {"enum": list(MODALITIES),
                     "description": "Imaging modality of every case."},
        "values": {
            "type": "object",
            "minProperties": 1,
            "description": "The release's label values and its own names for them "
            "({0: background, 1: kidney}); every value a mask may contain.",
            "propertyNames": {"pattern": "^[0-9]+$",
                              "description": "a label value is an integer >= 0"},
            "additionalProperties": {**_TEXT, "description": "the release's name of the value"},
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
                "items": _LABEL_VALUE,
                "minItems": 1,
                "description": "The label values of this class: foreground values (>= 1) "
                "declared in 'values', as a list or one integer.",
            },
        },
        "region": {**_TEXT, "description": "Body region (abdomen, brain, spine, ...)."},
        "licence": {**_TEXT, "description": "The data licence, as the release states it."},
        "citation": {**_TEXT, "description": "The publication to cite when using the data."},
        "homepage": {**_TEXT, "description": "URL of the dataset's page."},
        "download": {**_TEXT, "description": "How to download the release."},
        "version": {**_TEXT, "description": "The release version described (quote numbers)."},
        "description": {**_TEXT, "description": "Free text: what the data is, caveats."},
        "cases": {"type": "integer", "minimum": 0,
                  "description": "Number of cases in the release (informational)."},
        "channels": {
            "type": "array",
            "minItems": 1,
            "items": _TEXT,
            "description": "Image channel names in file order (one file per channel, or the "
            "channels of a 4D file): names or synonyms from registry/channels.yaml, or names "
            "mapped by channel_synonyms. Without it a case has its modality's one channel.",
        },
        "channel_synonyms": {
            "type": "object",
            "description": "This dataset's own channel names mapped onto canonical channel "
            "names of registry/channels.yaml ({MRI: T1}).",
            "additionalProperties": {**_TEXT, "description": "a canonical channel name"},
        },
        "ct_window": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"type": "number"},
            "description": "Default CT window, two numbers (low, high) in HU with low < high, used by "
            "ct_window: dataset when a case has no window of its own.",
        },
        "rescale": {
            "type": "object",
            "required": ["intercept"],
            "additionalProperties": False,
            "properties": {
                "slope": {"type": "number", "exclusiveMinimum": 0, "default": 1,
                          "description": "multiplies the stored value (default 1)"},
                "intercept": {"type": "number", "description": "added after the slope"},
            },
            "description": "Releases whose images are not stored in physical units (HU for "
            "CT): physical = stored * slope + intercept, applied once when an image is read "
            "({intercept: -1000} for images stored with a +1000 offset). The image is then "
            "float32 and the operation is recorded; ct_window is in physical units.",
        },
        "official_split": {**_TEXT, "description": "Free text: the release's official split "
                           "rule (layout groups or the plugin apply it)."},
        "expected_root": {**_TEXT, "description": "What the folder given as --root looks like "
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
                    "note": {**_TEXT, "description": "what is shared, and the source"},
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
