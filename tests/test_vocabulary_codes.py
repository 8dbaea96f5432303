"""The coded vocabulary: every code of registry/vocabulary.yaml is checked against pydicom's copy
of the DICOM dictionary (an independent oracle) or, where pydicom does not know it, against a
table copied from its public source (tests/data/vocabulary_codes.csv); codes are unique, sides are
modifiers, and malformed codes are rejected naming the file and key."""

from __future__ import annotations

import csv
import json
import re
import textwrap
from pathlib import Path

import pytest
from pydicom.sr._cid_dict import cid_concepts
from pydicom.sr._concepts_dict import concepts

from harmonize.errors import DescriptorError, PluginError
from harmonize.labels.codes import Code, StructureCodes
from harmonize.labels.vocabulary import Structure, bundled_vocabulary, parse_vocabulary

SOURCE_TABLE = Path(__file__).parent / "data" / "vocabulary_codes.csv"


def pydicom_meanings() -> dict[tuple[str, str], set[str]]:
    """(scheme, value) -> every meaning pydicom's DICOM dictionary gives the concept."""
    out: dict[tuple[str, str], set[str]] = {}
    for scheme, keywords in concepts.items():
        for entries in keywords.values():
            for value, (meaning, _cids) in entries.items():
                out.setdefault((scheme, value), set()).add(meaning)
    return out


def cid_members(cid: int) -> set[tuple[str, str]]:
    """(scheme, value) of every concept of DICOM context group ``cid``, as pydicom lists it."""
    return {(scheme, value) for scheme, keywords in cid_concepts[cid].items()
            for keyword in keywords for value in concepts[scheme][keyword]}


def source_table() -> dict[tuple[str, str], str]:
    lines = [line for line in SOURCE_TABLE.read_text(encoding="utf-8").splitlines()
             if not line.startswith("#")]
    return {(row["scheme"], row["value"]): row["meaning"] for row in csv.DictReader(lines)}


def all_codes(codes: StructureCodes) -> list[tuple[str, Code]]:
    roles = [(role, getattr(codes, role)) for role in
             ("category", "type", "modifier", "region", "region_modifier")]
    return [(role, code) for role, code in roles if code is not None] + [
        ("also", code) for code in codes.also]


def test_every_code_agrees_with_pydicom_or_its_cited_source():
    vocab = bundled_vocabulary()
    known, table = pydicom_meanings(), source_table()
    assert len(vocab.codes) >= 150
    used_from_table = set()
    for name, codes in vocab.codes.items():
        for role, code in all_codes(codes):
            assert code.meaning.strip(), (name, role)
            if code.key in known:
                assert code.meaning in known[code.key], (name, role, code, known[code.key])
            else:
                assert code.key in table, f"{name} {role}: {code} is neither in pydicom nor in {SOURCE_TABLE}"
                assert code.meaning == table[code.key], (name, role, code, table[code.key])
                assert codes.source, f"{name}: {code} is not in pydicom, so codes.source must cite where it is from"
                used_from_table.add(code.key)
    assert used_from_table == set(table), "tests/data/vocabulary_codes.csv lists codes nobody uses"


def test_schemes_categories_and_modifiers_are_dicom_ones():
    vocab = bundled_vocabulary()
    categories = cid_members(7150)  # Segmentation Property Categories
    modifiers = cid_members(244) | cid_members(2)  # Laterality, Anatomic Modifier
    assert ("SCT", "91723000") in categories and ("SCT", "49755003") in categories
    for name, codes in vocab.codes.items():
        assert codes.category.key in categories, (name, codes.category)
        for role, code in all_codes(codes):
            assert code.scheme in concepts, (name, role, code)  # a scheme DICOM uses
        for modifier in (codes.modifier, codes.region_modifier):
            assert modifier is None or modifier.key in modifiers, (name, modifier)


def test_codes_are_unique_and_sides_are_modifiers():
    vocab = bundled_vocabulary()
    seen: dict[tuple, str] = {}
    for name, codes in vocab.codes.items():
        identity = tuple(None if c is None else (c.scheme, c.value) for c in
                         (codes.type, codes.modifier, codes.region, codes.region_modifier))
        assert identity not in seen, f"{name!r} and {seen[identity]!r} have the same codes"
        seen[identity] = name
    left, right = ("SCT", "7771000"), ("SCT", "24028007")
    pairs = 0
    for name, codes in vocab.codes.items():
        sides = {c.key for c in (codes.modifier, codes.region_modifier) if c is not None}
        side_in_meaning = re.findall(r"\b(left|right)\b", codes.type.meaning.lower())
        if side_in_meaning:
            # a concept that is one side by itself ('Left atrium', 'Middle lobe of right lung')
            assert not sides and name.startswith(side_in_meaning[0] + " "), name
        elif name.startswith("left "):
            assert left in sides, name
            counterpart = "right " + name.removeprefix("left ")
            other = vocab.code(counterpart) if counterpart in vocab else None
            if other is not None:
                assert other.type == codes.type and right in {
                    c.key for c in (other.modifier, other.region_modifier) if c is not None}
                pairs += 1
        elif name.startswith("right "):
            assert right in sides, name
        else:
            assert not sides & {left, right}, name
    assert pairs >= 30


def test_lookup_by_name_synonym_and_code():
    vocab = bundled_vocabulary()
    kidney_left = vocab.code("kidney_left")
    assert kidney_left is not None
    assert (kidney_left.type.value, kidney_left.type.meaning) == ("64033007", "Kidney")
    assert kidney_left.modifier is not None and kidney_left.modifier.meaning == "Left"
    assert vocab.code("recist target lesion") is None
    found = StructureCodes(category=Code("SCT", "91723000", "Anatomical Structure"),
                           type=Code("SCT", "64033007", "kidney (any spelling)"),
                           modifier=Code("SCT", "7771000", "L"))
    assert vocab.by_code(found) == "left kidney"
    assert json.loads(json.dumps(kidney_left.to_dict()))["modifier"] == {
        "scheme": "SCT", "value": "7771000", "meaning": "Left"}


@pytest.mark.parametrize(("codes", "message"), [
    ({"type": "SCT 64033007 Kidney"}, r"'organ': codes: missing category"),
    ({"category": "SCT 91723000 Anatomical Structure", "type": "SCT 64033007"},
     r"'organ': codes.type: 'SCT 64033007' is not 'SCHEME VALUE MEANING'"),
    ({"category": "SCT 91723000 Anatomical Structure", "type": "XYZ 1 Thing"},
     r"'organ': codes.type: unknown coding scheme 'XYZ'"),
    ({"category": "SCT 91723000 Anatomical Structure", "type": "SCT 64O33007 Kidney"},
     r"'organ': codes.type: '64O33007' is not a SCT code value"),
    ({"category": "SCT 91723000 Anatomical Structure", "type": "SCT 64033007 Kidney",
      "region_modifier": "SCT 7771000 Left"}, r"'organ': codes: region_modifier without region"),
    ({"category": "SCT 91723000 Anatomical Structure", "type": "SCT 64033007 Kidney",
      "laterality": "SCT 7771000 Left"}, r"'organ': codes: unknown key\(s\) \['laterality'\]"),
    ({"category": "SCT 91723000 Anatomical Structure",
      "type": {"scheme": "SCT", "value": "64033007"}}, r"'organ': codes.type: .* is not a code"),
])
def test_malformed_codes_name_the_file_and_key(tmp_path, codes, message):
    file = tmp_path / "vocabulary.yaml"
    with pytest.raises(DescriptorError, match=message) as caught:
        parse_vocabulary({"organ": {"codes": codes}}, source=file)
    assert caught.value.file == str(file)


def test_yaml_mapping_form_and_duplicate_codes(tmp_path):
    import yaml

    text = textwrap.dedent("""\
        organ:
          codes:
            category: {scheme: SCT, value: "91723000", meaning: Anatomical Structure}
            type: SCT 64033007 Kidney
            also: ["FMA 7203 Kidney"]
            source: a test
        organ again:
          codes:
            category: SCT 91723000 Anatomical Structure
            type: SCT 64033007 Kidney (other meaning, same concept)
        """)
    with pytest.raises(DescriptorError, match="'organ' and 'organ again' have the same codes"):
        parse_vocabulary(yaml.safe_load(text))
    vocab = parse_vocabulary(yaml.safe_load(text.split("organ again")[0]))
    organ = vocab.code("organ")
    assert organ is not None and organ.also == (Code("FMA", "7203", "Kidney"),)
    assert organ.to_dict()["source"] == "a test"


def test_plugin_structures_carry_codes_and_may_not_reuse_one():
    vocab = bundled_vocabulary()
    gland = StructureCodes(category=Code("SCT", "91723000", "Anatomical Structure"),
                           type=Code("SCT", "21974007", "Tongue"),  # a code no bundled structure has
                           modifier=Code("SCT", "7771000", "Left"))
    extended = vocab.extend([Structure("left acme gland", codes=gland)], source="acme")
    assert extended.code("left acme gland") == gland
    assert extended.code("liver") == vocab.code("liver")
    liver = vocab.code("liver")
    with pytest.raises(PluginError, match=r"'hepar2' from acme has the same codes as 'liver' from"):
        vocab.extend([Structure("hepar2", codes=liver)], source="acme")
    with pytest.raises(PluginError, match="codes must be StructureCodes"):
        Structure("bad", codes={"type": "SCT 64033007 Kidney"})  # type: ignore[arg-type]
    with pytest.raises(PluginError, match="unknown coding scheme"):
        Code("SNOMED", "64033007", "Kidney")


def test_structures_command_shows_codes():
    from typer.testing import CliRunner

    from harmonize.cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, ["structures", "kidney_left", "liver tumor", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["structures"]}
    assert rows["left kidney"]["parents"] == ["kidney"]
    assert rows["left kidney"]["codes"]["modifier"] == {
        "scheme": "SCT", "value": "7771000", "meaning": "Left"}
    assert rows["liver tumor"]["codes"]["region"]["meaning"] == "Liver"
    table = runner.invoke(app, ["structures", "left kidney"])
    assert "64033007" in table.stdout and "Left" in table.stdout
    uncoded = json.loads(runner.invoke(app, ["structures", "--uncoded", "--format", "json"]).stdout)
    assert "recist target lesion" in {row["name"] for row in uncoded["structures"]}
    assert uncoded["coded"] == 0
    unknown = runner.invoke(app, ["structures", "livver"])
    assert unknown.exit_code == 2 and "did you mean" in unknown.output
