"""Resume: up-to-date cases are skipped, changed inputs/settings are redone, a killed run finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from harmonize.plugins.fabricators.kits import make_kits23
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.engine.normalize import Settings
from harmonize.engine.pipeline import Target, run
from harmonize.testing import write_nifti


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def mtimes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in sorted(folder.rglob("*.nii.gz"))}


def test_rerun_skips_up_to_date_and_redoes_what_changed(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=3, seed=11)
    out = tmp_path / "out"
    target = [Target("kits23", root)]
    first = run(target, out, Settings(), workers=1, progress=False)
    assert len(first.done) == 3
    before, stamps = tree(out), mtimes(out)

    again = run(target, out, Settings(), workers=1, progress=False)
    assert again.done == [] and len(again.up_to_date) == 3
    assert tree(out) == before and mtimes(out) == stamps  # nothing rewritten
    assert [r.to_json() for r in again.records] == [r.to_json() for r in first.records]

    # changed settings redo every case
    changed = run(target, out, Settings(spacing=(2.0, 2.0, 2.0)), workers=1, progress=False)
    assert len(changed.done) == 3 and changed.up_to_date == []
    assert changed.records[0].spacing == [2.0, 2.0, 2.0]

    # a changed input redoes only that case
    image = root / "dataset" / "case_00001" / "imaging.nii.gz"
    img = nib.load(image)
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] += 1
    image.unlink()
    write_nifti(image, data, img.affine)
    partial = run(target, out, Settings(spacing=(2.0, 2.0, 2.0)), workers=1, progress=False)
    assert partial.done == ["kits23/case_00001"] and len(partial.up_to_date) == 2

    # a deleted output or a broken marker redoes that case
    (out / "kits23" / "case_00000" / "mask.nii.gz").unlink()
    (out / "kits23" / "case_00002" / "done.json").write_text("{broken")
    repaired = run(target, out, Settings(spacing=(2.0, 2.0, 2.0)), workers=1, progress=False)
    assert repaired.done == ["kits23/case_00000", "kits23/case_00002"]
    assert (out / "kits23" / "case_00000" / "mask.nii.gz").is_file()


def test_moved_dataset_is_up_to_date_with_new_source_paths(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=2, seed=12)
    out = tmp_path / "out"
    run([Target("kits23", root)], out, workers=1, progress=False)
    moved = root.rename(tmp_path / "moved")
    result = run([Target("kits23", moved)], out, workers=1, progress=False)
    assert len(result.up_to_date) == 2
    path = result.records[0].source["images"][0]["path"]
    assert path.startswith("../moved/") and (out / path).is_file()


def test_case_that_now_fails_loses_its_stale_outputs(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=2, seed=13)
    out = tmp_path / "out"
    run([Target("kits23", root)], out, workers=1, progress=False)
    image = root / "dataset" / "case_00001" / "imaging.nii.gz"
    image.write_bytes(image.read_bytes()[:200])
    before = (out / "kits23.jsonl").read_bytes()
    result = run([Target("kits23", root)], out, workers=1, progress=False)
    assert [(e.kind, e.case) for e in result.errors] == [("read", "case_00001"),
                                                         ("manifest", None)]
    assert not (out / "kits23" / "case_00001").exists()
    assert [r.case_id for r in result.records] == ["case_00000"]
    # the manifest would lose case_00001: it is kept until the user allows it to shrink
    assert (out / "kits23.jsonl").read_bytes() == before
    assert list(result.kept[0].gone) == ["case_00001"]
    assert result.kept[0].gone["case_00001"].startswith("read: ")
    result = run([Target("kits23", root)], out, workers=1, progress=False, allow_shrink=True)
    assert [e.case for e in result.errors] == ["case_00001"] and result.kept == []
    lines = (out / "kits23.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["case_id"] == "case_00000"


SLOW_RUN = """
import sys, time
from harmonize.plugins import kits

def slow_read_image(self, case):
    time.sleep(0.4)
    return None

kits.KiTS.read_image = slow_read_image
from harmonize.cli.app import main
sys.argv = ["harmonize", "run", "-d", "kits23", "-r", sys.argv[1], "-o", sys.argv[2],
            "--workers", "2", "--no-progress"]
main()
"""


def test_killed_run_finishes_on_rerun_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    n_cases = 8
    root = make_kits23(tmp_path / "kits23", n_cases=n_cases, seed=14)
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN, str(root), str(killed)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not list(killed.glob("kits23/*/done.json")):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no case finished within 30 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = sorted(p.parent.name for p in killed.glob("kits23/*/done.json"))
    assert 0 < len(finished) < n_cases
    assert not (killed / "kits23.jsonl").exists()  # the manifest is written at the end only

    res = CliRunner().invoke(app, ["run", "-d", "kits23", "-r", str(root), "-o", str(killed),
                                   "--workers", "2", "--no-progress", "--format", "json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["up_to_date"] == [f"kits23/{c}" for c in finished]
    assert len(summary["done"]) == n_cases - len(finished)

    run([Target("kits23", root)], reference, workers=1, progress=False)
    assert tree(killed) == tree(reference)
    assert not [p for p in killed.rglob("*") if p.name.startswith(".")]  # no temp files left
