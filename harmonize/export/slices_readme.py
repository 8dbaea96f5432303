"""``README.md`` of a 2D slices export: what the folder holds, written from what was exported.

It follows the sections of the seed's published description (overview, directory structure,
file names, label map, splits, mask files, conversion, PyTorch usage, citation and licence), filled
in for the exported datasets: their classes (value -> most specific class name and colour, plus
merged classes), counts per folder and split, the split rule, the CSV columns and the exact pixel
mappings. Citation, licence and homepage come from each dataset's descriptor when its plugin is
installed; otherwise the README says it has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harmonize.export import Entry, specific_names
from harmonize.export.png import (
    OVERLAY_COLOUR,
    OVERLAY_CONTOUR,
    OVERLAY_GREY,
    PALETTE,
    VISIBLE_CONTOUR,
)
from harmonize.export.slice_lists import CSV_HEADER, class_columns
from harmonize.export.slice_splits import MANIFEST_MODE, seeded_split_modes
from harmonize.files import write_text_atomic
from harmonize.manifest.records import SPLITS
from harmonize.yamlio import load_registry

if TYPE_CHECKING:
    from harmonize.export.slices import SliceExport, SliceOptions

COLOUR_NAMES: dict[tuple[int, ...], str] = {(0, 0, 0): "black", (0, 255, 0): "green", (255, 0, 0): "red",
                (255, 255, 0): "yellow", (0, 0, 255): "blue", (255, 0, 255): "magenta",
                (0, 255, 255): "cyan"}


def _colour(value: int) -> str:
    rgb = tuple(int(c) for c in PALETTE[value])
    name = COLOUR_NAMES.get(rgb)
    return f"{name} {rgb}" if name else str(rgb)


def layout_name() -> str:
    """The name of the published layout, from ``registry/presets.yaml`` (``slice_layout``)."""
    layout = load_registry("presets.yaml").get("slice_layout")
    name = layout.get("name") if isinstance(layout, dict) else None
    return str(name) if name else "a published 2D slice dataset"


def _descriptor(dataset: str) -> Any:
    """The dataset's descriptor, or None when no installed plugin provides it."""
    try:
        from harmonize.plugin.catalog import load_catalog

        return load_catalog().get(dataset).descriptor
    except Exception:  # noqa: BLE001 - a README without a citation beats a failed export
        return None


def _label_map(dataset: str, cases: list[dict[str, Any]]) -> list[str]:
    labels: dict[str, list[int]] = {}
    for info in cases:
        for name, values in info["labels"].items():
            labels.setdefault(name, sorted(set(values)))
    names = specific_names(labels)
    lines = [f"### {dataset}", "", "| Pixel value | Class | Colour (masks_visible/, overlays/) |",
             "|---|---|---|", f"| 0 | background | {_colour(0)} |"]
    lines += [f"| {v} | {name} | {_colour(v)} |" for v, name in names.items()]
    merged = {n: vs for n, vs in labels.items() if n not in names.values()}
    if merged:
        lines += ["", "Merged classes (no pixel value of their own): " + "; ".join(
            f"{n} = values {', '.join(map(str, vs))}" for n, vs in merged.items()) + "."]
    return lines + [""]


def _split_text(mode: str, requested: str) -> str:
    if mode == MANIFEST_MODE:
        text = ("Splits are the ones recorded in the manifest (patient-level: all cases of a "
                "patient stay in one split; official test sets stay test).")
    else:
        seeded = seeded_split_modes()[mode]
        text = (f"Splits are case-level, `--split-mode {mode}`: `random.seed({seeded.seed})` "
                "shuffles the sorted case ids; the first 70 % (rounded down) are train, the next "
                f"10 % (rounded down) val, the rest test. Source: {seeded.source.strip()}.")
    if requested != mode:
        text += f" (`--split-mode {requested}` chose `{mode}` for these datasets.)"
    return text


def readme_text(entries: Sequence[Entry], result: SliceExport, options: SliceOptions,
                split_mode: str, requested: str) -> str:
    """The README of an export (``split_mode`` as resolved, ``requested`` as given)."""
    cases = result.cases
    datasets = sorted({e.dataset for e in entries if e.key in cases}) or \
        sorted({e.dataset for e in entries})
    slices = {s: sum(cases[k]["slices"] for k in result.splits.get(s, [])) for s in SPLITS}
    total = sum(slices.values())
    labelled = sum(info["slices"] for info in cases.values() if info["labelled"])
    shapes = sorted({f"{info['shape'][0]} × {info['shape'][1]}" for info in cases.values()})
    modality = sorted({info["modality"] for info in cases.values()})
    lo, hi = options.window
    title, layout = ", ".join(datasets), layout_name()
    lines = [
        f"# {title}: 2D axial slices", "",
        f"Written by `harmonize export slices` from {len(cases)} case(s) of {title}, in the layout "
        f"of the published {layout} dataset (same folders, file names, CSVs, pixel mappings and "
        "colours).", "",
        "## Overview", "", "| Property | Value |", "|---|---|",
        f"| Datasets | {title} |", f"| Modality | {', '.join(modality)} |",
        f"| Cases | {len(cases)} |", f"| 2D slices | {total} |",
        f"| Resolution | {', '.join(shapes)} pixels (the volume's own grid, no resampling) |",
        "| Orientation | axial slices of the RAS+ volume (closest canonical), no rotation |",
        "| Image format | 16-bit grayscale PNG |", "| Mask format | 8-bit single-channel PNG |",
        "| Visible mask / overlay format | 8-bit RGB PNG |",
        f"| CT window | [{lo:g}, {hi:g}] HU → 0..65535 |",
        f"| Other modalities | each case's {options.percentiles[0]:g} / "
        f"{options.percentiles[1]:g} percentiles → 0..65535 |", "",
        "## Directory structure", "", "```",
        f"images/          {total} slice PNGs (16-bit grayscale)",
        f"masks/           {labelled} masks (uint8, the dataset's own label values)",
        f"masks_visible/   {labelled} colour-coded masks with contours (RGB)",
        f"overlays/        {labelled} image + mask overlays (RGB)",
        "splits/          splits.json, train.txt, val.txt, test.txt (case ids),",
        "                 train_slices.csv, val_slices.csv, test_slices.csv (one row per slice)",
        "metadata/        dataset_summary.json, cases/<case>.json",
        "README.md        this file", "```", "",
        "File names: `<case>_slice_ZZZ.png`, the same in every folder; `ZZZ` is the axial index "
        "(0 = most inferior), zero padded to 3 digits or more.", "",
        "## Label map", "", *[line for d in datasets for line in _label_map(
            d, [info for info in cases.values() if info["dataset"] == d])],
        "## Data splits", "", _split_text(split_mode, requested), "",
        "| Split | Cases | Slices | Percentage |", "|---|---|---|---|",
        *[f"| {s} | {len(result.splits.get(s, []))} | {slices[s]} | "
          f"{100 * slices[s] / total if total else 0:.1f} % |" for s in SPLITS],
        f"| total | {len(cases)} | {total} | 100 % |", "",
        "Columns of `<split>_slices.csv`: " + ", ".join(
            f"`{c}`" for c in CSV_HEADER + class_columns(cases)) + ". `filename` is the slice's "
        "file name in every folder; each class column is 1 when the slice shows the class, 0 "
        "when not, empty when the case does not annotate it.", "",
        "## Mask files", "",
        "`masks/` holds the raw label values (0 is background) and looks black: load it for "
        f"training. `masks_visible/` fills each value with its colour and draws its outer "
        f"contours {VISIBLE_CONTOUR} pixels thick in the same colour (values in ascending order, "
        "so a structure shows one pixel beyond its mask). `overlays/` blends the 8-bit image "
        f"{OVERLAY_GREY:.0%} with {OVERLAY_COLOUR:.0%} colour where the mask is non-zero and draws "
        f"the outer contours {OVERLAY_CONTOUR} pixels thick.", "",
        "## Conversion", "", "```python",
        "volume = nib.as_closest_canonical(nib.load(image)).get_fdata()   # RAS+, float64",
        f"vmin, vmax = {lo:g}, {hi:g}", "clipped = np.clip(volume, vmin, vmax)",
        "normalized = (clipped - vmin) / (vmax - vmin)",
        "img_16bit = (normalized * 65535).astype(np.uint16)   # truncated, as published",
        "slice_img = img_16bit[:, :, z]                      # PNG row i, column j = voxel (i, j, z)",
        "```", "",
        "Masks are the RAS+ label volume's slices, unchanged. Non-CT images use each case's "
        "percentiles as `vmin, vmax`; a normalized manifest (`harmonize run`) has its recorded "
        "intensity mapping undone first. Check the folder with "
        "`harmonize export verify --out <this folder>`.", "",
        "## Usage (PyTorch)", "",
        f"The {layout} description's PyTorch example runs unchanged on this folder: it reads "
        "`splits/train_slices.csv`'s `filename` column and loads `images/<filename>` (uint16, "
        "divided by 65535) and `masks/<filename>` (label values).", "",
        "## Citation and licence", "",
    ]
    for dataset in datasets:
        descriptor = _descriptor(dataset)
        if descriptor is None:
            lines.append(f"- {dataset}: no descriptor installed; see the dataset's own terms.")
            continue
        lines.append(f"- {dataset} ({descriptor.name}): licence {descriptor.licence or 'not given'}"
                     f"; cite {descriptor.citation or 'the dataset (no citation given)'}"
                     + (f"; {descriptor.homepage}" if descriptor.homepage else "") + ".")
    return "\n".join(lines) + "\n"


def write_readme(out: Path, entries: Sequence[Entry], result: SliceExport,
                 options: SliceOptions, split_mode: str, requested: str) -> str:
    """Write ``out/README.md`` (atomically) and return its text."""
    text = readme_text(entries, result, options, split_mode, requested)
    write_text_atomic(out / "README.md", text)
    return text
