"""The channel vocabulary (registry/channels.yaml) and how descriptors and cases name channels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from harmonize.errors import DescriptorError
from harmonize.labels.channels import channel_key, load_channels, parse_channels
from harmonize.manifest.records import Case
from harmonize.plugin.descriptor import load_descriptor, parse_descriptor
from harmonize.read.case import case_channels

REGISTRY = Path(__file__).parents[1] / "registry"


def _raw() -> dict:
    return yaml.safe_load((REGISTRY / "channels.yaml").read_text(encoding="utf-8"))


def test_every_synonym_names_one_channel_ignoring_case_and_separators():
    seen: dict[str, str] = {}
    for name, entry in _raw().items():
        for synonym in (name, *entry.get("synonyms", [])):
            key = re.sub(r"[\s\-_./()]+", "", synonym).lower()
            assert key not in seen, f"{synonym!r} of {name!r} is also a name of {seen[key]!r}"
            seen[key] = name


def test_lookups_and_canonical_order():
    vocabulary = load_channels()
    assert list(vocabulary.names) == list(_raw())  # the file's order is the canonical order
    assert vocabulary.names[:6] == ("CT", "PET", "T1", "T1 contrast-enhanced", "T2", "FLAIR")
    expected = {
        "T1ce": "T1 contrast-enhanced", "t1c": "T1 contrast-enhanced", "t1gd": "T1 contrast-enhanced",
        "T1Gd": "T1 contrast-enhanced", "T1-Gd": "T1 contrast-enhanced",
        "T1post": "T1 contrast-enhanced", "t1n": "T1", "T1w": "T1", "t2w": "T2", "T2-FLAIR": "FLAIR",
        "t2f": "FLAIR", "flair": "FLAIR", "MRI": "MR", "SUV": "PET", "T2SPIR": "T2 fat-suppressed",
        "T2-SPIR": "T2 fat-suppressed", "T1DUAL in-phase": "T1 in-phase",
        "t1dual_opposed_phase": "T1 opposed-phase", "ADC": "ADC", "T2*": "T2*", "pd": "PD",
        "DWI": "DWI", "computed tomography": "CT",
    }
    assert {name: vocabulary.get(name) for name in expected} == expected
    assert vocabulary.get("T3") is None
    assert vocabulary.order(["FLAIR", "T1", "CT", "T1"]) == ["CT", "T1", "FLAIR"]
    assert channel_key("T1-Gd") == channel_key("t1 gd") == "t1gd"


def test_unknown_names_say_the_closest_names_and_how_to_extend():
    with pytest.raises(DescriptorError) as info:
        load_channels().resolve("FLAIRR", dataset="mine")
    text = str(info.value)
    assert "[mine]" in text and "'FLAIRR'" in text and "did you mean 'FLAIR'" in text
    assert "channel_synonyms" in text and "registry/channels.yaml" in text


def test_parse_rejects_a_synonym_claimed_twice_and_a_missing_modality(tmp_path):
    with pytest.raises(DescriptorError, match="already a name of 'T1'"):
        parse_channels({"T1": {"modality": "MR", "synonyms": ["T1w"]},
                        "T2": {"modality": "MR", "synonyms": ["t1 w"]}})
    with pytest.raises(DescriptorError, match="modality"):
        parse_channels({"T1": {"synonyms": []}})
    path = tmp_path / "channels.yaml"
    path.write_text("CT: {modality: CT}\nT1: {modality: MR, synonyms: [T1w]}\n")
    assert load_channels(path).names == ("CT", "T1")


BASE = {"id": "mine", "name": "Mine", "modality": "MR", "values": {0: "background", 1: "x"},
        "classes": {"kidney": [1]}}


def test_descriptor_channels_must_be_known():
    assert parse_descriptor({**BASE, "channels": ["T1w", "t1gd"]}).channels == ("T1w", "t1gd")
    with pytest.raises(DescriptorError) as info:
        parse_descriptor({**BASE, "channels": ["T1", "DIXON-W"]})
    assert "[mine]" in str(info.value) and "'DIXON-W'" in str(info.value)
    with pytest.raises(DescriptorError, match="twice"):
        parse_descriptor({**BASE, "channels": ["T1ce", "T1Gd"]})
    with pytest.raises(DescriptorError, match="channel name 'T9'"):
        parse_descriptor({**BASE, "channel_synonyms": {"seq1": "T9"}})
    with pytest.raises(DescriptorError, match="channel_synonyms"):
        parse_descriptor({**BASE, "channel_synonyms": ["T1"]})


class _Plugin:
    def __init__(self, descriptor):
        self.descriptor = descriptor
        self.dataset_id = descriptor.id


def test_cases_get_canonical_names_from_the_case_descriptor_synonyms_or_modality():
    desc = parse_descriptor({**BASE, "channels": ["seq A", "T2w"],
                             "channel_synonyms": {"seq A": "T1 contrast-enhanced"}})
    case = Case(case_id="c1", patient_id="p1", images=(Path("a.nii.gz"), Path("b.nii.gz")))
    assert case_channels(_Plugin(desc), case) == ["T1 contrast-enhanced", "T2"]
    own = Case(case_id="c2", patient_id="p1", images=(Path("a.nii.gz"),), channel_names=("ADC",))
    assert case_channels(_Plugin(desc), own) == ["ADC"]
    bad = Case(case_id="c3", patient_id="p1", images=(Path("a.nii.gz"),), channel_names=("T3",))
    with pytest.raises(DescriptorError) as info:
        case_channels(_Plugin(desc), bad)
    assert "[mine/c3]" in str(info.value)
    ct = parse_descriptor({**BASE, "modality": "CT"})
    assert case_channels(_Plugin(ct), own.__class__(case_id="c4", patient_id="p",
                                                    images=(Path("a.nii.gz"),))) == ["CT"]


def test_every_bundled_descriptor_names_known_channels():
    vocabulary = load_channels()
    for path in sorted((REGISTRY / "datasets").glob("*.yaml")):
        desc = load_descriptor(path)  # raises on an unknown channel name
        names = vocabulary.canonical(desc.channels, modality=desc.modality,
                                     synonyms=desc.channel_synonyms)
        # a PET dataset is PET/CT: its CT channel is CT (harmonize/engine/pet.py windows it)
        allowed = {desc.modality, "CT"} if desc.modality == "PET" else {desc.modality}
        assert all(vocabulary.modalities[n] in allowed for n in names), path.name
        assert desc.modality != "PET" or "PET" in names, path.name


def test_crop_channels_places_each_record_channel_in_its_slot():
    import numpy as np

    from harmonize.loader.assemble import crop_channels
    from harmonize.loader.cache import CaseArrays

    image = np.stack([np.full((4, 4, 4), float(k + 1), dtype=np.float32) for k in range(3)])
    case = CaseArrays(image=image, label=None, affine=np.eye(4))
    out = np.full((5, 2, 2, 2), -9.0, dtype=np.float32)
    crop_channels(case, np.zeros(3, dtype=int), (2, 2, 2), 0.0, [3, 0, -1], out)  # permuted
    assert [float(out[c].mean()) for c in range(5)] == [2.0, 0.0, 0.0, 1.0, 0.0]
    crop_channels(case, np.zeros(3, dtype=int), (2, 2, 2), 0.0, [1, 2, 3], out)  # contiguous
    assert [float(out[c].mean()) for c in range(5)] == [0.0, 1.0, 2.0, 3.0, 0.0]
