"""Explicit record stages: ``source`` (harmonize manifest) and ``normalized`` (harmonize run).

Issue "one path per concern", problem 4: both kinds of record had one type and consumers guessed
the kind from extra keys. Now each record says its stage, version 1 manifests still read, and
consumers state what they accept.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from harmonize.plugins.fabricators.kits import make_kits23

from harmonize.engine.config import Target
from harmonize.engine.pipeline import run
from harmonize.errors import ManifestError
from harmonize.export import load_entries
from harmonize.loader import HarmonizedDataset
from harmonize.manifest.build import build_manifest, read_manifest, validate_manifest
from harmonize.manifest.records import (
    MANIFEST_SCHEMA,
    SCHEMA_VERSION,
    ManifestRecord,
    StageMixWarning,
    require_stage,
)
from harmonize.plugin.discovery import discover

V1 = Path(__file__).parent / "data" / "v1" / "kits23-normalized.jsonl"


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same two KiTS23 cases as a source manifest and as a normalized one."""
    from harmonize.plugin.catalog import load_catalog

    tmp = tmp_path_factory.mktemp("stages")
    catalog = load_catalog(entry_points=False)
    root = make_kits23(tmp / "kits23", n_cases=2)
    plugin = catalog.get("kits23")
    source = build_manifest(plugin, discover(plugin, root), tmp / "source").path
    result = run([Target("kits23", root)], tmp / "out", workers=1, progress=False,
                 catalog=catalog)
    return source, result.manifests["kits23"]


def test_each_command_writes_its_stage(both):
    source, normalized = both
    for path, stage in ((source, "source"), (normalized, "normalized")):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert {(line["schema_version"], line["stage"]) for line in lines} == {
            (SCHEMA_VERSION, stage)}
        assert validate_manifest(path) == []
    assert MANIFEST_SCHEMA["properties"]["stage"]["enum"] == ["source", "normalized"]
    assert "stage" in MANIFEST_SCHEMA["required"]


def test_version_1_manifests_still_read_and_validate(tmp_path, both):
    normalized = read_manifest(V1)
    assert normalized and {r.stage for r in normalized} == {"normalized"}
    assert all("operations" in r.extra for r in normalized)
    assert validate_manifest(V1) == []
    # a version-1 source line: no engine fields, the record's fields at the top level
    source = ManifestRecord.from_json(json.loads(both[0].read_text().splitlines()[0]))
    line = {**asdict(source), **source.extra, "schema_version": 1}
    del line["stage"], line["extra"]
    old = tmp_path / "kits23.jsonl"
    old.write_text(json.dumps(line) + "\n")
    [record] = read_manifest(old, check_paths=False)  # moved: its relative paths lead nowhere
    assert (record.stage, record.schema_version) == ("source", 2)  # upgraded once, on reading
    assert record.labels == source.labels and record.image == source.image
    assert validate_manifest(old) == []


def test_unknown_stage_is_refused(both):
    line = json.loads(both[0].read_text().splitlines()[0])
    with pytest.raises(ManifestError, match="stage must be one of"):
        ManifestRecord.from_json({**line, "stage": "raw"})


def test_exports_refuse_a_mix_of_stages_naming_both(both):
    source, normalized = both
    other = normalized.parent / "copy" / "kits23-again.jsonl"
    other.parent.mkdir(exist_ok=True)
    lines = [json.loads(line) for line in normalized.read_text().splitlines()]
    other.write_text("".join(json.dumps({**line, "dataset": "kits23-copy"}) + "\n"
                             for line in lines))
    with pytest.raises(ManifestError, match="mixed stages") as info:
        load_entries([source, other])
    assert "'kits23'" in info.value.message and "'kits23-copy'" in info.value.message
    assert len(load_entries([source])) == 2 and len(load_entries([normalized])) == 2


def test_the_loader_warns_on_a_mix_and_reads_each_stage(both):
    source, normalized = both
    assert HarmonizedDataset(source, patch_size=None).stage == "source"
    assert HarmonizedDataset(normalized, patch_size=None).stage == "normalized"
    lines = [json.loads(line) for line in normalized.read_text().splitlines()]
    renamed = normalized.parent / "renamed.jsonl"
    renamed.write_text("".join(json.dumps({**line, "dataset": "kits23-n"}) + "\n"
                               for line in lines))
    with pytest.warns(StageMixWarning, match="'kits23-n'"):
        mixed = HarmonizedDataset([source, renamed], patch_size=None)
    assert mixed.stage is None


def test_require_stage_names_the_consumer_and_the_command():
    record = read_manifest(V1)[0]
    with pytest.raises(ManifestError, match="an export takes source .*harmonize manifest"):
        require_stage([record], ("source",), consumer="an export")
