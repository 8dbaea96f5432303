"""`harmonize export slices` against the published KiTS23-2D dataset description
(``shared/reference/kits23-2d-dataset.md``): its conversion code and its PyTorch example are
copied verbatim below and are the oracles; contours are checked against scipy.ndimage, the split
against ``random.seed(42)``, nothing against the exporter's own functions."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import cv2
import nibabel as nib
import numpy as np
import pytest
from harmonize.plugins.fabricators.kits import make_kits23
from PIL import Image
from scipy import ndimage

from harmonize.export.slices import export_slices
from harmonize.manifest.build import build_manifest, read_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.plugin.discovery import discover
from harmonize.testing.normalized import make_normalized_dataset

# The published colours (reference section 3), RGB.
COLOURS = {1: (0, 255, 0), 2: (255, 0, 0), 3: (255, 255, 0)}
FIXED_COLUMNS = ["filename", "key", "dataset", "case_id", "slice", "split", "image", "mask",
                 "foreground", "values"]

# Reference section 9, verbatim.
SECTION_9 = '''
import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, DataLoader


class KiTS23Dataset(Dataset):
    """PyTorch Dataset for KiTS23-2D kidney tumor segmentation."""

    def __init__(self, split_csv, img_dir, mask_dir, transform=None):
        """
        Args:
            split_csv:  Path to train_slices.csv / val_slices.csv / test_slices.csv
            img_dir:    Path to images/ folder
            mask_dir:   Path to masks/ folder
            transform:  Optional albumentations transform
        """
        self.df = pd.read_csv(split_csv)
        self.img_dir = img_dir
        self.mask_dir = mask_dir
        self.transform = transform

    def __len__(self):
        return len(self.df)

    def __getitem__(self, idx):
        fname = self.df.iloc[idx]['filename']

        # Load 16-bit CT image → normalize to float32 [0, 1]
        img = cv2.imread(f"{self.img_dir}/{fname}", cv2.IMREAD_UNCHANGED)
        img = img.astype(np.float32) / 65535.0

        # Load segmentation mask (values 0, 1, 2, 3)
        mask = cv2.imread(f"{self.mask_dir}/{fname}", cv2.IMREAD_UNCHANGED)

        # Apply augmentations (e.g., albumentations)
        if self.transform:
            augmented = self.transform(image=img, mask=mask)
            img, mask = augmented['image'], augmented['mask']

        # Return as tensors: image (1, H, W), mask (H, W)
        img_tensor = torch.from_numpy(img).unsqueeze(0)  # (1, 512, 512)
        mask_tensor = torch.from_numpy(mask).long()       # (512, 512)

        return img_tensor, mask_tensor


# ── Example: Load training set ──
dataset_root = "KiTS23_2D"

train_dataset = KiTS23Dataset(
    split_csv=f"{dataset_root}/splits/train_slices.csv",
    img_dir=f"{dataset_root}/images",
    mask_dir=f"{dataset_root}/masks",
)

train_loader = DataLoader(train_dataset, batch_size=16, shuffle=True, num_workers=4)

for images, masks in train_loader:
    print(f"Images: {images.shape}")    # torch.Size([16, 1, 512, 512])
    print(f"Masks:  {masks.shape}")     # torch.Size([16, 512, 512])
    print(f"Labels: {masks.unique()}")  # tensor([0, 1, 2, 3])
    break
'''


def published_conversion(case_dir: Path, output_dir: Path) -> int:
    """The reference's steps 2, 4, 5 and 6, its code verbatim; the glue (get_fdata, file names
    ``<case>_slice_ZZZ.png`` of section 2, cv2.imwrite of step 6) is the reference's prose."""
    img_nii = nib.as_closest_canonical(nib.load(case_dir / "imaging.nii.gz"))
    seg_nii = nib.as_closest_canonical(nib.load(case_dir / "segmentation.nii.gz"))
    volume = img_nii.get_fdata()
    seg_data = seg_nii.get_fdata().astype(np.uint8)
    # Window: center=50, width=500 → range [-200, 300] HU
    vmin, vmax = -200, 300
    clipped = np.clip(volume, vmin, vmax)
    normalized = (clipped - vmin) / (vmax - vmin)        # → [0, 1]
    img_16bit = (normalized * 65535).astype(np.uint16)    # → [0, 65535]
    for z in range(volume.shape[2]):
        slice_img = img_16bit[:, :, z]     # 512×512, uint16
        slice_seg = seg_data[:, :, z]      # 512×512, uint8 (values 0,1,2,3)
        fname = f"{case_dir.name}_slice_{z:03d}.png"
        cv2.imwrite(str(output_dir / "images" / fname), slice_img)
        cv2.imwrite(str(output_dir / "masks" / fname), slice_seg)
    return int(volume.shape[2])


def seed42_split(case_ids: list[str]) -> dict[str, list[str]]:
    """Reference section 4: case-level, ``random.seed(42)``, 70/10/20 (rounded down; 489 cases
    give the published 342/48/99), over the sorted case list the converter walks."""
    cases = sorted(case_ids)
    random.seed(42)
    random.shuffle(cases)
    n_train, n_val = int(len(cases) * 0.7), int(len(cases) * 0.1)
    return {"train": sorted(cases[:n_train]), "val": sorted(cases[n_train:n_train + n_val]),
            "test": sorted(cases[n_train + n_val:])}


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.array(image)


def csv_rows(out: Path, split: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(out / "splits" / f"{split}_slices.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """10 fabricated KiTS23 cases, their source manifest, and a default export named KiTS23_2D."""
    base = tmp_path_factory.mktemp("kits23_2d")
    root = make_kits23(base / "kits23", n_cases=10, seed=7)
    plugin = load_catalog(entry_points=False).get("kits23")
    build_manifest(plugin, discover(plugin, root), base / "manifests")
    out = base / "KiTS23_2D"
    result = export_slices([base / "manifests" / "kits23.jsonl"], out)
    assert result.ok, result.errors
    return {"base": base, "root": root, "out": out, "result": result,
            "manifest": base / "manifests" / "kits23.jsonl"}


def test_every_pixel_equals_the_published_conversion(kits: dict[str, Any]) -> None:
    published = kits["base"] / "published"
    for folder in ("images", "masks"):
        (published / folder).mkdir(parents=True)
    cases = sorted(p for p in (kits["root"] / "dataset").glob("case_*") if p.is_dir())
    total = sum(published_conversion(case, published) for case in cases)
    assert total == sum(info["slices"] for info in kits["result"].cases.values())
    differing = compared = 0
    for folder in ("images", "masks"):
        names = sorted(p.name for p in (published / folder).glob("*.png"))
        assert names == sorted(p.name for p in (kits["out"] / folder).glob("*.png"))
        for name in names:
            want = cv2.imread(str(published / folder / name), cv2.IMREAD_UNCHANGED)
            got = cv2.imread(str(kits["out"] / folder / name), cv2.IMREAD_UNCHANGED)
            assert got.dtype == want.dtype and got.shape == want.shape, name
            differing += int(np.count_nonzero(got != want))
            compared += want.size
    assert compared > 2 * 40 * 48 * 200 and differing == 0


def test_the_published_pytorch_example_runs_unchanged(
    kits: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(kits["out"].parent)  # the example's dataset_root = "KiTS23_2D"
    namespace: dict[str, Any] = {"__name__": "kits23_2d_example"}
    exec(compile(SECTION_9, "reference-section-9", "exec"), namespace)
    images, masks = namespace["images"], namespace["masks"]
    info = next(iter(kits["result"].cases.values()))
    height, width = info["shape"][:2]
    assert tuple(images.shape) == (16, 1, height, width) and str(images.dtype) == "torch.float32"
    assert tuple(masks.shape) == (16, height, width) and str(masks.dtype) == "torch.int64"
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert set(masks.unique().tolist()) <= {0, 1, 2, 3}
    assert "Images: torch.Size([16, 1," in capsys.readouterr().out
    dataset = namespace["train_dataset"]
    frame = dataset.df
    assert len(dataset) == sum(kits["result"].cases[k]["slices"]
                               for k in kits["result"].splits["train"])
    for idx in (0, len(dataset) // 2):  # an item is the published slice / 65535 and its mask
        case, z = frame.iloc[idx]["case_id"], int(frame.iloc[idx]["slice"])
        hu = nib.as_closest_canonical(
            nib.load(kits["root"] / "dataset" / case / "imaging.nii.gz")).get_fdata()[:, :, z]
        seg = nib.as_closest_canonical(
            nib.load(kits["root"] / "dataset" / case / "segmentation.nii.gz")).get_fdata()
        image, mask = dataset[idx]
        want = ((np.clip(hu, -200, 300) + 200) / 500 * 65535).astype(np.uint16)
        assert np.array_equal(image[0].numpy(), want.astype(np.float32) / 65535.0)
        assert np.array_equal(mask.numpy(), seg[:, :, z].astype(np.int64))


def test_csv_columns_and_filenames(kits: dict[str, Any]) -> None:
    out = kits["out"]
    for split in ("train", "val", "test"):
        header, rows = csv_rows(out, split)
        assert header == [*FIXED_COLUMNS, "kidney", "kidney mass", "kidney tumor", "kidney cyst"]
        keys = kits["result"].splits[split]
        assert len(rows) == sum(kits["result"].cases[k]["slices"] for k in keys)
        for row in rows:
            assert row["filename"] == f"{row['case_id']}_slice_{int(row['slice']):03d}.png"
            for folder in ("images", "masks", "masks_visible", "overlays"):
                assert (out / folder / row["filename"]).is_file()
            labels = np.array(Image.open(out / "masks" / row["filename"]))
            assert row["kidney tumor"] == str(int((labels == 2).any()))
            assert row["kidney"] == str(int((labels > 0).any()))


def test_readme_names_the_classes_counts_and_split(kits: dict[str, Any]) -> None:
    text = (kits["out"] / "README.md").read_text(encoding="utf-8")
    for line in ("| 1 | kidney | green (0, 255, 0) |", "| 2 | kidney tumor | red (255, 0, 0) |",
                 "| 3 | kidney cyst | yellow (255, 255, 0) |", "kidney mass = values 2, 3",
                 "random.seed(42)", "`filename`", "(normalized * 65535).astype(np.uint16)",
                 "CC BY-NC-SA 4.0", "layout of the published KiTS23-2D dataset"):
        assert line in text, line
    splits = kits["result"].splits
    for split in ("train", "val", "test"):
        slices = sum(kits["result"].cases[k]["slices"] for k in splits[split])
        assert f"| {split} | {len(splits[split])} | {slices} |" in text


def _check_contours(mask: np.ndarray, colours: np.ndarray, *, name: str) -> int:
    """masks_visible as the reference describes it, brute force: each value's fill and its outer
    contour ring (the 8-neighbour ring around the filled region) in its colour, except where a
    higher value (drawn later, reaching at most 2 pixels out) covers them; black elsewhere.
    Returns how many ring pixels carried a contour."""
    square = np.ones((3, 3), dtype=bool)
    values = [int(v) for v in np.unique(mask) if v]
    reach = {v: ndimage.binary_dilation(mask == v, square, iterations=2) for v in values}
    ring_pixels = 0
    for v in values:
        later = np.zeros(mask.shape, dtype=bool)
        for w in values:
            if w > v:
                later |= reach[w]
        filled = ndimage.binary_fill_holes(mask == v)
        ring = ndimage.binary_dilation(filled, square) & ~filled & ~later
        assert (colours[(mask == v) & ~later] == COLOURS[v]).all(), (name, v, "fill")
        assert (colours[ring] == COLOURS[v]).all(), (name, v, "contour ring")
        ring_pixels += int(ring.sum())
    anywhere = np.zeros(mask.shape, dtype=bool)
    for v in values:
        anywhere |= reach[v]
    assert not colours[~anywhere].any(), (name, "colour away from every structure")
    return ring_pixels


def test_masks_visible_and_overlays_carry_contours(kits: dict[str, Any]) -> None:
    out, outlined = kits["out"], 0
    for path in sorted((out / "masks").glob("*.png")):
        mask = np.array(Image.open(path))
        colours = rgb(out / "masks_visible" / path.name)
        outlined += _check_contours(mask, colours, name=path.name)
        overlay = rgb(out / "overlays" / path.name)
        image = np.array(Image.open(out / "images" / path.name))
        grey = (image.astype(np.float32) / 65535.0 * 255).astype(np.uint8)
        values = [int(v) for v in np.unique(mask) if v]
        reach = np.zeros(mask.shape, dtype=bool)
        for v in values:  # overlays: grey away from structures, the pure colour on their edge
            reach |= ndimage.binary_dilation(mask == v, np.ones((3, 3)), iterations=2)
        assert (overlay[~reach] == grey[~reach][:, None]).all(), path.name
        top = max(values, default=0)
        if top:
            filled = ndimage.binary_fill_holes(mask == top)
            edge = filled & ~ndimage.binary_erosion(filled)
            assert (overlay[edge] == COLOURS[top]).all(), path.name
    assert outlined > 500  # contours were there to check


def test_published_split_by_default_and_manifest_split_on_request(kits: dict[str, Any]) -> None:
    case_ids = sorted(p.name for p in (kits["root"] / "dataset").glob("case_*"))
    expected = seed42_split(case_ids)
    assert kits["result"].splits == expected and kits["result"].split_mode == "kits23-2d"
    assert [len(expected[s]) for s in ("train", "val", "test")] == [7, 1, 2]
    out = kits["out"]
    assert json.loads((out / "splits" / "splits.json").read_text()) == expected
    for split, ids in expected.items():
        assert (out / "splits" / f"{split}.txt").read_text().split() == ids
    own = export_slices([kits["manifest"]], kits["base"] / "own", split_mode="manifest")
    records = read_manifest(kits["manifest"])
    assert own.split_mode == "manifest" and own.splits == {
        s: sorted(r.case_id for r in records if r.split == s) for s in ("train", "val", "test")}
    assert own.splits != expected


def test_other_datasets_get_the_same_layout_with_their_classes(tmp_path: Path) -> None:
    labels = {"liver": [1], "liver tumor": [2], "spleen": [3]}
    make_normalized_dataset(tmp_path / "demo", "demo-ct", n_cases=4, labels=labels,
                            splits=["train", "train", "val", "test"])
    out = tmp_path / "demo-2d"
    result = export_slices([tmp_path / "demo" / "demo-ct.jsonl"], out)
    assert result.ok, result.errors
    assert result.split_mode == "manifest"  # no published split: the manifest's
    assert {s: len(k) for s, k in result.splits.items()} == {"train": 2, "val": 1, "test": 1}
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "images", "masks", "masks_visible", "metadata", "overlays", "splits"]
    header, rows = csv_rows(out, "train")
    assert header == [*FIXED_COLUMNS, "liver", "liver tumor", "spleen"]
    text = (out / "README.md").read_text(encoding="utf-8")
    for line in ("| 1 | liver | green", "| 2 | liver tumor | red", "| 3 | spleen | yellow",
                 "recorded in the manifest"):
        assert line in text, line
    outlined = 0
    for row in rows:
        mask = np.array(Image.open(out / "masks" / row["filename"]))
        outlined += _check_contours(mask, rgb(out / "masks_visible" / row["filename"]),
                                    name=row["filename"])
    assert outlined > 0
