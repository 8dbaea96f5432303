"""Faults: unsafe ids and paths from manifests and descriptors (issue 13, items 1-4).

Each test plants one kind of hostile input next to good records and checks: the exit code, the
message (manifest, line, field, value, next step), that the good records went on, that nothing
outside its folder was written, read or deleted, and that a rerun on the fixed input gives the
same bytes as a clean run.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from harmonize.errors import DescriptorError, DiscoveryError, ManifestError
from harmonize.gate import TRUSTED_ROOTS_ENV, confine, confine_template
from harmonize.loader.cache import VolumeCache, build_cache
from harmonize.loader.dataset import HarmonizedDataset
from harmonize.manifest.build import RefusedRecordWarning, read_manifest
from harmonize.plugin.descriptor import load_descriptor
from harmonize.read.case import read_case as read_case_record
from harmonize.testing.normalized import make_normalized_dataset


def lines(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def write_lines(manifest: Path, rows: list[dict]) -> None:
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture()
def setup(tmp_path: Path) -> dict[str, Path]:
    """A normalized manifest of 3 cases in ``work/h``, a victim folder beside it."""
    manifest = make_normalized_dataset(tmp_path / "work" / "h", "ds", n_cases=3)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    return {"tmp": tmp_path, "manifest": manifest, "victim": victim}


def poisoned(setup: dict[str, Path], field: str, value: str) -> list[dict]:
    """Set ``field`` of the manifest's first record to ``value``; return the original rows."""
    rows = lines(setup["manifest"])
    write_lines(setup["manifest"], [{**rows[0], field: value}, *rows[1:]])
    return rows


@pytest.mark.parametrize("case_id", ["../../../victim", "/abs/victim", ".hidden", "a/b"])
def test_cache_refuses_an_unsafe_case_id_and_builds_the_rest(setup, cli, case_id, tree):
    rows = poisoned(setup, "case_id", case_id)
    cache = setup["tmp"] / "work" / "cache"
    code, text = cli("cache", "--manifest", setup["manifest"], "--cache-dir", cache)
    assert code == 1
    assert f"line 1: unsafe case_id {case_id!r}" in text and "ds.jsonl" in text
    assert "Next step" in text and "2 built" in text
    assert tree(setup["victim"]) == {"precious.txt": b"keep me"}
    assert sorted(p.name for p in (cache / "ds").iterdir()) == [r["case_id"] for r in rows[1:]]
    assert not list(setup["tmp"].glob("*.npy")) and not list((setup["tmp"] / "work").glob("*.npy"))
    # fixed input: the rerun builds the missing entry; the cache equals a clean build's
    write_lines(setup["manifest"], rows)
    assert cli("cache", "--manifest", setup["manifest"], "--cache-dir", cache)[0] == 0
    clean = setup["tmp"] / "clean"
    assert cli("cache", "--manifest", setup["manifest"], "--cache-dir", clean)[0] == 0
    assert tree(cache) == tree(clean)


def test_loader_with_cache_refuses_an_unsafe_case_id(setup, tree):
    poisoned(setup, "case_id", "../../../victim")
    with pytest.warns(RefusedRecordWarning, match=r"line 1: unsafe case_id '\.\./\.\./\.\./victim'"):
        dataset = HarmonizedDataset(setup["manifest"], patch_size=None,
                                    cache=setup["tmp"] / "work" / "cache")
    assert len(dataset) == 2
    for i in range(len(dataset)):
        dataset[i]
    assert tree(setup["victim"]) == {"precious.txt": b"keep me"}


@pytest.mark.parametrize("dataset", ["../../dsvictim", "/tmp/dsvictim", ".."])
def test_an_unsafe_dataset_field_is_refused_by_export_sat(setup, cli, dataset, tree):
    rows = poisoned(setup, "dataset", dataset)
    out = setup["tmp"] / "work" / "export"
    code, text = cli("export", "sat", "--manifest", setup["manifest"], "--out", out)
    assert code == 1
    assert f"unsafe dataset {dataset!r}" in text and "line 1" in text
    outside = [p for p in setup["tmp"].rglob("*dsvictim*")]
    assert outside == []
    written = tree(out)
    assert written and all(name.startswith(("jsonl/ds", "split_json/ds")) for name in written)
    write_lines(setup["manifest"], rows)
    assert cli("export", "sat", "--manifest", setup["manifest"], "--out", out)[0] == 0
    clean = setup["tmp"] / "work" / "clean"
    assert cli("export", "sat", "--manifest", setup["manifest"], "--out", clean)[0] == 0
    assert tree(out) == tree(clean)


def test_a_cache_entry_never_deletes_files_it_did_not_write(setup):
    cache = setup["tmp"] / "cache"
    build_cache([setup["manifest"]], cache)
    folder = next((cache / "ds").iterdir())
    (folder / "notes.txt").write_text("mine")
    (folder / "image-old.npy").write_bytes(b"not a cache name")
    for entry in folder.glob("meta-*.json"):
        entry.write_text("{broken")  # a corrupt entry is rebuilt, deleting its old files
    report = build_cache([setup["manifest"]], cache)
    assert report.errors == [] and report.counts["rebuilt"] == 1
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "image-old.npy").exists()


@pytest.mark.parametrize("path", ["../secret/img.nii.gz", "ABSOLUTE", "link/img.nii.gz"])
def test_a_manifest_path_outside_its_folder_is_refused_by_every_reader(setup, cli, path):
    secret = setup["tmp"] / "work" / "secret"
    secret.mkdir()
    rows = lines(setup["manifest"])
    base = setup["manifest"].parent
    (secret / "img.nii.gz").write_bytes((base / rows[0]["image"][0]).read_bytes())
    (base / "link").symlink_to(secret, target_is_directory=True)
    value = str(secret / "img.nii.gz") if path == "ABSOLUTE" else path
    write_lines(setup["manifest"], [{**rows[0], "image": [value]}, *rows[1:]])

    code, text = cli("validate", setup["manifest"])
    assert code == 1 and f"image path {value!r} leads to" in text and "--trust-root" in text

    with pytest.warns(RefusedRecordWarning, match=r"line 1: image path .* outside the manifest"):
        dataset = HarmonizedDataset(setup["manifest"], patch_size=None)
    assert [r.case_id for r in dataset.records] == [r["case_id"] for r in rows[1:]]
    assert dataset[0]["image"].shape[0] == 1
    record = read_manifest(setup["manifest"], check_paths=False)[0]
    with pytest.raises(ManifestError, match="outside the manifest's folder"):
        read_case_record(record, base=base)  # the reading layer is the last gate

    out = setup["tmp"] / "work" / "nnunet"
    code, text = cli("export", "nnunet", "--manifest", setup["manifest"], "--out", out,
                     "--dataset-id", "501")
    assert code == 1 and "outside the manifest's folder" in text
    copied = [p.name for p in out.rglob("*.nii.gz")]
    assert not any(rows[0]["case_id"] in name for name in copied)
    assert len([n for n in copied if "_0000" in n]) == 2

    # the documented flag lets a trusted outside folder be read
    code, _ = cli("--trust-root", secret, "validate", setup["manifest"])
    os.environ.pop(TRUSTED_ROOTS_ENV, None)
    assert code == 0


def test_trusted_roots_from_the_environment(setup, monkeypatch):
    outside = setup["tmp"] / "elsewhere"
    with pytest.raises(ManifestError, match="elsewhere"):
        confine("../../elsewhere/x.nii.gz", setup["manifest"].parent, what="image path")
    monkeypatch.setenv(TRUSTED_ROOTS_ENV, str(outside))
    got = confine("../../elsewhere/x.nii.gz", setup["manifest"].parent, what="image path")
    assert got == outside / "x.nii.gz"


def test_a_source_manifest_reads_its_own_dataset_root(tmp_path, cli):
    from harmonize.plugins.fabricators.kits import make_kits23

    root = make_kits23(tmp_path / "data" / "kits23", n_cases=2, seed=3)
    out = tmp_path / "manifests"
    assert cli("manifest", "-d", "kits23", "--root", root, "--out", out)[0] == 0
    assert lines(out / "kits23.jsonl")[0]["image"][0].startswith("../data/kits23/")
    dataset = HarmonizedDataset(out / "kits23.jsonl", patch_size=None)
    assert dataset[0]["image"].ndim == 4  # remembered as this user's root: read without a flag


def test_a_descriptor_template_with_a_format_spec_is_refused_at_load(tmp_path):
    desc = tmp_path / "evil.yaml"
    desc.write_text(
        "id: evil\nname: Evil\nmodality: CT\nvalues: {0: background, 1: liver}\n"
        "classes: {liver: 1}\n"
        "layout:\n  - images: 'imgs/*.nii.gz'\n    label: '.{case:.0}./outside/{case}.nii.gz'\n"
    )
    with pytest.raises(DescriptorError) as info:
        load_descriptor(desc)
    text = str(info.value)
    assert "evil.yaml" in text and "layout" in text and "{case:.0}" in text
    assert "unknown key" not in text and "missing required key" not in text  # only the template
    desc.write_text(desc.read_text().replace(".{case:.0}./outside/{case}", "labels/{case}"))
    assert load_descriptor(desc).layout[0].label == "labels/{case}.nii.gz"


@pytest.mark.parametrize("formatted", ["../outside/x.nii.gz", "/etc/x.nii.gz", "a/../../x.nii.gz"])
def test_a_formatted_template_may_not_leave_the_root(tmp_path, formatted):
    with pytest.raises(DiscoveryError, match="outside the dataset root"):
        confine_template(formatted, tmp_path, template="{case}", dataset="d")
    assert confine_template("a/../b/x.nii.gz", tmp_path, template="t", dataset="d") == (
        tmp_path / "b" / "x.nii.gz")


def test_reading_a_manifest_without_a_list_warns_per_refused_record(setup):
    rows = lines(setup["manifest"])
    write_lines(setup["manifest"], [{**rows[0], "case_id": "../x"},
                                    {**rows[1], "dataset": "../y"}, rows[2]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read_manifest(setup["manifest"])
    assert [r.case_id for r in records] == [rows[2]["case_id"]]
    messages = [str(w.message) for w in caught if w.category is RefusedRecordWarning]
    assert len(messages) == 2 and "line 1" in messages[0] and "line 2" in messages[1]
    refused: list[ManifestError] = []
    assert len(read_manifest(setup["manifest"], refused=refused)) == 1 and len(refused) == 2


def test_the_cache_folder_gate_refuses_records_made_in_code(setup):
    record = read_manifest(setup["manifest"])[0]
    record.case_id = "../../escape"
    with pytest.raises(Exception, match="unsafe case_id"):
        VolumeCache(setup["tmp"] / "c").folder(record, setup["manifest"].parent)


COMMANDS = {
    "validate": lambda m, out: ["validate", m],
    "duplicates": lambda m, out: ["duplicates", m],
    "qa": lambda m, out: ["qa", "--manifest", m, "--out", out],
    "cache": lambda m, out: ["cache", "--manifest", m, "--cache-dir", out],
    "export slices": lambda m, out: ["export", "slices", "--manifest", m, "--out", out,
                                     "--no-progress"],
    "export nnunet": lambda m, out: ["export", "nnunet", "--manifest", m, "--out", out,
                                     "--dataset-id", "502"],
    "export monai": lambda m, out: ["export", "monai", "--manifest", m, "--out",
                                    out / "datalist.json"],
    "export sat": lambda m, out: ["export", "sat", "--manifest", m, "--out", out],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_manifest_reader_refuses_the_record_and_does_the_rest(setup, cli, command, tree):
    rows = poisoned(setup, "case_id", "../../../victim")
    out = setup["tmp"] / "work" / "out"
    code, text = cli(*COMMANDS[command](setup["manifest"], out))
    assert code == 1, text
    assert "line 1: unsafe case_id '../../../victim'" in text and "ds.jsonl" in text
    assert "refused" in text or command == "validate"  # validate lists it as a FAIL line
    assert tree(setup["victim"]) == {"precious.txt": b"keep me"}
    outside = {p for p in setup["tmp"].rglob("*") if p.is_file()} - {
        p for folder in (setup["tmp"] / "work", setup["victim"]) for p in folder.rglob("*")}
    assert outside == set()
    done = tree(out) if out.is_dir() else {}
    assert all(rows[0]["case_id"] not in name for name in done)
    if command not in ("validate", "duplicates"):  # the other records were processed
        assert any(rows[1]["case_id"] in name or rows[1]["case_id"].encode() in data
                   for name, data in done.items())


def test_a_source_manifest_with_a_non_utf8_file_name_reads_back(tmp_path, cli):
    import nibabel as nib
    import numpy as np

    root = tmp_path / "odd"
    for folder in ("imgs", "labels"):
        (root / folder).mkdir(parents=True)
    name = b"case1_\xff.nii.gz"
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    volume = np.arange(8 * 8 * 4, dtype=np.int16).reshape(8, 8, 4) - 100
    mask = (volume > 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(volume, affine), os.fsdecode(os.fsencode(root / "imgs") + b"/" + name))
    nib.save(nib.Nifti1Image(mask, affine), os.fsdecode(os.fsencode(root / "labels") + b"/" + name))
    desc = tmp_path / "odd.yaml"
    desc.write_text("id: odd\nname: Odd\nmodality: CT\nct_window: [-100, 200]\n"
                    "values: {0: background, 1: liver}\nclasses: {liver: 1}\n"
                    "case_id: '(?P<id>case\\d+)'\n"
                    "layout:\n  - images: 'imgs/*.nii.gz'\n    label: 'labels/{name}'\n")
    out = tmp_path / "m"
    code, text = cli("manifest", "-d", "odd", "--descriptor", desc, "--root", root, "--out", out)
    assert code == 0, text
    line = (out / "odd.jsonl").read_bytes().decode("utf-8")  # valid UTF-8, the byte escaped
    assert "case1_\\\\xff.nii.gz" in line
    sample = HarmonizedDataset(out / "odd.jsonl", patch_size=None)[0]
    assert sample["image"].shape[1:] == volume.shape
