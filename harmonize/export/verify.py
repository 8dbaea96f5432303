"""Check a 2D slice export (:mod:`harmonize.export.slices`) point by point, PASS or FAIL.

The points are the seed converter's checks:

``file_counts``     per split, image and mask PNGs and CSV rows equal the cases' slice counts;
                    no case failed to export (the summary's ``errors``) and there is a case
``pairing``         every image has its mask, masks_visible and overlay (labelled cases) and no
                    PNG belongs to no exported case
``shapes``          every PNG has the (X, Y) shape of its volume's axial slices
``dtypes``          images 16-bit gray (uint16), masks 8-bit gray (uint8), colour PNGs RGB
``label_values``    mask values are within the record's label values (and 0), and the CSV's
                    per-slice values match the masks
``overlay_colours`` masks_visible is the mask's palette fill with its contours; overlays are
                    60 % CT + 40 % colour with contours (:mod:`harmonize.export.png`)
``slice_range``     each case has slices 0..Z-1, zero padded to 3 digits or more
``splits``          splits are disjoint and splits.json, <split>.txt and the CSVs agree; each
                    CSV row's ``filename`` is its slice's file name
``round_trip``      each PNG equals the windowed volume (and its mask) pixel for pixel; needs the
                    manifest (``manifest`` argument, else the path recorded in the summary)
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.errors import HarmonizeError
from harmonize.export import Entry, ExportError, load_entries, read_case, source_intensity
from harmonize.export.png import overlay, read_png, to_uint16, visible
from harmonize.export.slice_lists import CSV_HEADER, FOLDERS, SLICE_NAME, index_width, slice_name
from harmonize.manifest.records import SPLITS

POINTS = {
    "file_counts": "file counts per split (images, masks, CSV rows)",
    "pairing": "image / mask / masks_visible / overlay pairing, no stray PNG",
    "shapes": "PNG shapes equal the volume's axial slices",
    "dtypes": "uint16 images, uint8 masks, RGB colour PNGs",
    "label_values": "mask values within the allowed label values",
    "overlay_colours": "masks_visible colours and contours, 60/40 overlays with contours",
    "slice_range": "slice indices 0..Z-1, zero padded",
    "splits": "case-level splits disjoint and consistent",
    "round_trip": "PNG equals the windowed volume pixel for pixel",
}
MAX_LISTED = 10


@dataclass
class Point:
    """One verified point: its problems (empty = PASS)."""

    name: str
    description: str
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.name, "status": "PASS" if self.passed else "FAIL",
                "description": self.description, "checked": self.checked,
                "problems": len(self.problems), "examples": self.problems[:MAX_LISTED]}


@dataclass
class VerifyReport:
    out: Path
    points: dict[str, Point]

    @property
    def ok(self) -> bool:
        return all(p.passed for p in self.points.values())

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "status": "PASS" if self.ok else "FAIL",
                "points": [p.to_dict() for p in self.points.values()]}


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {path.name}: {exc}", file=path,
                          hint="is this a folder written by `harmonize export slices`?") from exc


def verify_export(
    out: Path, manifests: Sequence[Path] | None = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> VerifyReport:
    """Check every point of :data:`POINTS` on the export in ``out``."""
    out = Path(out)
    summary = _load_json(out / "metadata" / "dataset_summary.json")
    cases: dict[str, dict[str, Any]] = {}
    for path in sorted((out / "metadata" / "cases").glob("*.json")):
        info = _load_json(path)
        cases[info["key"]] = info
    points = {name: Point(name, text) for name, text in POINTS.items()}
    split_of = _check_splits(out, cases, points["splits"])
    _check_counts(out, cases, split_of, summary, points["file_counts"])
    on_disk = _check_names(out, cases, points)
    entries = _entries(out, summary, manifests, points["round_trip"])
    advance = progress(len(cases)) if progress else (lambda: None)
    for key in sorted(cases):
        _check_case(out, cases[key], on_disk, entries.get(key) if entries else None, points,
                    entries is not None)
        advance()
    return VerifyReport(out=out, points=points)


def _check_splits(out: Path, cases: dict[str, dict[str, Any]], point: Point) -> dict[str, str]:
    splits = _load_json(out / "splits" / "splits.json")
    split_of: dict[str, str] = {}
    for split in SPLITS:
        keys = splits.get(split, [])
        point.checked += len(keys)
        for key in keys:
            if key in split_of:
                point.problems.append(f"case {key} is in {split_of[key]} and {split}")
            split_of.setdefault(key, split)
        listed = (out / "splits" / f"{split}.txt")
        lines = listed.read_text(encoding="utf-8").split() if listed.is_file() else None
        if lines is None:
            point.problems.append(f"splits/{split}.txt is missing")
        elif sorted(lines) != sorted(keys):
            point.problems.append(f"splits/{split}.txt differs from splits.json[{split!r}]")
        rows = _csv_rows(out, split)
        stray = sorted({row.get("key", "") for row in rows} - set(keys))
        misnamed = [row.get("filename") for row in rows
                    if row.get("filename") != Path(row.get("image") or "").name]
        if misnamed:
            point.problems.append(f"splits/{split}_slices.csv: {len(misnamed)} row(s) whose "
                                  f"filename is not their image's file name, e.g. {misnamed[0]!r}")
        if stray:
            point.problems.append(f"splits/{split}_slices.csv has rows of cases outside "
                                  f"{split}: {stray[:3]}")
    for key in cases:
        if key not in split_of:
            point.problems.append(f"case {key} is in no split")
    for key in split_of:
        if key not in cases:
            point.problems.append(f"case {key} is in a split but has no metadata/cases/{key}.json")
    return split_of


def _csv_rows(out: Path, split: str) -> list[dict[str, str]]:
    path = out / "splits" / f"{split}_slices.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _check_counts(out: Path, cases: dict[str, dict[str, Any]], split_of: dict[str, str],
                  summary: dict[str, Any], point: Point) -> None:
    names = {folder: {p.name for p in (out / folder).glob("*.png")} for folder in FOLDERS[:2]}
    failed = summary.get("errors") or []
    if failed:
        first = failed[0]
        point.problems.append(
            f"{len(failed)} case(s) failed to export and are missing, e.g. "
            f"{first.get('dataset')}/{first.get('case')}: {first.get('message')} "
            "(all in metadata/dataset_summary.json 'errors')")
    if not cases:
        point.problems.append("the export holds no case")
    for split in SPLITS:
        keys = {k for k, s in split_of.items() if s == split and k in cases}
        want_images = sum(cases[k]["slices"] for k in keys)
        want_masks = sum(cases[k]["slices"] for k in keys if cases[k]["labelled"])
        have = {folder: sum(1 for n in names[folder] if _key_of(n) in keys) for folder in names}
        rows = _csv_rows(out, split)
        point.checked += 1
        if have["images"] != want_images:
            point.problems.append(f"{split}: {have['images']} image PNGs, expected {want_images}")
        if have["masks"] != want_masks:
            point.problems.append(f"{split}: {have['masks']} mask PNGs, expected {want_masks}")
        if len(rows) != want_images:
            point.problems.append(f"{split}: {len(rows)} rows in {split}_slices.csv, expected "
                                  f"{want_images}")
        recorded = summary.get("splits", {}).get(split, {})
        if recorded.get("slices") != want_images or recorded.get("cases") != len(keys):
            point.problems.append(f"{split}: dataset_summary.json says {recorded}, files say "
                                  f"{len(keys)} cases / {want_images} slices")


def _key_of(name: str) -> str | None:
    match = SLICE_NAME.match(name)
    return match.group("key") if match else None


def _check_names(out: Path, cases: dict[str, dict[str, Any]],
                 points: dict[str, Point]) -> dict[str, set[str]]:
    """Stray files (pairing) and slice numbering (slice_range); returns the names per folder."""
    on_disk = {folder: {p.name for p in (out / folder).iterdir() if p.is_file()}
               for folder in FOLDERS if (out / folder).is_dir()}
    expected: dict[str, set[str]] = defaultdict(set)
    for info in cases.values():
        names = {slice_name(info["key"], z, info["width"]) for z in range(info["slices"])}
        for folder in (FOLDERS if info["labelled"] else FOLDERS[:1]):
            expected[folder] |= names
    for folder in FOLDERS:
        for name in sorted(on_disk.get(folder, set()) - expected[folder]):
            key = _key_of(name)
            if key in cases:
                points["slice_range"].problems.append(
                    f"{folder}/{name}: slice outside 0..{cases[key]['slices'] - 1} or not padded "
                    f"to {cases[key]['width']} digits")
            else:
                points["pairing"].problems.append(f"{folder}/{name} belongs to no exported case")
    for info in cases.values():
        points["slice_range"].checked += 1
        if info["width"] != index_width(info["slices"]):
            points["slice_range"].problems.append(
                f"{info['key']}: padding {info['width']} for {info['slices']} slices")
        if info["slices"] != info["shape"][2]:
            points["slice_range"].problems.append(
                f"{info['key']}: {info['slices']} slices for a volume of {info['shape'][2]}")
    return on_disk


def _entries(out: Path, summary: dict[str, Any], manifests: Sequence[Path] | None,
             point: Point) -> dict[str, Entry] | None:
    paths = [Path(p) for p in manifests] if manifests else [
        Path(p) for p in summary.get("manifests", [])]
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        point.problems.append(
            f"cannot compare with the volumes: manifest {missing[0] if missing else '(none)'} "
            "not found; pass --manifest")
        return None
    try:
        return {e.key: e for e in load_entries(paths)}
    except HarmonizeError as exc:
        point.problems.append(f"cannot read the manifest: {exc}")
        return None


def _check_case(out: Path, info: dict[str, Any], on_disk: dict[str, set[str]],
                entry: Entry | None, points: dict[str, Point], compare: bool) -> None:
    key, shape = info["key"], tuple(info["shape"][:2])
    volume = mask = None
    if compare:
        if entry is None:
            points["round_trip"].problems.append(f"{key}: not in the manifest")
        else:
            try:
                volume, mask = read_case(entry, ras=True)
            except HarmonizeError as exc:
                points["round_trip"].problems.append(f"{key}: cannot read the volume: {exc}")
    data = volume.data if volume is not None else None
    if data is not None and data.ndim == 4:
        data = data[..., info["channel"]]
    if data is not None and tuple(data.shape) != tuple(info["shape"]):
        points["round_trip"].problems.append(
            f"{key}: volume shape {list(data.shape)} differs from the exported {info['shape']}")
        data = None
    allowed = set(info["allowed_values"])
    rows = dict((z, present) for z, present in info["rows"])
    for z in range(info["slices"]):
        name = slice_name(key, z, info["width"])
        pngs: dict[str, tuple[np.ndarray, str]] = {}
        for folder in (FOLDERS if info["labelled"] else FOLDERS[:1]):
            points["pairing"].checked += 1
            if name not in on_disk.get(folder, set()):
                points["pairing"].problems.append(f"{folder}/{name} is missing")
                continue
            try:
                pngs[folder] = read_png(out / folder / name)
            except Exception as exc:  # noqa: BLE001 - unreadable PNG is a dtype problem
                points["dtypes"].problems.append(f"{folder}/{name}: unreadable ({exc})")
        _check_pixels(name, pngs, shape, allowed, rows.get(z), points)
        if data is not None and "images" in pngs:
            points["round_trip"].checked += 1
            expected = to_uint16(source_intensity(data[:, :, z], entry, window=info["window"],  # type: ignore[arg-type]
                                                  channel=info["channel"]), info["window"])
            got = pngs["images"][0]
            if got.shape != expected.shape or not np.array_equal(got, expected):
                diff = int(np.count_nonzero(got != expected)) if got.shape == expected.shape else -1
                points["round_trip"].problems.append(
                    f"images/{name}: differs from the windowed volume"
                    + (f" in {diff} pixel(s)" if diff >= 0 else f" (shape {got.shape})"))
        if data is not None and mask is not None and "masks" in pngs:
            got = pngs["masks"][0]
            if got.shape != mask.data.shape[:2] or not np.array_equal(got, mask.data[:, :, z]):
                points["round_trip"].problems.append(f"masks/{name}: differs from the volume's mask")
        elif data is not None and info["labelled"] and mask is None:
            points["round_trip"].problems.append(f"{key}: the manifest has no mask for this case")


def _check_pixels(name: str, pngs: dict[str, tuple[np.ndarray, str]], shape: tuple[int, ...],
                  allowed: set[int], present: list[int] | None, points: dict[str, Point]) -> None:
    want = {"images": ("I;16", np.uint16), "masks": ("L", np.uint8),
            "masks_visible": ("RGB", np.uint8), "overlays": ("RGB", np.uint8)}
    for folder, (pixels, mode) in pngs.items():
        points["shapes"].checked += 1
        points["dtypes"].checked += 1
        if pixels.shape[:2] != shape or (mode == "RGB") != (pixels.ndim == 3):
            points["shapes"].problems.append(f"{folder}/{name}: shape {pixels.shape}, volume "
                                             f"slices are {shape}")
        if (mode, pixels.dtype) != (want[folder][0], np.dtype(want[folder][1])):
            points["dtypes"].problems.append(f"{folder}/{name}: {mode} {pixels.dtype}, expected "
                                             f"{want[folder][0]} {np.dtype(want[folder][1])}")
    if "masks" not in pngs:
        return
    mask = pngs["masks"][0]
    points["label_values"].checked += 1
    values = {int(v) for v in np.unique(mask)}
    if values - allowed:
        points["label_values"].problems.append(
            f"masks/{name}: values {sorted(values - allowed)} outside {sorted(allowed)}")
    if present is not None and sorted(values) != sorted(present):
        points["label_values"].problems.append(
            f"masks/{name}: values {sorted(values)} but the case's rows say {sorted(present)}")
    ok_mask = mask.ndim == 2 and mask.dtype == np.uint8
    if ok_mask and "masks_visible" in pngs:
        points["overlay_colours"].checked += 1
        colours = pngs["masks_visible"][0]
        if colours.shape != mask.shape + (3,) or not np.array_equal(colours, visible(mask)):
            points["overlay_colours"].problems.append(f"masks_visible/{name}: not the palette "
                                                      "colours and contours of the mask")
    if ok_mask and "overlays" in pngs and "images" in pngs:
        points["overlay_colours"].checked += 1
        image = pngs["images"][0]
        got = pngs["overlays"][0]
        if image.shape != mask.shape or got.shape != mask.shape + (3,) or not np.array_equal(
                got, overlay(image.astype(np.uint16), mask)):
            points["overlay_colours"].problems.append(f"overlays/{name}: not 60 % CT + 40 % "
                                                      "colour of its image and mask")


__all__ = ["CSV_HEADER", "POINTS", "Point", "VerifyReport", "verify_export"]
