"""Faults: broken manifests, descriptors and cache entries (issue 13, kinds already handled and
two found while writing these: a YAML alias bomb hung `harmonize plugins` for minutes, and an
empty manifest gave the loader a misleading message).

Each test asserts the exit code or error type, a message naming the file (and line or key) with
a next step, and that nothing was written where the bad input would have led.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from harmonize.errors import DescriptorError
from harmonize.loader.cache import build_cache
from harmonize.loader.dataset import HarmonizedDataset
from harmonize.loader.errors import LoaderError
from harmonize.plugin.descriptor import load_descriptor
from harmonize.testing.normalized import make_normalized_dataset
from harmonize.yamlio import MAX_EXPANDED_NODES, load_yaml


@pytest.fixture()
def manifest(tmp_path: Path) -> Path:
    return make_normalized_dataset(tmp_path / "h", "ds", n_cases=2)


def rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_a_line_that_is_not_json_stops_the_command_naming_the_line(manifest, cli):
    good = rows(manifest)
    manifest.write_text(f"{good[0]}\n{{\"schema_version\": 2, broken\n{good[1]}\n")
    cache = manifest.parent / "cache"
    code, text = cli("cache", "--manifest", manifest, "--cache-dir", cache)
    assert code == 2
    assert "line 2: not valid JSON" in text and "ds.jsonl" in text and "Next step" in text
    assert not cache.exists()


def test_a_newer_schema_version_asks_for_an_upgrade(manifest, cli):
    manifest.write_text(manifest.read_text().replace('"schema_version": 3', '"schema_version": 9'))
    code, text = cli("qa", "--manifest", manifest, "--out", manifest.parent / "qa")
    assert code == 2
    assert "schema_version 9 is not supported" in text and "upgrade harmonize-med" in text
    assert not (manifest.parent / "qa").exists()


def test_errors_jsonl_given_as_a_manifest_is_named_as_such(tmp_path, cli):
    report = tmp_path / "errors.jsonl"
    report.write_text(json.dumps({"kind": "read", "dataset": "ds", "case": "c", "file": None,
                                  "message": "m", "hint": None}) + "\n")
    code, text = cli("export", "sat", "--manifest", report, "--out", tmp_path / "sat")
    assert code == 2
    assert "not a manifest record" in text and "errors.jsonl" in text
    assert not (tmp_path / "sat").exists()


def test_an_empty_manifest_says_so(tmp_path, cli):
    empty = tmp_path / "ds.jsonl"
    empty.write_text("")
    code, text = cli("export", "monai", "--manifest", empty, "--out", tmp_path / "dl.json")
    assert code == 2 and "hold no record" in text
    assert not (tmp_path / "dl.json").exists()
    with pytest.raises(LoaderError, match="hold no record"):
        HarmonizedDataset(empty)


def alias_bomb(levels: int = 9) -> str:
    lines = ["id: bomb", "modality: CT", "labels: {background: 0, liver: 1}",
             'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, cli):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    start = time.perf_counter()
    with pytest.raises(DescriptorError, match="alias bomb") as info:
        load_descriptor(bomb)
    assert time.perf_counter() - start < 5  # it was minutes: the schema check walked 4e9 nodes
    assert "bomb.yaml" in str(info.value)
    code, text = cli("plugins", "--descriptor", bomb, "--format", "json")
    assert "alias bomb" in text and "bomb.yaml" in text


def test_yaml_anchors_within_the_limit_still_work():
    assert load_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}
    assert 9 ** 6 < MAX_EXPANDED_NODES < 9 ** 10  # a real document passes, the bomb above not
    with pytest.raises(Exception, match="recursive alias"):
        load_yaml("a: &x [1, *x]\n")
    with pytest.raises(Exception, match="nested too deep"):
        load_yaml("[" * 50_000 + "]" * 50_000)


def test_a_descriptor_with_an_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("id: typo\nname: Typo\nmodality: CT\nvalues: {0: background, 1: liver}\n"
                    "classes: {liver: 1}\nlayuot: []\n")
    with pytest.raises(DescriptorError) as info:
        load_descriptor(path)
    assert "typo.yaml" in str(info.value) and "'layuot': unknown key" in str(info.value)
    assert "missing required key" not in str(info.value)


def test_a_descriptor_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- id: x\n- modality: CT\n")
    with pytest.raises(DescriptorError) as info:
        load_descriptor(path)
    assert "list.yaml" in str(info.value)


def test_a_pickle_in_the_cache_is_never_unpickled(manifest, tmp_path):
    cache = tmp_path / "cache"
    assert build_cache([manifest], cache).errors == []
    first = json.loads(rows(manifest)[0])["case_id"]
    image = next((cache / "ds" / first).glob("image-*.npy"))
    np.save(image, np.array([{"payload": "os.system"}], dtype=object), allow_pickle=True)
    with pytest.warns(UserWarning, match="rebuil|corrupt|invalid"):
        cached = HarmonizedDataset(manifest, patch_size=None, cache=cache)
        sample = cached[0]
    plain = HarmonizedDataset(manifest, patch_size=None)[0]
    assert np.array_equal(sample["image"], plain["image"])
    assert np.load(image, allow_pickle=False).dtype == np.float32  # rebuilt, no object array


def test_a_truncated_cache_entry_is_rebuilt(manifest, tmp_path):
    cache = tmp_path / "cache"
    build_cache([manifest], cache)
    first = json.loads(rows(manifest)[0])["case_id"]
    image = next((cache / "ds" / first).glob("image-*.npy"))
    image.write_bytes(image.read_bytes()[:100])
    report = build_cache([manifest], cache)
    assert report.errors == [] and report.counts["rebuilt"] == 1
    assert HarmonizedDataset(manifest, patch_size=None, cache=cache)[0]["image"].ndim == 4
