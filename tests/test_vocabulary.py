"""The vocabulary: canonical names, unique synonyms, an acyclic hierarchy."""

from __future__ import annotations

import pytest

from harmonize.errors import DescriptorError, LabelError
from harmonize.labels.vocabulary import load_vocabulary, normalize_name, parse_vocabulary


def test_synonyms_resolve_case_and_underscore_insensitively():
    vocab = load_vocabulary()
    assert vocab.resolve("kidney_left") == "left kidney"
    assert vocab.resolve("Left Kidney") == "left kidney"
    assert vocab.resolve("vertebrae_L1") == "vertebra L1"
    assert vocab.resolve("postcava") == "inferior vena cava"
    with pytest.raises(LabelError, match="did you mean"):
        vocab.resolve("livver")


def test_hierarchy():
    vocab = load_vocabulary()
    assert vocab.ancestors("vertebra L1") == ["lumbar vertebra", "vertebra", "spine"]
    assert set(vocab.children("kidney")) >= {"left kidney", "right kidney", "kidney mass"}
    assert "kidney tumor" in vocab.descendants("kidney")


def test_every_synonym_resolves_to_one_name_and_names_are_canonical():
    vocab = load_vocabulary()
    for key, name in vocab.lookup.items():
        assert name in vocab
        assert normalize_name(key) == key
    for name in vocab.names:
        assert vocab.resolve(name) == name


def test_cycles_duplicates_and_unknown_parents_are_rejected():
    with pytest.raises(DescriptorError, match="cycle"):
        parse_vocabulary({"a": {"parents": ["b"]}, "b": {"parents": ["a"]}})
    with pytest.raises(DescriptorError, match="claimed by both"):
        parse_vocabulary({"a": {"synonyms": ["x"]}, "b": {"synonyms": ["X"]}})
    with pytest.raises(DescriptorError, match="unknown parent"):
        parse_vocabulary({"a": {"parents": ["zzz"]}})
    with pytest.raises(DescriptorError, match="unknown key"):
        parse_vocabulary({"a": {"parent": ["b"]}})
