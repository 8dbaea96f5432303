"""``harmonize qa``: the report's files and numbers against a direct numpy computation.

Two fabricated datasets: ``alpha`` is engine output (normalized RAS CT in [0, 1], records carry
``operations``), ``beta`` is source-level (LPS CT in HU, a merged class ``kidney = {1, 2}``).
Each odd case triggers exactly the flags listed in ``EXPECTED_FLAGS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.manifest.build import relative_path, write_manifest
from harmonize.manifest.records import ManifestRecord
from harmonize.qa.inspect import AXES
from harmonize.qa.montage import case_slices
from harmonize.qa.stats import histogram
from harmonize.read.volume import Volume
from harmonize.testing import ct_phantom, ellipsoid, write_nifti


@dataclass
class Fab:
    dataset: str
    case_id: str
    image: np.ndarray | None
    mask: np.ndarray | None
    affine: np.ndarray
    labels: dict[str, list[int]]
    readable: bool = True


def _affine(spacing, flips=(1, 1, 1), origin=(-40.0, -30.0, -20.0)) -> np.ndarray:
    affine = np.diag([*(f * s for f, s in zip(flips, spacing)), 1.0])
    affine[:3, 3] = origin
    return affine


def _mask(shape, rng, values=(1, 2)) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    if 1 in values:
        mask[ellipsoid(shape, [0.35 + rng.uniform(-0.03, 0.03), 0.45, 0.5], (0.2, 0.2, 0.3))] = 1
    if 2 in values:
        mask[ellipsoid(shape, [0.35, 0.45, 0.5], (0.07, 0.07, 0.1))] = 2
    return mask


def fabricate(root: Path) -> tuple[list[Path], list[Fab]]:
    rng = np.random.default_rng(7)
    fabs: list[Fab] = []
    manifests = []
    for dataset, normalized in (("alpha", True), ("beta", False)):
        records = []
        specs: list[dict] = []
        if normalized:
            liver = {"liver": [1], "liver tumor": [2]}
            base = dict(shape=(24, 24, 20), spacing=(1.5, 1.5, 2.0), flips=(1, 1, 1), labels=liver)
            specs = [
                dict(base, case="a0"),
                dict(base, case="a1", values=(1,)),                    # tumor annotated, absent
                dict(base, case="a2", flips=(-1, 1, 1)),               # LAS file, normalized
                dict(base, case="a3", missing=True),                    # image file missing
                dict(base, case="a4", unlabelled=True),
            ]
        else:
            kidney = {"kidney": [1, 2], "kidney tumor": [2]}
            base = dict(shape=(20, 22, 16), spacing=(0.8, 0.8, 2.5), flips=(-1, -1, 1), labels=kidney)
            specs = [
                dict(base, case="b0"),
                dict(base, case="b1", values=()),                      # empty mask
                dict(base, case="b2", spacing=(0.8, 0.8, 6.0)),        # anisotropic + z outlier
                dict(base, case="b3", shape=(20, 22, 5)),              # tiny
                dict(base, case="b4", mask_shape=(20, 22, 15)),        # mask grid shape differs
                dict(base, case="b5", extra_value=7, labels={"kidney": [1, 2]}),  # undeclared 7
                dict(base, case="b6", mask_shift=5.0),                 # mask affine shifted 5 mm
            ]
        for spec in specs:
            shape, case_id = spec["shape"], spec["case"]
            affine = _affine(spec["spacing"], spec["flips"])
            hu = ct_phantom(shape, rng).astype(np.float32)
            image = np.clip((hu + 200) / 500, 0, 1).astype(np.float32) if normalized else hu
            folder = root / dataset / case_id
            image_path = folder / "image.nii.gz"
            if not spec.get("missing"):
                write_nifti(image_path, image, affine)
            mask = None
            mask_rel = None
            if not spec.get("unlabelled"):
                mask = _mask(spec.get("mask_shape", shape), rng, spec.get("values", (1, 2)))
                if "extra_value" in spec:
                    mask[:3, :3, :3] = spec["extra_value"]
                mask_affine = affine.copy()
                mask_affine[0, 3] += spec.get("mask_shift", 0.0)
                write_nifti(folder / "mask.nii.gz", mask, mask_affine)
                mask_rel = relative_path(folder / "mask.nii.gz", root)
            labels = spec["labels"] if mask is not None else {}
            fabs.append(Fab(dataset, case_id, None if spec.get("missing") else image, mask,
                            affine, labels, readable=not spec.get("missing")))
            records.append(ManifestRecord(
                dataset=dataset, case_id=case_id, patient_id=f"p-{case_id}", modality="CT",
                image=relative_path(image_path, root), mask=mask_rel, label=list(labels),
                labels=labels, annotated=list(labels), official_split=None,
                split=SPLITS[int(case_id[1:]) % 2],
                shape=list(shape), spacing=list(spec["spacing"]),
                orientation="".join(nib.aff2axcodes(affine)),
                source={"images": [{"path": "x", "sha256": "0" * 64}], "label": None},
                stage="normalized" if normalized else "source",
                channels=["CT"], affine=affine.tolist(),
                extra={"operations": [{"op": "ct_window"}]} if normalized else {},
            ))
        path = root / f"{dataset}.jsonl"
        write_manifest(path, records)
        manifests.append(path)
    return manifests, fabs


SPLITS = ("train", "test")
EXPECTED_FLAGS = {
    "a2": {"non_ras"},
    "a3": {"unreadable"},
    "b1": {"empty_mask"},
    "b2": {"anisotropic", "spacing_outlier"},
    "b3": {"tiny_volume"},
    "b4": {"grid_mismatch"},
    "b5": {"unexpected_values"},
    "b6": {"grid_mismatch"},
}


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("qa")
    manifests, fabs = fabricate(root / "data")
    out = root / "report"
    args = ["qa", "--out", str(out), "--format", "json", "--montage-cases", "2"]
    for m in manifests:
        args += ["--manifest", str(m)]
    result = CliRunner().invoke(app, args)
    return result, out, fabs


def test_report_files(qa_run) -> None:
    result, out, _ = qa_run
    assert result.exit_code == 1, result.output  # a3 cannot be read
    printed = json.loads(result.stdout)
    assert printed["index"] == str(out / "index.html")
    doc = json.loads((out / "qa.json").read_text(encoding="utf-8"))
    index = (out / "index.html").read_text(encoding="utf-8")
    pngs = [f for entry in [doc["files"]["overall"], *doc["files"]["datasets"].values()]
            for f in entry.values()]
    assert len(pngs) == 3 + 5 + 5  # overall 3 charts; each dataset 3 charts + 2 montages
    for rel in pngs:
        data = (out / rel).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, rel
        assert f"src='{rel}'" in index
    assert "datasets/beta/montage-1.png" in pngs
    assert doc["files"]["datasets"]["beta"]["montage b1"] == "datasets/beta/montage-1.png"
    for case in ("a2", "a3", "b1", "b2", "b3", "b4", "b5", "b6"):
        assert f"<td class='l'>{case}</td>" in index


def test_case_counts_and_flags(qa_run) -> None:
    _, out, fabs = qa_run
    doc = json.loads((out / "qa.json").read_text(encoding="utf-8"))
    alpha, beta = doc["datasets"]["alpha"], doc["datasets"]["beta"]
    assert (alpha["cases"], alpha["labelled_cases"], alpha["readable_cases"]) == (5, 4, 4)
    assert (beta["cases"], beta["labelled_cases"], beta["readable_cases"]) == (7, 7, 7)
    assert doc["overall"]["cases"] == 12 and doc["overall"]["datasets"] == 2
    assert alpha["normalized"] and not beta["normalized"]
    got = {}
    for case in doc["cases"]:
        got[case["case_id"]] = {f["code"] for f in case["flags"]}
    assert {k: v for k, v in got.items() if v} == EXPECTED_FLAGS
    assert doc["overall"]["flagged_cases"] == len(EXPECTED_FLAGS)
    assert doc["overall"]["flags"]["grid_mismatch"] == 2
    assert len(doc["flags"]) == sum(len(v) for v in EXPECTED_FLAGS.values())
    messages = {(f["case_id"], f["code"]): f["message"] for f in doc["flags"]}
    assert "[7]" in messages[("b5", "unexpected_values")]
    assert "z 6 mm vs median 2.5 mm" in messages[("b2", "spacing_outlier")]
    assert "LAS" in messages[("a2", "non_ras")]


def test_label_numbers_match_numpy(qa_run) -> None:
    _, out, fabs = qa_run
    doc = json.loads((out / "qa.json").read_text(encoding="utf-8"))
    cases = {c["case_id"]: c for c in doc["cases"]}
    for scope in ("alpha", "beta", "overall"):
        expected: dict[str, dict[str, int]] = {}
        for fab in fabs:
            if scope != "overall" and fab.dataset != scope or not fab.readable:
                continue
            if fab.mask is None:
                continue
            off_grid = any(f["code"] == "grid_mismatch" for f in cases[fab.case_id]["flags"])
            for name, values in fab.labels.items():
                # a mask off its image's grid is not this image's labels: flagged, not counted
                n = 0 if off_grid else int(np.isin(fab.mask, values).sum())
                row = expected.setdefault(name, {"annotated_cases": 0, "present_cases": 0,
                                                 "voxels": 0})
                row["annotated_cases"] += 1
                row["present_cases"] += n > 0
                row["voxels"] += n
                assert cases[fab.case_id]["label_voxels"].get(name, 0) == n
                assert cases[fab.case_id]["label_present"].get(name, False) == (n > 0)
        summary = doc["overall"] if scope == "overall" else doc["datasets"][scope]
        got = {name: {k: row[k] for k in ("annotated_cases", "present_cases", "voxels")}
               for name, row in summary["labels"].items()}
        assert got == expected, scope
    assert doc["datasets"]["alpha"]["labels"]["liver tumor"]["absent_cases"] == 1  # a1
    assert doc["datasets"]["beta"]["labels"]["kidney tumor"]["annotated_cases"] == 6  # not b5
    b5 = next(f for f in fabs if f.case_id == "b5")
    values, counts = np.unique(b5.mask, return_counts=True)
    assert cases["b5"]["value_voxels"] == {str(v): int(n) for v, n in zip(values, counts)}


def test_geometry_and_intensity_match_numpy(qa_run) -> None:
    _, out, fabs = qa_run
    doc = json.loads((out / "qa.json").read_text(encoding="utf-8"))
    for dataset in ("alpha", "beta"):
        readable = [f for f in fabs if f.dataset == dataset and f.readable]
        spacing = np.array([np.abs(np.diag(f.affine)[:3]) for f in readable])  # axis-aligned
        shapes = np.array([f.image.shape for f in readable])
        summary = doc["datasets"][dataset]
        for i, axis in enumerate(AXES):
            for key, values in (("spacing", spacing[:, i]), ("shape", shapes[:, i])):
                got = summary[key][axis]
                assert got["median"] == pytest.approx(float(np.median(values)))
                edges = np.asarray(got["histogram"]["edges"])
                assert got["histogram"]["counts"] == np.histogram(values, bins=edges)[0].tolist()
                assert sum(got["histogram"]["counts"]) == len(readable)
        ct = summary["intensity"]["CT"]
        voxels = sum(f.image.size for f in readable)
        assert ct["voxels"] == voxels
        assert ct["min"] == pytest.approx(min(float(f.image.min()) for f in readable))
        assert ct["max"] == pytest.approx(max(float(f.image.max()) for f in readable))
        mean = sum(float(f.image.astype(np.float64).sum()) for f in readable) / voxels
        assert ct["mean"] == pytest.approx(mean, rel=1e-6)
        assert abs(sum(ct["histogram"]["counts"]) - voxels) <= len(ct["histogram"]["counts"])
    b0 = next(c for c in doc["cases"] if c["case_id"] == "b0")
    image = next(f.image for f in fabs if f.case_id == "b0").astype(np.float64)
    assert b0["intensity"]["CT"]["std"] == pytest.approx(float(image.std()), rel=1e-6)
    assert b0["orientation"] == "LPS" and b0["spacing"] == [0.8, 0.8, 2.5]


def test_table_output_and_exit_status(tmp_path: Path) -> None:
    manifests, _ = fabricate(tmp_path / "data")
    beta = [m for m in manifests if m.stem == "beta"]
    result = CliRunner().invoke(app, ["qa", "-m", str(beta[0]), "-o", str(tmp_path / "r"),
                                      "--montage-cases", "1"])
    assert result.exit_code == 0, result.output  # flags alone do not fail the command
    text = " ".join(result.output.split())
    assert "beta" in text and "overall" in text and "empty_mask beta/b1" in text
    assert (tmp_path / "r" / "index.html").is_file()
    bad = CliRunner().invoke(app, ["qa", "-m", str(beta[0]), "-o", str(tmp_path / "x"),
                                   "--format", "yaml"])
    assert bad.exit_code == 2


def test_histogram_helper() -> None:
    h = histogram([2.0, 2.0, 2.0])
    assert h == {"edges": [1.5, 2.5], "counts": [3]}
    h = histogram([0, 1, 2, 3], bins=3)
    assert h["counts"] == [1, 1, 2] and h["edges"] == [0.0, 1.0, 2.0, 3.0]


def test_slices_are_ras_whatever_the_file_orientation() -> None:
    shape = (10, 12, 8)
    data = np.zeros(shape, dtype=np.float32)
    data[-1, -1, -1] = 5.0  # RAS: the patient's right-anterior-superior corner
    mask = np.zeros(shape, dtype=np.uint8)
    mask[6:9, 6:9, 4:7] = 1
    affine = _affine((1.0, 2.0, 3.0))
    record = ManifestRecord("d", "c", "p", "CT", "i", "m", ["x"], {"x": [1]}, ["x"], None, None,
                            list(shape), [1.0, 2.0, 3.0], "RAS", {"images": []}, "normalized")
    ras = case_slices(record, Volume(data, affine), Volume(mask, affine, "label"), (0.0, 1.0))
    # the same scan stored LPS (x and y flipped) must give identical pictures
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:3, 3] = [shape[0] - 1, shape[1] - 1, 0]
    lps_affine = affine @ flip
    lps = case_slices(record, Volume(data[::-1, ::-1].copy(), lps_affine),
                      Volume(mask[::-1, ::-1].copy(), lps_affine, "label"), (0.0, 1.0))
    (cell,), (lps_cell,) = ras.classes, lps.classes
    assert cell.name == "x" and cell.index == lps_cell.index == (7, 7, 5)
    for view in ("axial", "coronal", "sagittal"):
        for k in range(3):
            np.testing.assert_array_equal(cell.views[view][k], lps_cell.views[view][k])
    # slices cut through the cube (7, 7, 5); in the axial view the RAS corner (right,
    # anterior) is at the top left, rows run anterior->posterior with aspect y/x spacing
    axial, axial_mask, outline, aspect = cell.views["axial"]
    assert axial.shape == (12, 10) and aspect == 2.0
    assert axial_mask.sum() == 9 and axial_mask[12 - 1 - 7, 10 - 1 - 7] == 1
    np.testing.assert_array_equal(outline, axial_mask == 1)
    data2 = np.zeros(shape, dtype=np.float32)
    data2[-1, -1, 5] = 5.0
    corner = case_slices(record, Volume(data2, affine), Volume(mask, affine, "label"), (0, 1))
    assert corner.classes[0].views["axial"][0][0, 0] == 5.0
    coronal, _, _, c_aspect = corner.classes[0].views["coronal"]
    assert coronal.shape == (8, 10) and c_aspect == 3.0
    assert ras.value_names == {1: "x"}
