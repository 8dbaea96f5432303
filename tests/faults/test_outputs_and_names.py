"""Faults of outputs and names: a manifest is never lost, size limits hold before allocating, any
file name is recorded, and I/O failures are classified (issue 13, items 6, 7, 9, 10).

Each test breaks one thing, checks the exit code, the message (dataset, case, file, next step),
that the other cases went on and that no partial file is left, then repairs the input and checks
that a rerun gives the bytes of a clean run.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.kits import make_kits23
from typer.testing import CliRunner

import harmonize.read.nifti_writer as nifti_writer
from harmonize.cli.app import app
from harmonize.engine.pipeline import Target, run
from harmonize.jsonio import unescape_name
from harmonize.read.limits import DEFAULT_MAX_RATIO, MAX_RATIO_ENV

SHAPE = (12, 20, 24)
CASES = ["case_00000", "case_00001", "case_00002"]


def kits(tmp: Path, **kwargs) -> Path:
    return make_kits23(tmp / "kits23", n_cases=3, seed=5, shape=SHAPE, **kwargs)


def cli(*args: str, **env: str):
    return CliRunner().invoke(app, list(args), env=env or None)


def run_cli(root: Path, out: Path, *extra: str, **env: str):
    return cli("run", "-d", "kits23", "-r", str(root), "-o", str(out), "--workers", "1",
               "--no-progress", *extra, **env)


def manifest_cli(root: Path, out: Path, *extra: str):
    return cli("manifest", "-d", "kits23", "-r", str(root), "-o", str(out), *extra)


def clean_bytes(tmp: Path, command: str = "run") -> dict[str, bytes]:
    """Manifest and splits of a clean run on an untouched copy of the dataset (same relative
    paths as ``tmp/out`` sees ``tmp/kits23``)."""
    root = kits(tmp / "clean-data")
    out = tmp / "clean-data" / "out"
    result = run_cli(root, out) if command == "run" else manifest_cli(root, out)
    assert result.exit_code == 0, result.output
    return {name: (out / name).read_bytes() for name in ("kits23.jsonl", "splits.json")}


def outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("kits23.jsonl", "splits.json")}


def temp_files(folder: Path) -> list[Path]:
    """Leftover temporary files (atomic writes use dot-names next to the target)."""
    return [p for p in folder.rglob(".*") if p.is_file()]


def segmentations(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("segmentation.nii.gz"))}


def restore(files: dict[Path, bytes]) -> None:
    for path, data in files.items():
        path.write_bytes(data)


def case_ids(manifest: Path) -> list[str]:
    return [json.loads(line)["case_id"] for line in manifest.read_text().splitlines()]


# -- a manifest is never lost ---------------------------------------------------------------------

@pytest.mark.parametrize("command", ["run", "manifest"])
def test_all_cases_skipped_keeps_the_old_manifest(tmp_path: Path, command: str) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    invoke = run_cli if command == "run" else manifest_cli
    assert invoke(root, out).exit_code == 0
    before, segs = outputs(out), segmentations(root)
    for path in segs:
        path.unlink()  # a partial download: every case is skipped
    result = invoke(root, out)
    assert result.exit_code == 1, result.output
    assert outputs(out) == before  # neither the manifest nor splits.json replaced
    text = result.output
    assert "kept" in text and "--allow-shrink" in text and "segmentation.nii.gz is missing" in text
    assert all(case in text for case in CASES)
    report = [line for line in text.splitlines() if line.startswith(("kept ", "  case_", "      "))]
    assert report and all(len(line) <= 80 for line in report)
    assert temp_files(out) == []
    as_json = json.loads(invoke(root, out, "--format", "json").stdout)
    kept = as_json["kept"][0] if command == "run" else as_json["kept"]
    assert [g["case"] for g in kept["gone"]] == CASES
    assert all("skipped: segmentation.nii.gz is missing" in g["reason"] for g in kept["gone"])
    restore(segs)
    assert invoke(root, out).exit_code == 0
    assert outputs(out) == before == clean_bytes(tmp_path, command)


def test_fewer_cases_keep_the_old_manifest_and_the_others_go_on(tmp_path: Path) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    assert run_cli(root, out).exit_code == 0
    before = outputs(out)
    label = root / "dataset" / "case_00001" / "segmentation.nii.gz"
    data = label.read_bytes()
    label.unlink()
    result = run_cli(root, out, "--format", "json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["up_to_date"] == ["kits23/case_00000", "kits23/case_00002"]  # the others went on
    (gone,) = summary["kept"][0]["gone"]
    assert gone["case"] == "case_00001" and "segmentation.nii.gz is missing" in gone["reason"]
    error = next(e for e in summary["errors"] if e["kind"] == "manifest")
    assert error["dataset"] == "kits23" and error["file"] == str(out.resolve() / "kits23.jsonl")
    assert "--allow-shrink" in error["hint"]
    assert outputs(out) == before
    label.write_bytes(data)
    assert run_cli(root, out).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path)


def test_allow_shrink_writes_the_smaller_manifest(tmp_path: Path) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    assert run_cli(root, out).exit_code == 0
    label = root / "dataset" / "case_00002" / "segmentation.nii.gz"
    data = label.read_bytes()
    label.unlink()
    result = run_cli(root, out, "--allow-shrink")
    assert result.exit_code == 0, result.output  # a skipped case is not a failure
    assert case_ids(out / "kits23.jsonl") == CASES[:2]
    assert "kits23:case_00002" not in (out / "splits.json").read_text()
    label.write_bytes(data)
    assert run_cli(root, out).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path)


def test_allow_shrink_is_a_run_file_key(tmp_path: Path) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    assert run_cli(root, out).exit_code == 0
    (root / "dataset" / "case_00000" / "segmentation.nii.gz").unlink()
    config = tmp_path / "run.yaml"
    config.write_text(f"out: {out}\nworkers: 1\nallow_shrink: true\n"
                      f"datasets:\n  kits23: {root}\n")
    assert cli("run", "--config", str(config), "--no-progress").exit_code == 0
    assert case_ids(out / "kits23.jsonl") == CASES[1:]


@pytest.mark.parametrize("command", ["run", "manifest"])
def test_nothing_found_writes_nothing(tmp_path: Path, command: str) -> None:
    root, out = kits(tmp_path, missing_label=(0, 1, 2)), tmp_path / "out"
    invoke = run_cli if command == "run" else manifest_cli
    result = invoke(root, out)
    assert result.exit_code == 1, result.output
    assert "no case to write" in result.output and "check --root" in result.output
    assert not (out / "kits23.jsonl").exists() and not (out / "splits.json").exists()
    assert not out.exists() or temp_files(out) == []
    # the user fetches the segmentations: the rerun gives a clean run's bytes
    clean = kits(tmp_path / "clean-data")
    for path, data in segmentations(clean).items():
        (root / path.relative_to(clean)).write_bytes(data)
    assert invoke(root, out).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path, command)


# -- limits before allocating ---------------------------------------------------------------------

BOMB_READ = """
import sys, tracemalloc
from harmonize.errors import ReadError
from harmonize.read.volume import read_volume
tracemalloc.start()  # numpy reports its buffers to tracemalloc
try:
    read_volume(sys.argv[1])
    outcome = "read"
except ReadError as exc:
    outcome = str(exc)
print(tracemalloc.get_traced_memory()[1] // 2**20, outcome)
"""


def real_bomb(path: Path, shape: tuple[int, int, int]) -> Path:
    """A genuine deflate bomb: int16 zeros of ``shape`` (every byte present), ~1000:1."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header["vox_offset"] = 352
    header.set_qform(np.eye(4), code=1)
    total = int(np.prod(shape)) * 2
    block = bytes(1 << 22)
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(header.binaryblock + b"\0" * 4)
        for start in range(0, total, len(block)):
            fh.write(block[: min(len(block), total - start)])
    return path


def read_in_subprocess(path: Path, **env: str) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if k != MAX_RATIO_ENV} | env
    done = subprocess.run([sys.executable, "-c", BOMB_READ, str(path)], capture_output=True,
                          text=True, env=environ, timeout=120, check=True)
    grown, outcome = done.stdout.strip().split(" ", 1)
    return int(grown), outcome


def test_a_bomb_above_the_ratio_limit_is_refused_before_inflating(tmp_path: Path) -> None:
    bomb = real_bomb(tmp_path / "bomb.nii.gz", (512, 512, 200))  # 100 MiB of zeros
    ratio = 512 * 512 * 200 * 2 / bomb.stat().st_size
    assert 900 < ratio < 1032  # deflate's ceiling: the default limit lets such a file through
    grown_mib, outcome = read_in_subprocess(bomb)
    assert outcome == "read" and grown_mib >= 100  # the probe sees the allocation when allowed
    grown_mib, outcome = read_in_subprocess(bomb, **{MAX_RATIO_ENV: "500"})
    assert grown_mib < 2, grown_mib  # refused before anything was allocated or inflated
    assert "above the limit of 500:1" in outcome and "nothing was decompressed" in outcome
    assert str(bomb) in outcome and f"{MAX_RATIO_ENV}={int(ratio) + 1}" in outcome


def test_a_header_declaring_more_than_the_file_can_hold_fails_only_its_case(tmp_path: Path) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    image = root / "dataset" / "case_00001" / "imaging.nii.gz"
    original = image.read_bytes()
    header = nib.Nifti1Header()
    header.set_data_shape((1000, 1000, 1000))  # 1e9 voxels: under the voxel limit
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    image.write_bytes(gzip.compress(header.binaryblock + bytes(4 + 65536)))
    result = run_cli(root, out, "--format", "json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    (error,) = summary["errors"]
    assert (error["kind"], error["dataset"], error["case"], error["file"]) == (
        "read", "kits23", "case_00001", str(image))
    assert f"above the limit of {DEFAULT_MAX_RATIO:,}:1" in error["message"]
    assert MAX_RATIO_ENV in error["hint"] and "re-download" in error["hint"]
    assert summary["done"] == ["kits23/case_00000", "kits23/case_00002"]
    assert not (out / "kits23" / "case_00001").exists() and temp_files(out) == []
    image.write_bytes(original)
    assert run_cli(root, out).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path)


def test_the_ratio_limit_is_configurable(tmp_path: Path) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    result = run_cli(root, out, "--format", "json", **{MAX_RATIO_ENV: "2"})
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["errors"]
    assert {e["case"] for e in errors} == set(CASES)  # kits masks compress well beyond 2:1
    assert all(e["kind"] == "read" and f"{MAX_RATIO_ENV}=" in e["hint"] for e in errors)
    result = run_cli(root, out, "--format", "json", **{MAX_RATIO_ENV: "lots"})
    assert result.exit_code == 1 and "is not an integer" in result.stdout
    assert run_cli(root, out, **{MAX_RATIO_ENV: str(DEFAULT_MAX_RATIO)}).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path)


# -- any file name --------------------------------------------------------------------------------

def test_a_non_utf8_file_name_is_recorded_and_escaped_reversibly(tmp_path: Path) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    stray = os.fsencode(root / "dataset") + b"/junk\xff\\x41.nii.gz"
    with open(stray, "wb") as fh:
        fh.write(b"not a case")
    result = run_cli(root, out)
    assert result.exit_code == 0, result.output  # a skipped item is not a failure
    assert "junk\\xff" in result.output  # the summary shows the byte
    raw = (out / "errors.jsonl").read_bytes()
    raw.decode("utf-8")  # strict: valid UTF-8
    (line,) = [json.loads(x) for x in raw.decode().splitlines()]
    assert line["kind"] == "skipped" and line["dataset"] == "kits23"
    assert "\\xff" in line["file"] and "\\x5c" in line["file"]  # the backslash is escaped too
    assert os.fsencode(unescape_name(line["file"])) == stray
    as_json = run_cli(root, out, "--format", "json")
    as_json.stdout_bytes.decode("utf-8")
    (skipped,) = json.loads(as_json.stdout)["skipped"]
    assert os.fsencode(unescape_name(skipped["file"])) == stray
    os.unlink(stray)
    assert run_cli(root, out).exit_code == 0
    assert (out / "errors.jsonl").read_text() == ""
    assert outputs(out) == clean_bytes(tmp_path)


def test_a_stale_errors_file_is_replaced_or_removed(tmp_path: Path, monkeypatch) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "errors.jsonl").write_text('{"kind": "read", "message": "from an older run"}\n')
    assert run([Target("kits23", root)], out, workers=1, progress=False).ok
    assert (out / "errors.jsonl").read_text() == ""  # replaced at the end of the run
    (out / "errors.jsonl").write_text('{"kind": "read", "message": "from an older run"}\n')

    def interrupted(task):
        raise KeyboardInterrupt

    monkeypatch.setattr("harmonize.engine.pipeline.process_case", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run([Target("kits23", root)], out, workers=1, progress=False)
    assert not (out / "errors.jsonl").exists()  # a run that did not finish leaves none stale
    monkeypatch.undo()
    assert run_cli(root, out).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path)


# -- I/O failures ---------------------------------------------------------------------------------

def failing_mkstemp(monkeypatch, code: int, where: Path) -> None:
    """``tempfile.mkstemp`` fails with ``code`` in ``where`` and below (works as root too, where
    chmod does not stop writes)."""
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        folder = Path(kwargs.get("dir") or tempfile.gettempdir()).resolve()
        if folder == where.resolve() or where.resolve() in folder.parents:
            raise OSError(code, os.strerror(code), str(folder))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def assert_one_paragraph(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "bug" not in result.output
    assert len(result.output.strip().splitlines()) <= 4
    for needle in needles:
        assert needle in result.output.replace("\n", " ")


@pytest.mark.parametrize("command", ["run", "manifest"])
def test_a_read_only_out_exits_2_before_any_work(tmp_path: Path, monkeypatch, command) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    out.mkdir()
    failing_mkstemp(monkeypatch, errno.EROFS, out)
    result = run_cli(root, out) if command == "run" else manifest_cli(root, out)
    assert_one_paragraph(result, "read-only file system", str(out), "Next step:",
                         "writable file system")
    assert list(out.iterdir()) == []  # nothing written, no case folder started
    monkeypatch.undo()
    assert (run_cli(root, out) if command == "run" else manifest_cli(root, out)).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path, command)


@pytest.mark.parametrize("command", ["run", "manifest"])
def test_out_pointing_at_a_file_exits_2(tmp_path: Path, command: str) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    out.write_text("my notes")
    result = run_cli(root, out) if command == "run" else manifest_cli(root, out)
    assert_one_paragraph(result, "a file is in the way", str(out), "choose another --out")
    assert out.read_text() == "my notes"
    out.unlink()
    assert (run_cli(root, out) if command == "run" else manifest_cli(root, out)).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path, command)


def test_disk_full_fails_the_case_with_kind_output(tmp_path: Path, monkeypatch) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    real = nifti_writer._write_voxels

    def full(stream, data, dtype):
        name = str(getattr(stream, "name", "") or getattr(getattr(stream, "fileobj", None),
                                                           "name", ""))
        if "case_00001" in name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(stream, data, dtype)

    monkeypatch.setattr(nifti_writer, "_write_voxels", full)
    result = run_cli(root, out, "--format", "json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    (error,) = summary["errors"]
    target = out.resolve() / "kits23" / "case_00001" / "image.nii.gz"
    assert (error["kind"], error["dataset"], error["case"], error["file"]) == (
        "output", "kits23", "case_00001", str(target))
    assert "no space left" in error["message"] and "free space" in error["hint"]
    assert "bug" not in error["hint"]
    assert summary["done"] == ["kits23/case_00000", "kits23/case_00002"]  # the run went on
    assert not (out / "kits23" / "case_00001").exists() and temp_files(out) == []
    monkeypatch.undo()
    assert run_cli(root, out).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path)


def test_permission_denied_in_a_case_folder_is_kind_output(tmp_path: Path, monkeypatch) -> None:
    root, out = kits(tmp_path), tmp_path / "out"
    failing_mkstemp(monkeypatch, errno.EACCES, out / "kits23" / "case_00002")
    result = run_cli(root, out, "--format", "json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    (error,) = summary["errors"]
    assert (error["kind"], error["case"]) == ("output", "case_00002")
    assert error["file"] == str(out.resolve() / "kits23" / "case_00002" / "image.nii.gz")
    assert "permission denied" in error["message"] and "writable" in error["hint"]
    assert summary["done"] == ["kits23/case_00000", "kits23/case_00001"]
    assert temp_files(out) == []
    monkeypatch.undo()
    assert run_cli(root, out).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path)


def test_missing_folders(tmp_path: Path, monkeypatch) -> None:
    root = kits(tmp_path)
    # an --out whose parents do not exist is created (mkdir -p)
    out = tmp_path / "new" / "parent" / "out"
    assert run_cli(root, out).exit_code == 0
    shutil.rmtree(tmp_path / "new")
    # a folder deleted while a case is written: that case fails, kind output, naming the path
    out = tmp_path / "out"
    real = os.replace

    def vanished(src, dst, *args, **kwargs):
        if "case_00000" in str(dst) and str(dst).endswith("mask.nii.gz"):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", vanished)
    result = run_cli(root, out, "--format", "json")
    monkeypatch.undo()
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    (error,) = summary["errors"]
    assert (error["kind"], error["case"]) == ("output", "case_00000")
    assert error["file"] == str(out.resolve() / "kits23" / "case_00000" / "mask.nii.gz")
    assert "does not exist" in error["message"] and "create the folder" in error["hint"]
    assert summary["done"] == ["kits23/case_00001", "kits23/case_00002"]
    assert not (out / "kits23" / "case_00000").exists() and temp_files(out) == []
    assert run_cli(root, out).exit_code == 0
    assert outputs(out) == clean_bytes(tmp_path)
