"""The one pure function that turns a descriptor into a record's name -> values map."""

from __future__ import annotations

import pytest

from harmonize.errors import LabelError
from harmonize.labels.rules import check_observed_values, class_values
from harmonize.labels.vocabulary import load_vocabulary
from harmonize.plugin.descriptor import parse_descriptor

KITS = parse_descriptor({
    "id": "toy-kits", "name": "toy", "modality": "CT",
    "values": {0: "background", 1: "kidney", 2: "tumor", 3: "cyst"},
    "classes": {"kidney": [1, 2, 3], "kidney mass": [2, 3], "kidney tumor": [2], "kidney cyst": [3]},
})


def test_merges_are_value_sets():
    assert class_values(KITS, load_vocabulary(), observed=[0, 1, 2]) == {
        "kidney": [1, 2, 3], "kidney mass": [2, 3], "kidney tumor": [2], "kidney cyst": [3],
    }


def test_annotated_subset_and_synonyms():
    assert class_values(KITS, load_vocabulary(), annotated=["renal tumor"]) == {"kidney tumor": [2]}
    with pytest.raises(LabelError, match="not classes of the dataset"):
        class_values(KITS, load_vocabulary(), annotated=["liver"])


def test_undeclared_value_names_the_file(tmp_path):
    with pytest.raises(LabelError) as info:
        check_observed_values(KITS, [0, 1, 5], case="c1", file=tmp_path / "seg.nii.gz")
    assert "[5]" in str(info.value) and "seg.nii.gz" in str(info.value) and "c1" in str(info.value)


def test_per_case_label_map_replaces_descriptor_classes():
    labels = class_values(KITS, load_vocabulary(), case_labels={"lesion": [1, 2, 7]},
                          observed=[0, 1, 7])
    assert labels == {"lesion": [1, 2, 7]}
    with pytest.raises(LabelError, match=r"\[9\]"):
        class_values(KITS, load_vocabulary(), case_labels={"lesion": [1]}, observed=[0, 9])
