"""Issue 15 item 4: the manifests of a collection are one table (schema version 3).

Every demo manifest is loaded together by the real clients (Hugging Face ``datasets``,
``pyarrow.json``, pandas) and by the Parquet export read back with pyarrow, pandas and ``datasets``.
The oracle is each manifest line read with the stdlib ``json`` module, and the written volumes
read with nibabel; floats compare exactly (full precision, nothing rounded on writing).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import datasets
import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.cli.demo import MANIFEST_DIR, run_demo
from harmonize.manifest.build import (
    manifest_paths,
    read_manifest,
    validate_manifest,
    write_manifest,
)
from harmonize.manifest.columns import hf_features
from harmonize.manifest.records import ManifestRecord

V2 = Path(__file__).parent / "data" / "v2"
V1 = Path(__file__).parent / "data" / "v1" / "kits23-normalized.jsonl"


@pytest.fixture(scope="module", autouse=True)
def quiet_datasets():
    datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> list[Path]:
    """The demo's manifests (every dataset, CT and multi-channel MR), as `harmonize demo` writes."""
    out = tmp_path_factory.mktemp("table") / "demo"
    assert run_demo(out, progress=False, batch=False).errors == []
    files = manifest_paths(out / MANIFEST_DIR)
    assert len(files) >= 4
    return files


def lines_of(files: list[Path]) -> list[dict]:
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_every_demo_manifest_loads_together_in_datasets(demo, tmp_path):
    expected = lines_of(demo)
    table = datasets.load_dataset("json", data_files=[str(f) for f in demo],
                                  features=hf_features(), cache_dir=str(tmp_path / "hf"))["train"]
    assert table.num_rows == len(expected)
    assert {line["modality"] for line in expected} == {"CT", "MR"}
    assert any(len(line["intensity"]) > 1 for line in expected)  # a multi-channel MR case
    for row, line in zip(table, expected, strict=True):
        assert (row["dataset"], row["case_id"]) == (line["dataset"], line["case_id"])
        assert row["labels"] == line["labels"]
        assert row["intensity"] == line["intensity"]  # floats exactly equal
        assert row["spacing"] == line["spacing"] and row["affine"] == line["affine"]
        assert json.loads(row["metadata"]) == json.loads(line["metadata"])


def test_pyarrow_and_pandas_read_the_concatenation(demo):
    expected = lines_of(demo)
    text = b"".join(f.read_bytes() for f in demo)
    table = pa_json.read_json(io.BytesIO(text))
    assert table.num_rows == len(expected)
    assert table.column("labels").to_pylist() == [line["labels"] for line in expected]
    assert table.column("intensity").to_pylist() == [line["intensity"] for line in expected]
    frame = pd.read_json(io.BytesIO(text), lines=True, precise_float=True)
    assert len(frame) == len(expected)
    assert list(frame["labels"]) == [line["labels"] for line in expected]
    assert list(frame["intensity"]) == [line["intensity"] for line in expected]
    assert list(frame["affine"]) == [line["affine"] for line in expected]


def test_spacing_and_affine_are_written_at_full_precision(demo):
    """The record states the engine's float64 grid; NIfTI stores it as float32 (sform), so
    nibabel reads each value back within float32 precision of the record's."""
    rounded_away = 0
    for path in demo:
        for record in read_manifest(path):
            image = nib.load(path.parent / record.image)
            np.testing.assert_allclose(record.affine, image.affine, rtol=2.0**-23, atol=1e-6)
            spacing = np.sqrt((np.asarray(record.affine)[:3, :3] ** 2).sum(axis=0))
            np.testing.assert_allclose(record.spacing, spacing, rtol=1e-15, atol=0)
            rounded_away += sum(v != round(v, 6) for row in record.affine for v in row)
            rounded_away += sum(v != round(v, 6) for v in record.spacing)
    assert rounded_away > 0  # the demo has values that 6-decimal rounding used to change


def test_version_2_manifests_did_not_load_together_and_read_as_version_3(tmp_path):
    old = [V2 / "brats2021.jsonl", V2 / "kits23.jsonl"]  # multi-channel MR and CT, schema v2
    with pytest.raises(datasets.exceptions.DatasetGenerationError):
        datasets.load_dataset("json", data_files=[str(f) for f in old],
                              cache_dir=str(tmp_path / "hf-old"))
    new = []
    for path in old:
        records = read_manifest(path, check_paths=False)
        new.append(tmp_path / path.name)
        write_manifest(new[-1], records)
        assert validate_manifest(path) == [] and validate_manifest(new[-1]) == []
    table = datasets.load_dataset("json", data_files=[str(f) for f in new], features=hf_features(),
                                  cache_dir=str(tmp_path / "hf-new"))["train"]
    v2_lines = lines_of(old)
    assert table.num_rows == len(v2_lines)
    for row, line in zip(table, v2_lines, strict=True):
        assert {item["name"]: item["values"] for item in row["labels"]} == line["labels"]
        offsets = line["intensity"]["offset"]
        offsets = offsets if isinstance(offsets, list) else [offsets]
        assert [c["offset"] for c in row["intensity"]] == offsets
        assert [c["channel"] for c in row["intensity"]] == list(range(len(offsets)))
        image = line["image"] if isinstance(line["image"], list) else [line["image"]]
        assert row["image"] == image


@pytest.mark.parametrize("path", [V1, *sorted(V2.glob("*.jsonl"))], ids=lambda p: p.name)
def test_old_lines_round_trip_through_version_3(path):
    for text in path.read_text().splitlines():
        old = ManifestRecord.from_json(json.loads(text))
        line = json.loads(json.dumps(old.to_json()))
        assert line["schema_version"] == 3
        new = ManifestRecord.from_json(line)
        assert new.labels == old.labels and isinstance(new.labels, dict)
        assert new.extra == old.extra and new.metadata == old.metadata
        assert (new.image, new.source, new.spacing) == (old.image, old.source, old.spacing)
        assert new.to_json() == line


def test_fields_the_schema_does_not_type_keep_their_values():
    [text, *_] = (V2 / "kits23.jsonl").read_text().splitlines()
    record = ManifestRecord.from_json(json.loads(text))
    record.extra["qa_score"] = {"dice": 0.9123456789012345}
    record.extra["intensity"] = {**record.extra["intensity"], "note": "by hand"}
    record.source["series"] = "1.2.3"
    line = json.loads(json.dumps(record.to_json()))
    assert json.loads(line["extra"]) == {"qa_score": {"dice": 0.9123456789012345}}
    assert json.loads(line["intensity"][0]["more"]) == {"note": "by hand"}
    new = ManifestRecord.from_json(line)
    assert (new.extra, new.source) == (record.extra, record.source)


def test_validate_refuses_a_version_3_line_with_labels_keyed_by_name(tmp_path, demo):
    line = json.loads(demo[0].read_text().splitlines()[0])
    assert validate_manifest(demo[0]) == []
    line["labels"] = {item["name"]: item["values"] for item in line["labels"]}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(line) + "\n")
    [problem] = validate_manifest(bad)
    assert ":1: labels:" in problem


def test_parquet_export_reads_back_in_pyarrow_pandas_and_datasets(demo, tmp_path):
    out = tmp_path / "tables" / "all.parquet"
    result = CliRunner().invoke(app, ["export", "parquet", str(demo[0].parent), "--out", str(out),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == len(expected := lines_of(demo))
    assert not [p for p in out.parent.iterdir() if p != out]  # no temporary file left
    table = pq.read_table(out)
    assert table.num_rows == len(expected)
    stated = pq.read_schema(out)
    assert stated.field("labels").type == pa.list_(pa.struct(
        [pa.field("name", pa.string()), pa.field("values", pa.list_(pa.int64()))]))
    assert stated.field("spacing").type == pa.list_(pa.float64())
    assert table.column("intensity").to_pylist() == [line["intensity"] for line in expected]
    assert table.column("manifest").to_pylist() == [f.name for f in demo
                                                    for _ in f.read_text().splitlines()]
    for row in table.select(["image", "mask", "shape"]).to_pylist():  # paths open from the table
        image = nib.load(out.parent / row["image"][0])
        assert list(image.shape) == row["shape"]
        if row["mask"] is not None:
            assert nib.load(out.parent / row["mask"]).shape == image.shape[:3]
    frame = pd.read_parquet(out)
    assert len(frame) == len(expected)
    assert [[{"name": x["name"], "values": x["values"].tolist()} for x in labels]
            for labels in frame["labels"]] == [line["labels"] for line in expected]
    assert [list(s) for s in frame["spacing"]] == [line["spacing"] for line in expected]
    hf = datasets.load_dataset("parquet", data_files=str(out),
                               cache_dir=str(tmp_path / "hf"))["train"]
    assert hf.num_rows == len(expected)
    assert hf["labels"] == [line["labels"] for line in expected]
    assert hf["affine"] == [line["affine"] for line in expected]


def test_parquet_export_names_a_bad_output(demo, tmp_path):
    result = CliRunner().invoke(app, ["export", "parquet", str(demo[0]), "--out",
                                      str(tmp_path / "all.csv")])
    assert result.exit_code == 2 and ".parquet" in result.output
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(demo[0], moved / demo[0].name)  # its relative paths now lead nowhere
    result = CliRunner().invoke(app, ["export", "parquet", str(moved), "--out",
                                      str(tmp_path / "all.parquet")])
    assert result.exit_code == 2 and not (tmp_path / "all.parquet").exists()
    assert "does not exist" in result.output and "image.nii.gz" in result.output
