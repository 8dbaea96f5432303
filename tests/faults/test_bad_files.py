"""Faults: one damaged file among good ones, through `harmonize run` (issue 13, kinds already
handled, now held to one standard).

For each kind: the run exits 1; `errors.jsonl` names dataset, case, file, a message and a next
step; the other cases are in the manifest; no partial file (no temp file, no output folder for
the bad case); and once the file is restored, a rerun gives the same bytes as a clean run.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.kits import make_kits23

from harmonize.testing import write_nifti

IMG, SEG = "imaging.nii.gz", "segmentation.nii.gz"
BAD = "case_00001"
#: Run reports, not outputs: compared separately.
REPORTS = ("errors.jsonl",)


def run_args(root: Path, out: Path) -> list[object]:
    return ["run", "-d", "kits23", "-r", root, "-o", out, "--spacing", "2", "2", "3",
            "--no-progress", "--format", "json"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_kits23(tmp_path_factory.mktemp("pristine") / "kits23", n_cases=3, seed=7)


@pytest.fixture(scope="module")
def clean_outputs(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The outputs of a clean run on the pristine release (the rerun's reference)."""
    from harmonize.engine.normalize import Settings
    from harmonize.engine.pipeline import Target, run

    base = tmp_path_factory.mktemp("clean")  # root and out side by side, as in the tests
    shutil.copytree(pristine, base / "kits23")
    out = base / "out"
    result = run([Target("kits23", base / "kits23")], out, Settings(spacing=(2.0, 2.0, 3.0)),
                 workers=1, progress=False)
    assert not result.errors
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in REPORTS}


def rewrite(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> None:
    ref = nib.load(path)
    affine = ref.affine if affine is None else affine
    path.unlink()
    write_nifti(path, data, affine)


def raw_header_patch(path: Path, offset: int, value: bytes) -> None:
    """Patch bytes of the NIfTI-1 header (nibabel would repair some fields on saving)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[offset:offset + len(value)] = value
    path.write_bytes(gzip.compress(bytes(raw)))


def image(case: Path) -> np.ndarray:
    return np.asarray(nib.load(case / IMG).dataobj)


def label(case: Path) -> np.ndarray:
    return np.asarray(nib.load(case / SEG).dataobj)


def _nan(case: Path) -> None:
    data = image(case).astype(np.float32)
    data[1, 2, 3] = np.nan
    rewrite(case / IMG, data)


def _shifted(case: Path) -> None:
    affine = nib.load(case / SEG).affine.copy()
    affine[:3, 3] += 50.0
    rewrite(case / SEG, label(case), affine)


def _undeclared(case: Path) -> None:
    data = label(case)
    data[0, 0, 0] = 9
    rewrite(case / SEG, data)


def _fractional(case: Path) -> None:
    rewrite(case / SEG, label(case).astype(np.float32) + 0.5)


#: kind -> (damage, file, error kind, words the message must hold)
KINDS: dict[str, tuple[Callable[[Path], None], str, str, str]] = {
    "corrupt gzip": (lambda c: (c / IMG).write_bytes((c / IMG).read_bytes()[:20] + bytes(2048)),
                     IMG, "read", ""),
    "truncated gzip": (lambda c: (c / IMG).write_bytes((c / IMG).read_bytes()[:400]),
                       IMG, "read", ""),
    "empty file": (lambda c: (c / IMG).write_bytes(b""), IMG, "read", ""),
    "not a NIfTI": (lambda c: (c / IMG).write_bytes(gzip.compress(b"<html>not found</html>")),
                    IMG, "read", ""),
    "NaN voxels": (_nan, IMG, "read", "NaN"),
    "4-D image": (lambda c: rewrite(c / IMG, np.stack([image(c)] * 2, axis=-1)), IMG, "read", ""),
    "zero spacing": (lambda c: (raw_header_patch(c / IMG, 80, np.float32(0).tobytes()),
                                raw_header_patch(c / IMG, 254, np.int16(0).tobytes())),
                     IMG, "read", "spacing"),
    "NaN spacing": (lambda c: (raw_header_patch(c / IMG, 84, np.float32(np.nan).tobytes()),
                               raw_header_patch(c / IMG, 254, np.int16(0).tobytes()),
                               raw_header_patch(c / IMG, 252, np.int16(0).tobytes())),
                    IMG, "read", ""),
    "label shape": (lambda c: rewrite(c / SEG, label(c)[:-1]), SEG, "label", "shape"),
    "label shifted": (_shifted, SEG, "label", "grid"),
    "undeclared label value": (_undeclared, SEG, "label", "9"),
    "negative label value": (lambda c: rewrite(c / SEG, label(c).astype(np.int16) - 1),
                             SEG, "label", ""),
    "fractional label": (_fractional, SEG, "label", ""),
    "declared size bomb": (lambda c: raw_header_patch(
        c / IMG, 40, np.array([3, 1600, 1000, 1000], dtype=np.int16).tobytes()),
        IMG, "read", "HARMONIZE_MAX_VOXELS"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_one_damaged_file_fails_its_case_only(kind, pristine, clean_outputs, tmp_path, cli, tree):
    damage, name, error_kind, words = KINDS[kind]
    root = tmp_path / "kits23"
    shutil.copytree(pristine, root)
    case = root / "dataset" / BAD
    damage(case)
    out = tmp_path / "out"

    code, text = cli(*run_args(root, out))
    assert code == 1, text
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["dataset"], e["case"]) for e in errors] == [("kits23", BAD)], errors
    error = errors[0]
    assert error["kind"] == error_kind, error
    assert error["file"].endswith(f"{BAD}/{name}"), error
    assert error["message"] and error["hint"], error
    assert words in f"{error['message']} {error['hint']}", error
    done = [json.loads(line)["case_id"] for line in (out / "kits23.jsonl").read_text().splitlines()]
    assert done == ["case_00000", "case_00002"]
    assert [p for p in out.rglob("*") if p.name.startswith(".")] == []
    assert not (out / "kits23" / BAD).exists()

    shutil.copy(pristine / "dataset" / BAD / name, case / name)
    code, text = cli(*run_args(root, out))
    assert code == 0, text
    assert tree(out, exclude=REPORTS) == clean_outputs
