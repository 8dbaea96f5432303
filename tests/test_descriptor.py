"""Descriptor loading is strict: unknown keys and bad values name the file and the key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from harmonize.errors import DescriptorError
from harmonize.labels.rules import class_values
from harmonize.labels.vocabulary import load_vocabulary
from harmonize.plugin.descriptor import load_descriptor, parse_descriptor

MINIMAL = {"id": "toy", "name": "Toy", "modality": "CT", "values": {0: "bg", 1: "liver", 2: "tumor"},
           "classes": {"liver": [1, 2], "liver tumor": [2]}}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    return path


def test_minimal_descriptor_parses():
    desc = parse_descriptor(dict(MINIMAL))
    assert desc.classes == {"liver": (1, 2), "liver tumor": (2,)}
    assert desc.values == {0: "bg", 1: "liver", 2: "tumor"}


@pytest.mark.parametrize(
    "change, key, message",
    [
        ({"colour": "red"}, "colour", "unknown key"),
        ({"modalty": "CT"}, "modalty", "did you mean 'modality'"),
        ({"modality": "CAT"}, "modality", "must be one of"),
        ({"id": "Toy Set"}, "id", "lowercase"),
        ({"classes": {"liver": [1, 7]}}, "classes.liver[1]", "7 is not a foreground value"),
        ({"classes": {"liver": [0]}}, "classes.liver[0]", "foreground label value"),
        ({"classes": {"liver": True}}, "classes.liver", "must be an integer or a list"),
        ({"values": {"one": "liver"}}, "values.one", "a label value is an integer"),
        ({"ct_window": [300, -200]}, "ct_window", "low < high"),
        ({"cases": -1}, "cases", "must be >= 0"),
        ({"case_id": "(?P<x>.*)"}, "case_id", "named group"),
        ({"case_id": "(?P<id"}, "case_id", "not a valid Python regular expression"),
        ({"layout": [{"images": "../*.nii.gz"}]}, "layout[0].images", "inside the dataset root"),
        ({"layout": [{"images": "*.nii.gz", "split": "training"}]}, "layout[0].split",
         "must be one of"),
        ({"layout": {"images": "*.nii.gz", "lable": "x"}}, "layout.lable", "did you mean 'label'"),
        ({"layout": [{"images": "*", "label": "l/{id}"}]}, "layout[0].label", "{case}"),
        ({"layout": [{"images": "*", "label_required": "no"}]}, "layout[0].label_required",
         "true or false"),
        ({"overlaps": [{"dataset": "x", "notes": "y"}]}, "overlaps[0].notes",
         "did you mean 'note'"),
    ],
)
def test_bad_descriptor_names_file_and_key(tmp_path, change, key, message):
    import yaml

    data = {**MINIMAL, **change}
    path = write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(DescriptorError) as info:
        load_descriptor(path)
    text = str(info.value)
    assert f"key {key!r}" in text and message in text and str(path) in text
    assert "Next step" in text


def test_missing_required_key_and_duplicate_key(tmp_path):
    with pytest.raises(DescriptorError, match="missing required key"):
        load_descriptor(write(tmp_path, "id: toy\nname: Toy\nmodality: CT\nvalues: {1: a}\n"))
    with pytest.raises(DescriptorError, match="duplicate key 'modality'"):
        load_descriptor(write(tmp_path, "id: toy\nmodality: CT\nmodality: MR\n"))
    with pytest.raises(DescriptorError, match="not valid YAML") as info:
        load_descriptor(write(tmp_path, "id: [unclosed\n"))
    assert "fix the YAML syntax" in str(info.value)


def test_missing_or_unreadable_descriptor_file_says_so_not_fix_the_yaml(tmp_path):
    missing = tmp_path / "plugin" / "acme.yaml"
    with pytest.raises(DescriptorError) as info:
        load_descriptor(missing)
    text = str(info.value)
    assert "descriptor file does not exist" in text and str(missing) in text
    assert "package data" in text and "YAML syntax" not in text
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(DescriptorError, match="cannot read descriptor file") as info:
        load_descriptor(tmp_path / "folder.yaml")
    assert "YAML syntax" not in str(info.value)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: Jos\xe9\n".encode("latin-1"))
    with pytest.raises(DescriptorError, match="cannot read descriptor file.*UTF-8"):
        load_descriptor(latin)


def test_unknown_canonical_name_is_an_error_naming_the_file(tmp_path):
    import yaml

    path = write(tmp_path, yaml.safe_dump({**MINIMAL, "classes": {"livr": [1]}}))
    desc = load_descriptor(path)
    with pytest.raises(Exception) as info:
        class_values(desc, load_vocabulary())
    assert "'livr' is not a canonical structure name" in str(info.value)
    assert str(path) in str(info.value) and "did you mean 'liver'" in str(info.value)


def test_every_bundled_descriptor_is_valid_and_uses_the_vocabulary():
    vocabulary = load_vocabulary()
    folder = resources.files("harmonize.registry").joinpath("datasets")
    files = [e for e in folder.iterdir() if e.name.endswith(".yaml")]
    assert len(files) >= 3
    for entry in files:
        with resources.as_file(entry) as path:
            desc = load_descriptor(path)
        assert desc.id == path.stem, f"{path}: id must equal the file name"
        for name in class_values(desc, vocabulary):
            assert name in vocabulary
        assert desc.licence and desc.citation and desc.homepage, path
