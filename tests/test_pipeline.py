"""End-to-end tests of harmonize.engine.pipeline.run and `harmonize run` on fabricated KiTS23 trees."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.kits import make_kits23
from harmonize.plugins.kits import KiTS23
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.engine.normalize import Settings, dataset_statistics, foreground_sample
from harmonize.engine.pipeline import Target, run
from harmonize.files import sha256_path
from harmonize.manifest.build import read_manifest, validate_manifest
from harmonize.manifest.records import Case
from harmonize.plugin.catalog import Catalog
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.testing import write_nifti


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def invoke(*args: str):
    return CliRunner().invoke(app, ["run", *args, "--no-progress"])


def test_run_writes_outputs_manifest_splits_and_records(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=3, seed=3)
    out = tmp_path / "out"
    result = run([Target("kits23", root)], out, Settings(spacing=(1.5, 1.5, 3.0)), workers=1,
                 progress=False)
    assert result.ok and result.errors == [] and len(result.done) == 3
    assert validate_manifest(out / "kits23.jsonl") == []
    records = read_manifest(out / "kits23.jsonl")
    assert [r.case_id for r in records] == ["case_00000", "case_00001", "case_00002"]
    splits = json.loads((out / "splits.json").read_text())
    assert sorted(sum(splits.values(), [])) == [f"kits23:{r.case_id}" for r in records]
    assert (out / "errors.jsonl").read_text() == ""
    for record in records:
        image = nib.load(out / record.image)
        mask = nib.load(out / record.mask)
        # record geometry is the OUTPUT's; the original geometry is kept apart
        assert list(image.shape) == record.shape == list(mask.shape)
        assert np.allclose(image.header.get_zooms(), record.spacing)
        assert record.spacing == [1.5, 1.5, 3.0] and record.orientation == "RAS"
        assert np.allclose(image.affine, record.affine, atol=1e-5)
        assert "".join(nib.aff2axcodes(mask.affine)) == "RAS"
        original = record.extra["original"]
        assert original["orientation"] == "IPL" and original["shape"] != record.shape
        src = root / "dataset" / record.case_id
        assert record.source["images"][0]["sha256"] == sha256_path(src / "imaging.nii.gz")
        assert record.source["label"]["sha256"] == sha256_path(src / "segmentation.nii.gz")
        assert (out / record.source["images"][0]["path"]).resolve() == (src / "imaging.nii.gz").resolve()
        assert [op["op"] for op in record.extra["operations"]] == [
            "reorient", "resample", "resample", "ct_window"]
        assert record.extra["intensity"]["clip"] == [-200.0, 300.0]  # the descriptor's window
        assert record.extra["settings"]["spacing"] == [1.5, 1.5, 3.0]
        assert set(record.extra["provenance"]) >= {"harmonize", "numpy", "nibabel", "SimpleITK"}
        assert len(record.extra["fingerprint"]) == 64
        values = set(np.unique(np.asarray(mask.dataobj)).tolist())
        assert values <= {0, 1, 2, 3} and {1, 2} <= values
        assert record.labels["kidney"] == [1, 2, 3] and record.split in ("train", "val", "test")
        data = image.get_fdata()
        assert 0.0 <= data.min() and data.max() <= 1.0
        done = json.loads((out / "kits23" / record.case_id / "done.json").read_text())
        assert done["record"]["case_id"] == record.case_id and len(done["key"]) == 64


def test_output_bytes_are_deterministic_across_runs_and_workers(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=4, seed=5)
    settings = Settings(spacing=(1.2, 1.2, 2.0), interpolation="bspline")
    run([Target("kits23", root)], tmp_path / "a", settings, workers=1, progress=False)
    run([Target("kits23", root)], tmp_path / "b", settings, workers=2, progress=False)
    first, second = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert len(first) == 4 * 3 + 3  # image, mask, done.json per case + jsonl, splits, errors
    assert first == second


def test_cli_run_flags_summary_and_skipped_items(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=3, seed=2, missing_label=(1,))
    (root / "dataset" / "notes.txt").write_text("not data")
    out = tmp_path / "out"
    res = invoke("-d", "kits23", "-r", str(root), "-o", str(out), "--spacing", "2",
                 "--ct-window", "-100", "200", "--workers", "2", "--format", "json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["done"] == ["kits23/case_00000", "kits23/case_00002"]
    assert {s["file"].rsplit("/", 1)[-1] for s in summary["skipped"]} == {"case_00001", "notes.txt"}
    lines = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["skipped", "skipped"]
    assert all(line["dataset"] == "kits23" and line["message"] for line in lines)
    record = read_manifest(out / "kits23.jsonl")[0]
    assert record.spacing == [2.0, 2.0, 2.0]
    assert record.extra["intensity"]["clip"] == [-100.0, 200.0]
    table = invoke("-d", "kits23", "-r", str(root), "-o", str(out), "--spacing", "2", "2", "2",
                   "--ct-window", "-100,200")
    assert table.exit_code == 0 and "0 processed, 2 up to date" in table.stdout
    assert "skipped (2):" in table.stderr and "notes.txt" in table.stderr


def _rewrite(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    path.unlink()
    write_nifti(path, data, affine)


def _zero_spacing(path: Path) -> None:
    """Patch the header bytes: pixdim[1] = 0 and sform_code = 0 (nibabel would "fix" pixdim)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[80:84] = np.float32(0.0).tobytes()   # pixdim[1]
    raw[254:256] = np.int16(0).tobytes()     # sform_code
    path.write_bytes(gzip.compress(bytes(raw)))


def test_bad_inputs_become_error_records_and_leave_no_files(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=9, seed=4)
    case = {n: root / "dataset" / f"case_{n:05d}" for n in range(9)}
    img, seg = "imaging.nii.gz", "segmentation.nii.gz"
    ref = nib.load(case[0] / img)
    image, affine = np.asarray(ref.dataobj), ref.affine
    label = np.asarray(nib.load(case[0] / seg).dataobj)
    raw = (case[1] / img).read_bytes()
    (case[1] / img).write_bytes(raw[:20] + bytes(range(256)) * 8)            # corrupt gzip
    (case[2] / img).write_bytes(raw[: len(raw) // 2])                         # truncated
    for n in (3, 4, 5, 6):
        _rewrite(case[n] / img, image, affine)
    _rewrite(case[3] / seg, label[:-1], affine)                               # shape mismatch
    shifted = affine.copy()
    shifted[:3, 3] += 5.0
    _rewrite(case[4] / seg, label, shifted)                                   # affine mismatch
    nan_image = image.astype(np.float32)
    nan_image[3, 4, 5], nan_image[1, 1, 1] = np.nan, np.inf
    _rewrite(case[5] / img, nan_image, affine)                                # NaN/inf voxels
    bad_label = label.copy()
    bad_label[0, 0, 0] = 7
    _rewrite(case[6] / seg, bad_label, affine)                                # undeclared label
    _rewrite(case[7] / img, np.stack([image, image], axis=-1), affine)        # 4D where 3D expected
    _zero_spacing(case[8] / img)                                              # zero spacing
    out = tmp_path / "out"
    res = invoke("-d", "kits23", "-r", str(root), "-o", str(out), "--workers", "2",
                 "--format", "json")
    assert res.exit_code == 1, res.output
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    by_case = {e["case"]: e for e in errors}
    assert sorted(by_case) == [f"case_{n:05d}" for n in range(1, 9)]
    expected = {1: ("read", img), 2: ("read", img), 3: ("label", seg), 4: ("label", seg),
                5: ("read", img), 6: ("label", seg), 7: ("read", img), 8: ("read", img)}
    for n, (kind, name) in expected.items():
        error = by_case[f"case_{n:05d}"]
        assert error["kind"] == kind, error
        assert error["dataset"] == "kits23" and error["file"].endswith(f"case_{n:05d}/{name}")
        assert error["message"] and error["hint"]
    assert "7" in by_case["case_00006"]["message"]
    assert "NaN" in by_case["case_00005"]["message"]
    assert [r.case_id for r in read_manifest(out / "kits23.jsonl")] == ["case_00000"]
    assert json.loads(res.stdout)["done"] == ["kits23/case_00000"]
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    assert sorted(p.name for p in (out / "kits23").iterdir()) == ["case_00000"]


class StaticPlugin(DatasetPlugin):
    """A test plugin that returns fixed cases (used for DICOM folders)."""

    def __init__(self, descriptor: dict, cases: list[Case]) -> None:
        super().__init__(descriptor)
        self.cases = cases

    @property
    def dataset_id(self) -> str:
        return self.descriptor.id

    def discover(self, root: Path):
        yield from self.cases


def _write_dicom_series(folder: Path, volume: np.ndarray, series_uid: str, start: int = 0) -> None:
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(volume.shape[0]):
        image = sitk.GetImageFromArray(volume[z][None].astype(np.int16))
        image.SetSpacing((0.8, 0.8, 2.5))
        tags = {
            "0008|0060": "CT", "0020|000d": "1.2.826.0.1.3680043.2.1125.1", "0020|000e": series_uid,
            "0020|0037": "1\\0\\0\\0\\1\\0", "0020|0032": f"-100\\-100\\{z * 2.5}",
            "0020|0013": str(z + 1), "0028|0030": "0.8\\0.8", "0018|0050": "2.5",
            "0008|0018": f"{series_uid}.{z + 1}",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{start + z:04d}.dcm"))
        writer.Execute(image)


def test_dicom_inputs_good_unreadable_and_two_series(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    volume = rng.integers(-200, 300, size=(6, 16, 20)).astype(np.int16)
    good, garbage, double = tmp_path / "good", tmp_path / "garbage", tmp_path / "double"
    _write_dicom_series(good, volume, "1.2.826.0.1.3680043.2.1125.2")
    garbage.mkdir()
    (garbage / "IM0000.dcm").write_bytes(b"not a dicom file" * 64)
    _write_dicom_series(double, volume, "1.2.826.0.1.3680043.2.1125.3")
    _write_dicom_series(double, volume, "1.2.826.0.1.3680043.2.1125.4", start=100)
    descriptor = {"id": "dicomtest", "name": "DICOM test", "modality": "CT",
                  "values": {0: "background", 1: "liver"}, "classes": {"liver": [1]},
                  "ct_window": [-100, 200]}
    cases = [Case(case_id=f.name, patient_id=f.name, images=(f,)) for f in (good, garbage, double)]
    plugin = StaticPlugin(descriptor, cases)
    catalog = Catalog(datasets={"dicomtest": plugin}, errors=[])
    result = run([Target("dicomtest", tmp_path)], tmp_path / "out", workers=1, progress=False,
                 catalog=catalog)
    assert [r.case_id for r in result.records] == ["good"]
    record = result.records[0]
    assert record.shape == [20, 16, 6] and record.spacing == [0.8, 0.8, 2.5]
    assert record.mask is None and record.labels == {}
    assert {e.case: e.kind for e in result.errors} == {"garbage": "read", "double": "read"}
    double_error = next(e for e in result.errors if e.case == "double")
    assert "series" in double_error.message and double_error.file == str(double)


def test_error_paths_are_absolute_and_a_stale_mask_is_removed(tmp_path: Path, monkeypatch) -> None:
    make_kits23(tmp_path / "kits23", n_cases=2, seed=10)
    monkeypatch.chdir(tmp_path)
    bad = Path("kits23/dataset/case_00001/imaging.nii.gz")
    bad.write_bytes(bad.read_bytes()[:300])
    out = tmp_path / "out"
    result = run([Target("kits23", Path("kits23"))], out, workers=1, progress=False)
    assert [e.case for e in result.errors] == ["case_00001"]
    line = json.loads((out / "errors.jsonl").read_text().splitlines()[0])
    assert line["file"] == str(tmp_path / bad)  # readable from anywhere, not only from the cwd

    folder = tmp_path / "kits23" / "dataset" / "case_00000"
    descriptor = {"id": "maskless", "name": "mask test", "modality": "CT",
                  "values": {0: "background", 1: "kidney", 2: "kidney tumor", 3: "kidney cyst"},
                  "classes": {"kidney": [1, 2, 3]}, "ct_window": [-100, 200]}
    with_label = Case(case_id="c0", patient_id="p0", images=(folder / "imaging.nii.gz",),
                      label=folder / "segmentation.nii.gz")
    for case in (with_label, dataclasses.replace(with_label, label=None)):
        catalog = Catalog(datasets={"maskless": StaticPlugin(descriptor, [case])}, errors=[])
        result = run([Target("maskless", tmp_path)], out, workers=1, progress=False,
                     catalog=catalog)
        assert result.ok and len(result.done) == 1
    assert result.records[0].mask is None
    assert sorted(p.name for p in (out / "maskless" / "c0").iterdir()) == ["done.json",
                                                                          "image.nii.gz"]


def test_nnunet_ct_statistics_pass_is_run_recorded_and_used(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=3, seed=6, missing_label=(2,))
    out = tmp_path / "out"
    result = run([Target("kits23", root, {"preset": "nnunet-ct"})], out, workers=2,
                 progress=False)
    assert result.ok and len(result.records) == 2
    samples = []
    for n in (0, 1):
        folder = root / "dataset" / f"case_{n:05d}"
        image = np.asarray(nib.load(folder / "imaging.nii.gz").dataobj)
        label = np.asarray(nib.load(folder / "segmentation.nii.gz").dataobj)
        samples.append(foreground_sample(image, label))
    expected = dataset_statistics(samples)
    stats = json.loads((out / "kits23.stats.json").read_text())
    assert stats["cases"] == ["case_00000", "case_00001"]
    assert stats["statistics"] == pytest.approx(expected)
    for record in result.records:
        assert record.extra["intensity"]["dataset_stats"] == pytest.approx(expected)
        assert record.extra["settings"]["preset"] == "nnunet-ct"
        data = nib.load(out / record.image).get_fdata()
        high = (expected["percentile_99_5"] - expected["mean"]) / expected["std"]
        assert data.max() == pytest.approx(high, rel=1e-4)
    again = run([Target("kits23", root, {"preset": "nnunet-ct"})], out, workers=1, progress=False)
    assert len(again.up_to_date) == 2 and again.done == []


class WindowedKiTS(KiTS23):
    """KiTS23 whose cases carry a per-series CT window (the typed ``Case.ct_window``)."""

    def discover(self, root: Path):
        for item in super().discover(root):
            if isinstance(item, Case):
                item = dataclasses.replace(item, ct_window=(-50, 150))
            yield item


def test_series_window_of_the_case_wins_over_dataset_window(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=1, seed=7)
    catalog = Catalog(datasets={"kits23": WindowedKiTS()}, errors=[])
    result = run([Target("kits23", root)], tmp_path / "out", workers=1, progress=False,
                 catalog=catalog)
    intensity = result.records[0].extra["intensity"]
    assert intensity["clip"] == [-50.0, 150.0] and intensity["window_source"] == "series"


def test_unknown_dataset_and_duplicate_targets_stop_before_any_work(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=1)
    res = invoke("-d", "nosuch", "-r", str(root), "-o", str(tmp_path / "out"))
    assert res.exit_code == 2 and "unknown dataset" in res.output
    assert not (tmp_path / "out").exists()
    from harmonize.engine.config import ConfigError

    with pytest.raises(ConfigError, match="more than once"):
        run([Target("kits23", root), Target("kits23", root)], tmp_path / "out", progress=False)


def test_missing_root_is_reported_and_keeps_previous_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "kits23.jsonl").write_text("")
    result = run([Target("kits23", tmp_path / "nowhere")], out, workers=1, progress=False)
    assert not result.ok and result.errors[0].kind == "discovery"
    assert "kits23" not in result.manifests
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert errors[0]["kind"] == "discovery" and "nowhere" in errors[0]["file"]


def test_gzip_output_has_no_timestamp(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=1, seed=8)
    out = tmp_path / "out"
    run([Target("kits23", root)], out, workers=1, progress=True)
    raw = (out / "kits23" / "case_00000" / "image.nii.gz").read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip MTIME field
    assert gzip.decompress(raw)[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c")


class CrashingKiTS(KiTS23):
    """KiTS23 whose reader kills the worker process on case_00001 (as the OOM killer would)."""

    def read_image(self, case: Case):
        if case.case_id == "case_00001":
            import os

            os._exit(9)
        return None


def test_worker_killed_on_one_case_fails_only_that_case(tmp_path: Path) -> None:
    root = make_kits23(tmp_path / "kits23", n_cases=4, seed=9)
    catalog = Catalog(datasets={"kits23": CrashingKiTS()}, errors=[])
    result = run([Target("kits23", root)], tmp_path / "out", workers=2, progress=False,
                 catalog=catalog)
    assert [(e.case, e.kind) for e in result.errors] == [("case_00001", "worker")]
    assert "fewer --workers" in (result.errors[0].hint or "")
    # a case whose worker finished it just before the pool broke is rerun and found up to date
    assert sorted(result.done + result.up_to_date) == [
        "kits23/case_00000", "kits23/case_00002", "kits23/case_00003"]
