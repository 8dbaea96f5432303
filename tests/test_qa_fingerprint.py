"""``harmonize qa``'s new numbers against independent oracles.

Components against ``scipy.ndimage.label`` on analytic shapes; the montage cut through a
class's larger component; a 104-entry legend against the figure's laid-out boxes; foreground and
per-class statistics against numpy on the masked source files; CT in HU from a ``harmonize run``
output against the run's source NIfTI read with nibabel; the per-split class table against a
count of the fabricated cases; the HTML's pictures and tables.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from harmonize.cli.app import app
from harmonize.manifest.build import read_manifest
from harmonize.manifest.records import ManifestRecord
from harmonize.qa.components import class_region, components, value_boxes
from harmonize.qa.montage import ClassPanels, Panels, case_slices, draw_case
from harmonize.read.volume import Volume
from tests.test_qa import fabricate

TOL = 1e-6


def _ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius ** 2


def _record(labels: dict[str, list[int]], shape) -> ManifestRecord:
    return ManifestRecord("d", "c", "p", "CT", "i", "m", list(labels), labels, list(labels), None,
                          None, list(shape), [1.0, 1.0, 1.0], "RAS", {"images": []}, "normalized")


def test_components_match_scipy_on_two_kidneys_and_touching_shapes() -> None:
    shape = (40, 30, 30)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[_ball(shape, (10, 15, 15), 6)] = 1  # right kidney
    mask[_ball(shape, (30, 15, 15), 4)] = 1  # left kidney
    mask[_ball(shape, (10, 15, 15), 2)] = 2  # tumour inside the right kidney
    mask[2, 2, 2] = 3  # one voxel cyst...
    mask[3, 3, 3] = 3  # ...and one touching it only diagonally: 2 components (face rule)
    labels = {"kidney": [1, 2, 3], "kidney tumor": [2], "kidney cyst": [3]}
    boxes = value_boxes(mask)
    for name, values in labels.items():
        comps = components(class_region(mask, values, boxes))
        truth, n = ndimage.label(np.isin(mask, values))
        sizes = sorted(np.bincount(truth.ravel())[1:].tolist(), reverse=True)
        assert len(comps.sizes) == n and comps.sizes == sizes, name
    kidney = components(class_region(mask, labels["kidney"], boxes))
    assert len(kidney.sizes) == 4  # two kidneys + two cyst voxels
    assert kidney.sizes[0] == int(_ball(shape, (10, 15, 15), 6).sum())
    d = kidney.to_dict(voxel_mm3=2.0)
    assert d["largest_mm3"] == pytest.approx(2.0 * kidney.sizes[0]) and d["smallest_mm3"] == 2.0


def test_montage_cuts_through_the_larger_of_two_components() -> None:
    shape = (48, 40, 44)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[_ball(shape, (12, 14, 30), 3)] = 1  # small, listed first in voxel order
    mask[_ball(shape, (33, 25, 12), 7)] = 1  # the larger one
    image = np.zeros(shape, dtype=np.float32)
    panels = case_slices(_record({"kidney": [1]}, shape), Volume(image, np.eye(4)),
                         Volume(mask, np.eye(4), "label"), (0.0, 1.0))
    (cell,) = panels.classes
    assert cell.index == (33, 25, 12) and cell.components == 2
    for view in ("axial", "coronal", "sagittal"):
        _, shown, outline, _ = cell.views[view]
        assert outline.sum() == shown.sum() > 0  # the larger ball only, and it is in the cut
    # the centre of both balls' bounding box, where the old montage cut, holds no label
    centre = [(int(np.flatnonzero(mask.any(axis=o))[0]) + int(np.flatnonzero(mask.any(axis=o))[-1]))
              // 2 for o in ((1, 2), (0, 2), (0, 1))]
    assert not mask[centre[0], :, :].any()


@pytest.mark.parametrize("n_classes", [4, 25, 104])
def test_legend_never_overlaps_the_panels(n_classes: int) -> None:
    plane = np.zeros((30, 20), dtype=np.uint8)
    plane.ravel()[: n_classes * 5] = np.repeat(np.arange(1, n_classes + 1), 5)
    views = {v: (np.zeros((30, 20), np.float32), plane, plane == 1, 1.5)
             for v in ("axial", "coronal", "sagittal")}
    cells = [ClassPanels(f"class {i}", (1, 2, 3), 1, views) for i in range(min(n_classes, 12))]
    names = {v: f"a rather long anatomical structure name number {v}" for v in range(1, 200)}
    fig = draw_case(Panels("d", "case", cells, (0.0, 1.0), names))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    assert len(legend.get_texts()) == n_classes
    box = legend.get_window_extent(renderer)
    width, height = fig.bbox.width, fig.bbox.height
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width + 0.5 and box.y1 <= height
    for ax in fig.axes:
        for item in (ax, ax.title):
            other = item.get_window_extent(renderer)
            assert not box.overlaps(other), (n_classes, other, box)
        assert ax.get_window_extent(renderer).y0 >= 0
    fontsize = legend.get_texts()[0].get_fontsize()
    assert fontsize >= 7  # legible: the figure grows, the font does not shrink


@pytest.fixture(scope="module")
def source_report(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("qafp")
    manifests, fabs = fabricate(root / "data")
    out = root / "report"
    args = ["qa", "-o", str(out), "--format", "json", "--montage-cases", "2"]
    for m in manifests:
        args += ["-m", str(m)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # a3 is unreadable
    return json.loads((out / "qa.json").read_text(encoding="utf-8")), fabs, out


def test_foreground_and_class_statistics_match_numpy(source_report) -> None:
    doc, fabs, _ = source_report
    cases = {c["case_id"]: c for c in doc["cases"]}
    b0 = next(f for f in fabs if f.case_id == "b0")
    got = cases["b0"]
    assert got["units"]["CT"] == {"units": "HU", "clipped": None}
    for region, select in (("foreground", b0.mask > 0), ("kidney tumor", b0.mask == 2),
                           ("kidney", np.isin(b0.mask, [1, 2]))):
        values = b0.image[select].astype(np.float64)
        stats = got["foreground_intensity"]["CT"] if region == "foreground" \
            else got["class_intensity"][region]["CT"]
        p005, p50, p995 = np.percentile(values, [0.5, 50, 99.5])
        expected = {"voxels": values.size, "mean": values.mean(), "std": values.std(),
                    "min": values.min(), "max": values.max(), "percentile_00_5": p005,
                    "median": p50, "percentile_99_5": p995}
        for key, value in expected.items():
            assert stats[key] == pytest.approx(value, rel=TOL, abs=TOL), (region, key)
        if region != "foreground":
            truth, n = ndimage.label(select)
            assert got["components"][region]["count"] == n
    # alpha is `harmonize run`-like output without a recorded mapping: said so, not called HU
    assert cases["a0"]["units"]["CT"]["units"] == "normalized units"
    assert doc["datasets"]["alpha"]["units"]["CT"]["units"] == "normalized units"
    pooled = doc["datasets"]["beta"]["foreground_intensity"]["CT"]
    assert pooled["n"] == 10000 * sum(1 for f in fabs if f.dataset == "beta"
                                      and cases[f.case_id]["foreground_voxels"])


def test_per_split_class_table_counts_the_cases(source_report) -> None:
    doc, fabs, _ = source_report
    cases = {c["case_id"]: c for c in doc["cases"]}
    splits = doc["datasets"]["beta"]["splits"]
    for split in ("train", "test"):
        expected: dict[str, list[int]] = {}
        for fab in fabs:
            record_split = ("train", "test")[int(fab.case_id[1:]) % 2]
            if fab.dataset != "beta" or record_split != split:
                continue
            for name in fab.labels:
                voxels = cases[fab.case_id]["label_voxels"].get(name, 0)
                row = expected.setdefault(name, [0, 0, 0])
                row[0] += 1
                row[1] += voxels > 0
                row[2] += voxels
        got = {n: [r["annotated_cases"], r["present_cases"], r["voxels"]]
               for n, r in splits[split].items()}
        assert got == expected, split


def test_html_embeds_existing_pictures_and_tables(source_report) -> None:
    doc, _, out = source_report
    index = (out / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r"<img src='([^']+)'", index)
    assert len(sources) == 3 + 5 + 5
    for src in sources:
        assert (out / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    for heading in ("Classes per split", "Intensity over the foreground and per class",
                    "Connected components (lesion counts) per class"):
        assert heading in index
    assert index.count("<table>") >= 10
    assert "<td class='l'>kidney tumor</td><td class='l'>CT</td><td class='l'>HU</td>" in index


def test_ct_statistics_of_a_run_are_in_hu_of_its_source_files(tmp_path: Path) -> None:
    demo = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "-d", "kits23", "--cases", "2",
                                    "--workers", "1"])
    assert demo.exit_code == 0, demo.output
    manifest = tmp_path / "harmonized" / "kits23.jsonl"
    result = CliRunner().invoke(app, ["qa", "-m", str(manifest), "-o", str(tmp_path / "qa"),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "qa" / "qa.json").read_text(encoding="utf-8"))
    cases = {c["case_id"]: c for c in doc["cases"]}
    for record in read_manifest(manifest):
        assert record.stage == "normalized" and record.extra["intensity"]["method"] == "ct_window"
        lo, hi = record.extra["intensity"]["clip"]
        base = manifest.parent
        image = np.asarray(nib.load(base / record.source["images"][0]["path"]).dataobj)
        label = np.asarray(nib.load(base / record.source["label"]["path"]).dataobj)
        hu = np.clip(image.astype(np.float64), lo, hi)  # the run kept the HU inside its window
        got = cases[record.case_id]
        assert got["units"]["CT"] == {"units": "HU", "clipped": [lo, hi]}
        fg = hu[label > 0]
        stats = got["foreground_intensity"]["CT"]
        assert stats["voxels"] == fg.size
        assert stats["mean"] == pytest.approx(fg.mean(), abs=1e-3)
        assert stats["median"] == pytest.approx(np.median(fg), abs=1e-3)
        assert got["intensity"]["CT"]["min"] == pytest.approx(hu.min(), abs=1e-3)
        for name, values in record.labels.items():
            inside = hu[np.isin(label, values)]
            if inside.size:
                assert got["class_intensity"][name]["CT"]["mean"] == pytest.approx(
                    inside.mean(), abs=1e-3), name
        # the montage cuts every class present, inside the RAS volume
        cuts = got["montage_slices"]
        assert set(cuts) == {n for n, v in got["label_voxels"].items() if v > 0}
        assert all(0 <= i < n for cut in cuts.values() for i, n in zip(cut, got["shape"]))
    assert doc["datasets"]["kits23"]["units"]["CT"]["units"] == "HU"


def test_montage_draws_at_most_max_classes_and_names_the_rest() -> None:
    shape = (30, 20, 20)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[_ball(shape, (8, 10, 10), 4)] = 1
    mask[_ball(shape, (22, 10, 10), 4)] = 2
    labels = {"right kidney": [1], "left kidney": [2], "kidney": [1, 2], "kidney cyst": [3]}
    panels = case_slices(_record(labels, shape), Volume(np.zeros(shape, np.float32), np.eye(4)),
                         Volume(mask, np.eye(4), "label"), (0.0, 1.0), max_classes=2)
    assert [c.name for c in panels.classes] == ["right kidney", "left kidney"]
    assert panels.hidden == ["kidney"]  # the cyst is absent: neither drawn nor hidden
    assert panels.classes[1].index == (22, 10, 10)


def test_unlabelled_case_is_cut_through_the_centre() -> None:
    shape = (10, 12, 8)
    panels = case_slices(_record({}, shape), Volume(np.ones(shape, np.float32), np.eye(4)), None,
                         (0.0, 1.0))
    (cell,) = panels.classes
    assert cell.name == "(no label)" and cell.index == (5, 6, 4)
    for view, expected in (("axial", (12, 10)), ("coronal", (8, 10)), ("sagittal", (8, 12))):
        image, mask, outline, _ = cell.views[view]
        assert image.shape == mask.shape == outline.shape == expected
        assert not mask.any() and not outline.any()
