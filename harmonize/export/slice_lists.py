"""The 2D slices export's names and lists: file naming, the per-split slice CSVs and case lists,
``splits.json`` and ``metadata/dataset_summary.json``.

Each ``splits/<split>_slices.csv`` starts with ``filename`` (the slice's file name, the same in
``images/``, ``masks/``, ``masks_visible/`` and ``overlays/``: the column the seed's published
PyTorch example reads), then :data:`CSV_HEADER`'s other columns, then one 1/0 column per class.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harmonize import __version__, jsonio
from harmonize.export import Entry
from harmonize.export.png import (
    OVERLAY_COLOUR,
    OVERLAY_CONTOUR,
    OVERLAY_GREY,
    PALETTE,
    VISIBLE_CONTOUR,
)
from harmonize.files import write_text_atomic

if TYPE_CHECKING:
    from harmonize.export.slices import SliceExport, SliceOptions

FORMAT = "harmonize-slices"


FORMAT_VERSION = 2  # 2: truncated images, contours, filename column, README.md


FOLDERS = ("images", "masks", "masks_visible", "overlays")


SLICE_NAME = re.compile(r"^(?P<key>.+)_slice_(?P<z>\d{3,})\.png$")


def slice_name(key: str, z: int, width: int) -> str:
    return f"{key}_slice_{z:0{width}d}.png"


def index_width(slices: int) -> int:
    """Zero padding of slice numbers: 3 digits, more when needed."""
    return max(3, len(str(max(slices - 1, 0))))


def remove_stale(out: Path, cases: dict[str, dict[str, Any]]) -> list[str]:
    """Delete slice PNGs and case sidecars the current export did not write: a case that now has
    fewer slices or failed, or an earlier export's cases (the folder holds one export)."""
    expected: set[str] = set()
    for info in cases.values():
        expected.update(slice_name(info["key"], z, info["width"]) for z in range(info["slices"]))
    removed = []
    for folder in FOLDERS:
        for path in (out / folder).iterdir():
            if SLICE_NAME.match(path.name) and path.name not in expected:
                path.unlink()
                removed.append(f"{folder}/{path.name}")
    for path in (out / "metadata" / "cases").glob("*.json"):
        if path.stem not in cases:
            path.unlink()
            removed.append(f"metadata/cases/{path.name}")
    return sorted(removed)


def class_columns(cases: dict[str, dict[str, Any]]) -> list[str]:
    """Every class name of the exported cases, in first-appearance order."""
    names: dict[str, None] = {}
    for key in sorted(cases):
        names.update(dict.fromkeys(cases[key]["labels"]))
    return list(names)


def slice_rows(info: dict[str, Any], split: str, classes: list[str]) -> list[list[Any]]:
    """CSV rows of one case (columns of :data:`CSV_HEADER`, then ``classes``): presence is 1/0
    per class, empty when the class is not annotated in this case (or the case has no mask)."""
    rows = []
    for z, present in info["rows"]:
        name = slice_name(info["key"], z, info["width"])
        row: list[Any] = [name, info["key"], info["dataset"], info["case_id"], z, split,
                          f"images/{name}"]
        if present is None:
            row += ["", "", ""] + [""] * len(classes)
        else:
            found = set(present) - {0}
            row += [f"masks/{name}", int(bool(found)), ";".join(str(v) for v in sorted(found))]
            for cls in classes:
                values = info["labels"].get(cls)
                row.append("" if values is None or cls not in info["annotated"]
                           else int(bool(found & set(values))))
        rows.append(row)
    return rows


#: The fixed CSV columns, in order (class columns follow): the file name, the case (export key,
#: dataset, case id), the slice index, the split, the image and mask paths relative to the export,
#: whether the mask has any non-zero value, and those values (``;``-separated).
CSV_HEADER = ["filename", "key", "dataset", "case_id", "slice", "split", "image", "mask",
              "foreground", "values"]


def write_lists(out: Path, result: SliceExport) -> None:
    """splits.json, <split>.txt (case keys) and <split>_slices.csv."""
    write_text_atomic(out / "splits" / "splits.json", jsonio.dumps(result.splits, indent=1) + "\n")
    classes = class_columns(result.cases)
    for split, keys in result.splits.items():
        write_text_atomic(out / "splits" / f"{split}.txt", "".join(f"{k}\n" for k in keys))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_HEADER + classes)
        for key in keys:
            writer.writerows(slice_rows(result.cases[key], split, classes))
        write_text_atomic(out / "splits" / f"{split}_slices.csv", buffer.getvalue())


def write_summary(out: Path, entries: Sequence[Entry], result: SliceExport,
                  options: SliceOptions, split_mode: str) -> dict[str, Any]:
    """metadata/dataset_summary.json: options, counts per split and class, palette, errors."""
    cases = result.cases
    values = sorted({v for info in cases.values() for v in info["allowed_values"]} - {0})
    per_class: dict[str, int] = {}
    for info in cases.values():
        for _, present in info["rows"]:
            if present is None:
                continue
            for name, vs in info["labels"].items():
                if set(vs) & set(present):
                    per_class[name] = per_class.get(name, 0) + 1
    counts = {split: {"cases": len(keys), "slices": sum(cases[k]["slices"] for k in keys),
                      "labelled_cases": sum(cases[k]["labelled"] for k in keys)}
              for split, keys in result.splits.items()}
    summary = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "harmonize": __version__,
        "manifests": sorted({e.manifest.as_posix() for e in entries}),
        "datasets": sorted({e.dataset for e in entries}),
        "orientation": "RAS", "axis": "axial: third axis of the RAS+ volume (inferior -> superior)",
        "pixel_layout": "PNG row i, column j of slice z = voxel (i, j, z) of the RAS+ volume",
        "image": {"dtype": "uint16", "mode": "I;16", "ct_window": list(options.window),
                  "mapping": "uint16 truncation of (clip(x, lo, hi) - lo) / (hi - lo) * 65535",
                  "other_modalities": {"percentiles": list(options.percentiles)},
                  "channel": options.channel},
        "mask": {"dtype": "uint8", "values": values},
        "masks_visible": {"fill": "palette", "contours": "external", "thickness": VISIBLE_CONTOUR},
        "overlay": {"ct": OVERLAY_GREY, "colour": OVERLAY_COLOUR,
                    "ct_8bit": "uint8(float32(image) / 65535 * 255)", "contours": "external",
                    "thickness": OVERLAY_CONTOUR},
        "palette": {str(v): PALETTE[v].tolist() for v in values},
        "split_mode": split_mode, "splits": counts,
        "cases": len(cases), "slices": sum(info["slices"] for info in cases.values()),
        "slices_per_class": per_class,
        "naming": "<folder>/<key>_slice_<z zero-padded to 3 digits or more>.png",
        "errors": [e.to_dict() for e in result.errors], "warnings": result.warnings,
    }
    write_text_atomic(out / "metadata" / "dataset_summary.json",
                      jsonio.dumps(summary, indent=1) + "\n")
    return summary
