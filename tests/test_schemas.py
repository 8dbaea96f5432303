"""The published JSON Schemas of descriptors and run files (registry/schema/*.schema.json).

The checked-in files must equal the schemas in code (regenerate with
``HARMONIZE_UPDATE_SCHEMAS=1 pytest tests/test_schemas.py``). Documents are checked against the
*files* with plain ``jsonschema`` after a JSON round trip (integer YAML keys become strings, as an
editor's YAML language server sees them): an oracle independent of our parsers.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from harmonize.engine.config import ConfigError, parse_config
from harmonize.engine.presets import Settings
from harmonize.engine.run_schema import RUN_SCHEMA, SETTING_KEYS
from harmonize.errors import DescriptorError
from harmonize.plugin.descriptor import Descriptor, LayoutGroup, parse_descriptor
from harmonize.plugin.descriptor_schema import DESCRIPTOR_SCHEMA

ROOT = Path(__file__).parents[1]
FOLDER = ROOT / "registry" / "schema"
PUBLISHED = {"descriptor.schema.json": DESCRIPTOR_SCHEMA, "run.schema.json": RUN_SCHEMA}
README = (ROOT / "README.md").read_text(encoding="utf-8")


def published(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((FOLDER / name).read_text(encoding="utf-8")))


def as_json(document):
    """What JSON (and an editor) sees of a YAML document: mapping keys are strings."""
    return json.loads(json.dumps(document))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_schema_matches_the_code(name):
    text = json.dumps(PUBLISHED[name], indent=2) + "\n"
    if os.environ.get("HARMONIZE_UPDATE_SCHEMAS"):
        (FOLDER / name).write_text(text, encoding="utf-8")
    assert (FOLDER / name).read_text(encoding="utf-8") == text, (
        f"registry/schema/{name} drifted: HARMONIZE_UPDATE_SCHEMAS=1 pytest tests/test_schemas.py")
    Draft202012Validator.check_schema(json.loads(text))


def _documented(schema):
    """Every subschema listed under properties (recursively) with its key."""
    for key, sub in schema.get("properties", {}).items():
        yield key, sub
        yield from _documented(sub)
    for sub in schema.get("$defs", {}).values():
        yield from _documented(sub)


def test_every_key_the_code_takes_is_in_the_schemas_with_a_description():
    desc = DESCRIPTOR_SCHEMA
    assert set(desc["properties"]) == {f.name for f in fields(Descriptor)} - {"source_file"}
    assert set(desc["$defs"]["layoutGroup"]["properties"]) == {f.name for f in fields(LayoutGroup)}
    assert set(RUN_SCHEMA["$defs"]["settings"]["properties"]) == {f.name for f in fields(Settings)}
    assert set(SETTING_KEYS) == {f.name for f in fields(Settings)}
    for schema in (DESCRIPTOR_SCHEMA, RUN_SCHEMA):
        for key, sub in _documented(schema):
            assert sub.get("description") or "$ref" in sub, f"{key} has no description"


def test_every_bundled_descriptor_validates_against_the_published_schema():
    validator = published("descriptor.schema.json")
    files = sorted((ROOT / "registry" / "datasets").glob("*.yaml"))
    assert len(files) >= 30
    for path in files:
        document = as_json(yaml.safe_load(path.read_text(encoding="utf-8")))
        errors = [e.message for e in validator.iter_errors(document)]
        assert errors == [], f"{path.name}: {errors}"


def yaml_blocks():
    return re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


def test_readme_yaml_examples_validate_against_the_published_schemas():
    descriptor, run = published("descriptor.schema.json"), published("run.schema.json")
    base = {"id": "x", "name": "X", "modality": "MR", "values": {"0": "bg", "1": "a"},
            "classes": {"kidney": [1]}}
    checked = 0
    for block in yaml_blocks():
        doc = as_json(yaml.safe_load(block))
        if "datasets" in doc:
            assert list(run.iter_errors(doc)) == [], block
        elif doc and all(isinstance(v, dict) and "codes" in v for v in doc.values()):
            # entries of registry/vocabulary.yaml (no schema): shown as they are in the file
            from harmonize.labels.codes import parse_codes
            from harmonize.labels.vocabulary import bundled_vocabulary

            for name, entry in doc.items():
                assert bundled_vocabulary().code(name) == parse_codes(entry["codes"], fail=AssertionError), block
        elif "id" in doc:
            assert list(descriptor.iter_errors(doc)) == [], block
        else:  # a fragment of a descriptor
            assert list(descriptor.iter_errors({**base, **doc})) == [], block
        checked += 1
    assert checked >= 3


def test_readme_points_editors_at_the_schemas():
    for name in PUBLISHED:
        assert "# yaml-language-server: $schema=" in README and f"registry/schema/{name}" in README


# -- bad documents: the message names the key path ------------------------------------------------

MINIMAL = {"id": "toy", "name": "Toy", "modality": "CT", "values": {0: "bg", 1: "liver", 2: "tumor"},
           "classes": {"liver": [1, 2], "liver tumor": [2]}}


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"classes": {"kidney": [1, 2, 9]}}, "classes.kidney[2]", "9 is not a foreground value"),
        ({"classes": {"kidney": [1, "2"]}}, "classes.kidney[1]", "must be an integer"),
        ({"values": {0: "bg", 1: 5}}, "values.1", "must be a string"),
        ({"values": {-1: "bg", 1: "liver", 2: "t"}}, "values.-1", "integer >= 0"),
        ({"layout": [{"images": "*"}, {"images": "/abs/*"}]}, "layout[1].images", "inside"),
        ({"layout": [{"images": "*", "split": "Test"}]}, "layout[0].split", "did you mean 'test'"),
        ({"overlaps": [{"note": "x"}]}, "overlaps[0].dataset", "missing required key"),
        ({"channels": []}, "channels", "must not be empty"),
        ({"channels": ["T1", "T2", "T9"], "modality": "MR"}, "channels[2]", "'T9'"),
        ({"ct_window": [-200, "300"]}, "ct_window[1]", "must be a number"),
        ({"patient_id": "^(?P<pid>.+)$"}, "patient_id", "(?P<id>...)"),
        ({"licence": ["CC0"]}, "licence", "must be a string"),
        ({"licenc": "CC0"}, "licenc", "did you mean 'licence'"),
        ({"values": {0: "bg", 1: "liver", "1": "again", 2: "t"}}, "values.1", "given twice"),
        ({"values": {0: "bg", 1: "liver", "01": "again", 2: "t"}}, "values", "given twice"),
        ({"values": {0: "bg", 1: "liver", 2: "t", 2.5: "x"}}, "values.2.5", "integer >= 0"),
    ],
)
def test_bad_descriptor_message_names_the_key_path(change, path, words):
    with pytest.raises(DescriptorError) as info:
        parse_descriptor({**MINIMAL, **change}, source=Path("toy.yaml"))
    text = str(info.value)
    assert f"key {path!r}" in text and words in text, text
    assert "toy.yaml" in text and "Next step" in text
    assert "descriptor.schema.json" in text or "registry/channels.yaml" in text


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("datasets: {kits23: {root: x, ct_windw: dataset}}", "datasets.kits23.ct_windw",
         "did you mean 'ct_window'"),
        ("datasets: {kits23: {root: x, spacing: [1, 0, 1]}}", "datasets.kits23.spacing[1]", "> 0"),
        ("datasets: {kits23: {root: x, preset: sat2}}", "datasets.kits23.preset", "'sat'"),
        ("settings: {ct_scaling: z-score}\ndatasets: {kits23: x}", "settings.ct_scaling",
         "did you mean 'zscore'"),
        ("settings: {spacing: [1, 1]}\ndatasets: {kits23: x}", "settings.spacing", "exactly 3"),
        ("workers: 0\ndatasets: {kits23: x}", "workers", ">= 1"),
        ("seed: 1.5\ndatasets: {kits23: x}", "seed", "must be an integer"),
        ("ratios: [0.7, 0.2, 0.2]\ndatasets: {kits23: x}", "ratios", "sum to 1"),
        ("settings: {ct_window: [300, -200]}\ndatasets: {kits23: x}", "settings.ct_window",
         "low < high"),
        ("datasets: {kits23: {root: x, mr_percentiles: [50, 50]}}",
         "datasets.kits23.mr_percentiles", "low < high"),
        ("descriptors: [a, '']\ndatasets: {kits23: x}", "descriptors[1]", "not allowed"),
        ("out: x\n", "datasets", "missing required key"),
    ],
)
def test_bad_run_file_message_names_the_key_path(text, path, words):
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_load(text), source=Path("run.yaml"))
    message = str(info.value)
    assert f"key {path!r}" in message and words in message, message
    assert "run.yaml" in message and "Next step" in message


# -- the parser accepts exactly what the published schema accepts on edge cases --------------------

DESCRIPTOR_EDGES = [
    {"classes": {"liver": 1, "liver tumor": [2, 2]}},    # one integer; a repeated value
    {"classes": {"liver": True}},                       # a boolean is not a label value
    {"cases": True},
    {"cases": 0},
    {"layout": {"images": "*.nii.gz"}},                 # one group without a list
    {"layout": [{"images": "a/..b/*", "label": "l/{parent}/{case}.nii.gz"}]},
    {"layout": [{"images": "a/../*"}]},
    {"layout": [{"images": "*", "label": None, "split": None, "label_required": False}]},
    {"layout": [{"images": "*", "label": "{case}/{x y}"}]},        # not a placeholder
    {"layout": [{"images": "{x}/*", "label": "{x}/{case}.nii.gz"}]},  # a free placeholder
    {"layout": [{"images": "{case}/*", "label": "{parent}/x.nii.gz", "structures": "{structure}"}]},
    {"layout": [{"images": "{case}/*", "channel_files": {"T1": "{parent}/t1.nii.gz"}}]},
    {"split_file": {"path": "../split.csv", "id_column": "a", "split_column": "b"}},
    {"split_ids": {"holdout": ["a"]}},
    {"split_names": {"Tr": "training"}},
    {"overlaps": []},
    {"overlaps": [{"dataset": "Other"}]},
    {"channel_synonyms": {}},
    {"ct_window": [-1000.5, 3000]},
    {"values": {"0": "bg", "1": "liver", "2": "tumor"}},
    {"values": {0: "bg", 1: "liver", 2: None}},
    {"values": {0: "bg", 1: "liver", 2: "tumor", 1.5: "half"}},     # a float is no label value
    {"values": {0: "bg", True: "liver", 2: "tumor"}},            # YAML `yes:` is a boolean
    {"id": "toy.v2_b-1"},
    {"id": "-toy"},
    {"name": ""},
    {"modality": "ct"},
]


@pytest.mark.parametrize("change", DESCRIPTOR_EDGES, ids=[str(e) for e in DESCRIPTOR_EDGES])
def test_parser_and_published_schema_agree_on_descriptors(change):
    document = {**MINIMAL, **change}
    schema_ok = published("descriptor.schema.json").is_valid(as_json(document))
    try:
        parse_descriptor(document)
        parsed = True
    except DescriptorError:
        parsed = False
    assert parsed == schema_ok


RUN_EDGES = [
    "datasets: {kits23: /data/kits23}",
    "datasets: {kits23: {root: x, spacing: 2}}",
    "datasets: {kits23: {root: x, spacing: native, ct_window: none, mr_percentiles: null}}",
    "datasets: {kits23: {root: x, spacing: '1.5,1.5,3'}}",
    "datasets: {kits23: {root: x, interpolation: BSpline}}",
    "out: null\nworkers: null\nsettings: null\ndescriptors: null\ndatasets: {kits23: x}",
    "descriptors: extra.yaml\ndatasets: {kits23: x}",
    "settings: []\ndatasets: {kits23: x}",
    "workers: true\ndatasets: {kits23: x}",
    "datasets: {kits23: {root: x, preset: null}}",
    "datasets: {kits23: {root: ''}}",
]


@pytest.mark.parametrize("text", RUN_EDGES)
def test_parser_and_published_schema_agree_on_run_files(text):
    document = yaml.safe_load(text)
    schema_ok = published("run.schema.json").is_valid(as_json(document))
    try:
        parse_config(document, source=Path("run.yaml"))
        parsed = True
    except ConfigError:
        parsed = False
    assert parsed == schema_ok


def test_a_descriptor_file_with_a_schema_comment_loads(tmp_path):
    from harmonize.plugin.descriptor import load_descriptor

    path = tmp_path / "toy.yaml"
    path.write_text(textwrap.dedent("""\
        # yaml-language-server: $schema=https://example.invalid/descriptor.schema.json
        id: toy
        name: Toy
        modality: CT
        values: {0: bg, 1: liver}
        classes: {liver: [1]}
    """))
    assert load_descriptor(path).classes == {"liver": (1,)}
