"""ROI-name matching (harmonize.labels.roi_names) and the descriptor key roi_patterns."""

from __future__ import annotations

import pytest

from harmonize.errors import DescriptorError
from harmonize.labels.roi_names import RoiMatcher, roi_key
from harmonize.plugin.descriptor import load_descriptor, parse_descriptor


def descriptor(**extra):
    data = {
        "id": "rt-test", "name": "RT test", "modality": "CT",
        "values": {0: "background", 1: "GTV-1", 2: "Lung-Left", 3: "Lung-Right", 4: "Heart"},
        "classes": {"lung tumor": [1], "left lung": [2], "right lung": [3], "heart": [4]},
    }
    data.update(extra)
    return parse_descriptor(data)


PATTERNS = {"left lung": ["^lung[_ ]?l(eft)?$", "^l[_ ]lung$"],
            "right lung": ["^lung[_ ]?r(ight)?$"],
            "lung tumor": [r"^gtv[ _]?\d*$"]}


@pytest.mark.parametrize(("roi", "name", "how"), [
    ("Lung-Left", "left lung", "synonym"),         # release name in values
    ("LUNG LEFT", "left lung", "synonym"),         # case and separators
    ("lung__left", "left lung", "synonym"),        # vocabulary synonym "lung_left"
    ("Left Lung", "left lung", "synonym"),         # the class name itself
    ("HEART", "heart", "synonym"),
    ("Lung_L", "left lung", "pattern"),
    ("lungl", "left lung", "pattern"),
    ("L-Lung", "left lung", "pattern"),            # '-' written as '_' or ' ' for the pattern
    ("LUNG-R", "right lung", "pattern"),
    ("GTV-2", "lung tumor", "pattern"),
    ("GTVp", None, "unmatched"),                   # patterns match the whole name only
    ("Esophagus_NOS", None, "unmatched"),          # not a class of this dataset
    ("PTV", None, "unmatched"),
])
def test_names_map_by_synonym_then_pattern(roi, name, how):
    matcher = RoiMatcher.from_descriptor(descriptor(roi_patterns=PATTERNS))
    found = matcher.match(roi)
    assert (found.name, found.how) == (name, how)


def test_a_name_two_patterns_match_is_ambiguous_and_never_merged():
    matcher = RoiMatcher.from_descriptor(descriptor(roi_patterns={
        "left lung": ["^lung.*$"], "right lung": ["^lung[ _]?r$", "^lung.*"]}))
    found = matcher.match("lung r")
    assert found.name is None and found.how == "ambiguous"
    assert "'left lung'" in found.detail and "'right lung'" in found.detail


def test_a_second_roi_of_one_class_is_reported_not_merged():
    matcher = RoiMatcher.from_descriptor(descriptor(roi_patterns=PATTERNS))
    mapping, matches = matcher.assign(["GTV-1", "GTV-2", "Lung_L", "Couch"])
    assert mapping == {"GTV-1": "lung tumor", "Lung_L": "left lung"}
    assert [m.how for m in matches] == ["synonym", "ambiguous", "pattern", "unmatched"]
    assert "already taken by ROI 'GTV-1'" in matches[1].detail


def test_roi_key_treats_separators_alike():
    assert roi_key(" Spinal__Cord-1 ") == roi_key("spinal cord 1") == "spinal cord 1"


def test_a_bad_regex_is_a_load_error_naming_file_and_key(tmp_path):
    path = tmp_path / "rt.yaml"
    path.write_text(
        "id: rt-test\nname: RT\nmodality: CT\nvalues: {0: background, 1: GTV}\n"
        "classes: {lung tumor: [1]}\nroi_patterns:\n  lung tumor: ['^gtv$', '^gtv(']\n",
        encoding="utf-8")
    with pytest.raises(DescriptorError) as info:
        load_descriptor(path)
    text = str(info.value)
    assert "roi_patterns.lung tumor[1]" in text and str(path) in text
    assert "not a valid Python regular expression" in text


def test_patterns_must_name_a_class():
    with pytest.raises(DescriptorError, match=r"roi_patterns\.kidney"):
        descriptor(roi_patterns={"kidney": ["^kid$"]})


def test_exact_names_beat_patterns_and_margins_are_not_organs():
    from harmonize.labels.roi_names import RoiMatcher
    from harmonize.plugin.catalog import load_catalog

    descriptor = load_catalog(entry_points=False).get("nsclc-radiomics").descriptor
    matcher = RoiMatcher.from_descriptor(descriptor)
    for margin in ("Cord_PRV", "Spinal Cord PRV", "Esophagus_PRV5", "PRV esophagus"):
        assert matcher.match(margin).name is None, margin
    assert matcher.match("Esophagus_NOS").name == "esophagus"
    taken, matches = matcher.assign(["Cord_upper", "Spinal-Cord"])  # pattern first, exact second
    assert taken == {"Spinal-Cord": "spinal cord"}
    assert matches[0].how == "ambiguous" and "already taken by ROI 'Spinal-Cord'" in matches[0].detail
