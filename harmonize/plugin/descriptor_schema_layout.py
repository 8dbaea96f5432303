"""The layout language's part of the descriptor JSON Schema (:mod:`descriptor_schema`).

:data:`LAYOUT_GROUP` is one ``layout`` group (images glob, label/structures/channel templates,
roots, split); :data:`LAYOUT_KEYS` the top-level keys that only mean something with a layout
(``structure_files``, ``split_file``, ``split_ids``, ``exclude_cases``, ...). Shared fragments:
:data:`TEXT`, :data:`LABEL_VALUE`, :data:`TEMPLATE` (a path template inside the root).
"""

from __future__ import annotations

from typing import Any

from harmonize.plugin.case import SPLITS

#: A path inside the dataset root: no leading ``/`` or ``\``, no ``..`` component.
_INSIDE_ROOT = r"^(?![/\\])(?!(.*[/\\])?\.\.([/\\]|$))"

TEXT = {"type": "string"}
LABEL_VALUE = {"type": "integer", "minimum": 1,
                "description": "A foreground label value (>= 1) declared in 'values'."}

TEMPLATE = _INSIDE_ROOT + r"([^{}]|\{\w+\})*$"

#: ``{slope, intercept}``: physical value = stored * slope + intercept (descriptor and group).
RESCALE: dict[str, Any] = {
    "type": "object", "required": ["intercept"], "additionalProperties": False,
    "properties": {
        "slope": {"type": "number", "exclusiveMinimum": 0, "default": 1,
                  "description": "multiplies the stored value (default 1)"},
        "intercept": {"type": "number", "description": "added after the slope"},
    },
}

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
            "pattern": TEMPLATE,
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
            "pattern": TEMPLATE,
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
            "additionalProperties": {"type": "string", "pattern": TEMPLATE},
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
        "rescale": {**RESCALE, "description": "This group's images' rescale (physical = "
                    "stored * slope + intercept), winning over the descriptor's: one centre of a "
                    "release stores CT +1000, another HU ({intercept: 0} undoes the "
                    "descriptor's)."},
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
            "id_column": {**TEXT, "description": "CSV: the column holding the id"},
            "split_column": {**TEXT, "description": "CSV: the column holding the split"},
            "delimiter": {"type": "string", "minLength": 1, "maxLength": 1,
                          "description": "CSV: the field separator (default ',' for .csv, "
                          "tab for .tsv; e.g. ';')"},
            "id_key": {**TEXT, "description": "JSON: the key of an entry object holding the id"},
            "id_pattern": {**TEXT, "description": "Python regex with a group (?P<id>...) "
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
        "additionalProperties": {"type": "array", "items": TEXT, "uniqueItems": True},
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
