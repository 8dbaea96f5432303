"""2D slice export: a published 2D slice dataset's conversion (the seed), generalised to any manifest.

Layout under ``out`` (``<key>`` is the case id, or ``<dataset>_<case id>`` for several datasets)::

    images/<key>_slice_ZZZ.png         16-bit grayscale: window [lo, hi] mapped linearly to
                                       0..65535 and truncated, as published
    masks/<key>_slice_ZZZ.png          8-bit grayscale: the dataset's own label values
    masks_visible/<key>_slice_ZZZ.png  RGB: value 1 green, 2 red, 3 yellow (as published),
                                       further values from a fixed palette, 0 black; each
                                       value's outer contours drawn 3 pixels thick
    overlays/<key>_slice_ZZZ.png       RGB: 60 % CT (8-bit) + 40 % colour where the mask is > 0,
                                       outer contours 2 pixels thick
    splits/splits.json, splits/{train,val,test}.txt, splits/{train,val,test}_slices.csv
                                       (first column ``filename``)
    metadata/dataset_summary.json, metadata/cases/<key>.json (per case: shape, window, slices)
    README.md                          what the folder holds: classes, counts, splits, mappings

The pixel rules are in :mod:`harmonize.export.png`: for a source manifest of the seed's dataset every
PNG equals the published conversion's pixel for pixel. Geometry: the volume is brought to RAS+ by closest
canonical (no resampling) and cut along its third (superior) axis; PNG row ``i``, column ``j`` of
slice ``z`` is voxel ``(i, j, z)``: the array slice itself, no rotation. ``ZZZ`` is zero padded
to 3 digits, more when a case has 1000 slices or more.

Intensity: CT uses the window in HU (default [-200, 300]); other modalities use each case's
0.5/99.5 percentiles. A normalized manifest (``harmonize run``) is first brought back to source
units with the record's ``intensity`` parameters (float round-off can move a pixel whose exact
value is an integer by one); when the engine clipped to a narrower range than the export window
the export refuses (the pixels outside are gone).

Splits: ``split_mode="default"`` takes the published split of a dataset whose registry entry names
one (the seed's: ``random.seed(42)`` 70/10/20 of the sorted case ids), else the manifest's splits
(:mod:`harmonize.export.slice_splits`).

Mask values above 255 cannot go into an 8-bit PNG and are refused. Multi-channel images export
one channel (``channel``, default the first). Cases without a mask get images only.

The output folder holds one export: slice PNGs and case files that the current export did not
write (fewer slices than before, a failed case, an earlier export's cases) are removed. With
``skip_existing`` a case whose sidecar (written last) matches its inputs and options and whose
PNGs all exist is kept as is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize import jsonio
from harmonize.errors import ErrorRecord
from harmonize.export import (
    Entry,
    ExportError,
    load_entries,
    read_case,
    run_cases,
    source_intensity,
)
from harmonize.export.png import PALETTE, opencv, overlay, to_uint16, visible, write_png
from harmonize.export.slice_lists import (
    FOLDERS,
    FORMAT_VERSION,
    index_width,
    remove_stale,
    slice_name,
    write_lists,
    write_summary,
)
from harmonize.export.slice_splits import DEFAULT_MODE, case_splits, resolve_split_mode
from harmonize.export.slices_readme import write_readme
from harmonize.files import write_text_atomic
from harmonize.labels.channels import load_channels, record_channels
from harmonize.manifest.records import SPLITS

DEFAULT_WINDOW = (-200.0, 300.0)
DEFAULT_PERCENTILES = (0.5, 99.5)


# ----------------------------------------------------------------------------------- one case


@dataclass(frozen=True)
class SliceOptions:
    """What decides the pixels: CT window (HU), percentiles for other modalities, channel."""

    window: tuple[float, float] = DEFAULT_WINDOW
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    channel: int | str = 0

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.window)
        if not lo < hi:
            raise ExportError(f"window must be LOW HIGH with LOW < HIGH, got {list(self.window)}",
                              hint="e.g. --window -200 300")
        object.__setattr__(self, "window", (lo, hi))
        plo, phi = (float(v) for v in self.percentiles)
        if not 0 <= plo < phi <= 100:
            raise ExportError(f"percentiles must satisfy 0 <= low < high <= 100, got "
                              f"{list(self.percentiles)}")
        object.__setattr__(self, "percentiles", (plo, phi))


@dataclass(frozen=True)
class SliceTask:
    entry: Entry
    out: Path
    options: SliceOptions
    skip_existing: bool


def resume_key(entry: Entry, options: SliceOptions) -> str:
    """sha256 of everything a case's PNGs depend on (the record without its split, the options)."""
    record = {k: v for k, v in entry.record.to_json().items()
              if k not in ("split", "official_split")}
    payload = {"format": FORMAT_VERSION, "record": record, "options": asdict(options),
               "key": entry.key, "palette": hashlib.sha256(PALETTE.tobytes()).hexdigest()}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def channel_index(entry: Entry, channel: int | str, channels: int) -> int:
    """The file position of the channel to export, given by index or by name. An index counts in
    canonical channel order (``registry/channels.yaml``), so ``0`` is the same sequence in every
    dataset; a name is a canonical channel name or synonym (else the record's own names,
    case-insensitive)."""
    names = list(entry.record.channels or [])
    if isinstance(channel, str) and not channel.isdigit():
        canonical = record_channels(entry.record) or []
        wanted = load_channels().get(channel)
        if wanted is not None and wanted in canonical:
            return canonical.index(wanted)
        folded = [n.casefold() for n in names]
        if channel.casefold() not in folded:
            raise entry.error(f"no channel named {channel!r} (channels: {names})",
                              kind=ExportError, hint="pass --channel with a name or an index")
        return folded.index(channel.casefold())
    index = int(channel)
    if not 0 <= index < channels:
        raise entry.error(f"channel {index} out of range: the image has {channels}",
                          kind=ExportError, hint="pass --channel 0 .. channels-1")
    known = record_channels(entry.record)
    if known and len(known) == channels:  # the c-th channel in canonical order, not file order
        return known.index(load_channels().order(known)[index])
    return index


def case_window(entry: Entry, data: np.ndarray, options: SliceOptions,
                channel: int | None) -> tuple[float, float]:
    """The window of this case: the CT window, else the case's percentiles in source units."""
    if entry.record.modality == "CT":
        return options.window
    source = source_intensity(data, entry, channel=channel)
    lo, hi = (float(v) for v in np.percentile(source, options.percentiles))
    return (lo, hi if hi > lo else lo + 1.0)


def sidecar_path(out: Path, key: str) -> Path:
    return out / "metadata" / "cases" / f"{key}.json"


def _files_present(out: Path, info: dict[str, Any]) -> bool:
    folders = FOLDERS if info["labelled"] else FOLDERS[:1]
    return all((out / folder / slice_name(info["key"], z, info["width"])).is_file()
               for folder in folders for z in range(info["slices"]))


def export_case(task: SliceTask) -> dict[str, Any]:
    """Write one case's PNGs, then its sidecar (written last: the resume marker). Returns the
    sidecar: shape, window, channel, allowed label values and the values present per slice."""
    entry, out, options = task.entry, task.out, task.options
    key = resume_key(entry, options)
    marker = sidecar_path(out, entry.key)
    if task.skip_existing and marker.is_file():
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            info = {}
        if info.get("resume_key") == key and _files_present(out, info):
            info["skipped"] = True
            return info
    marker.unlink(missing_ok=True)
    image, mask = read_case(entry, ras=True)
    data = image.data
    channel = None
    if data.ndim == 4:
        channel = channel_index(entry, options.channel, data.shape[3])
        data = data[..., channel]
    allowed = sorted({0, *(int(v) for vs in entry.record.labels.values() for v in vs)})
    mask_data = None
    if mask is not None:
        mask_data = mask.data
        top = int(mask_data.max()) if mask_data.size else 0
        if top > 255:
            raise entry.error(f"mask value {top} does not fit an 8-bit PNG",
                              file=entry.mask_path(), kind=ExportError,
                              hint="export this dataset with `harmonize export nnunet` instead")
    window = case_window(entry, data, options, channel)
    slices = int(data.shape[2])
    width = index_width(slices)
    rows: list[list[Any]] = []  # [z, present label values or None]
    for z in range(slices):
        name = slice_name(entry.key, z, width)
        source = source_intensity(data[:, :, z], entry, window=window, channel=channel)
        pixels = to_uint16(source, window)
        write_png(out / "images" / name, pixels)
        if mask_data is None:
            rows.append([z, None])
            continue
        labels = np.ascontiguousarray(mask_data[:, :, z]).astype(np.uint8)
        write_png(out / "masks" / name, labels)
        write_png(out / "masks_visible" / name, visible(labels))
        write_png(out / "overlays" / name, overlay(pixels, labels))
        rows.append([z, [int(v) for v in np.flatnonzero(np.bincount(labels.ravel()))]])
    info = {
        "key": entry.key, "dataset": entry.dataset, "case_id": entry.case_id,
        "patient_id": entry.record.patient_id, "modality": entry.record.modality,
        "shape": [int(s) for s in data.shape[:3]], "slices": slices, "width": width,
        "window": [float(window[0]), float(window[1])], "channel": channel,
        "intensity": entry.intensity.get("method", "none"),
        "labelled": mask_data is not None, "allowed_values": allowed,
        "labels": {name: [int(v) for v in vs] for name, vs in entry.record.labels.items()},
        "annotated": list(entry.record.annotated), "rows": rows, "resume_key": key,
        "image": [p.as_posix() for p in entry.image_paths()],
        "mask": None if entry.mask_path() is None else entry.mask_path().as_posix(),  # type: ignore[union-attr]
    }
    write_text_atomic(marker, jsonio.dumps(info) + "\n")
    info["skipped"] = False
    return info


# ----------------------------------------------------------------------------------- the export


@dataclass
class SliceExport:
    """What an export wrote: per-case sidecars, splits, counts, errors and warnings."""

    out: Path
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    splits: dict[str, list[str]] = field(default_factory=dict)
    errors: list[ErrorRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    split_mode: str = DEFAULT_MODE

    @property
    def ok(self) -> bool:
        return not self.errors


def export_slices(
    manifests: Sequence[Path] | Path,
    out: Path,
    options: SliceOptions | None = None,
    *,
    split_mode: str = DEFAULT_MODE,
    skip_existing: bool = False,
    workers: int | None = 1,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> SliceExport:
    """Export every record of ``manifests`` as axial PNG slices under ``out`` (see module doc).

    A failing case becomes an :class:`ErrorRecord` and is left out of the split lists; the others
    are written. ``split_mode`` is ``default`` (the datasets' published split where the registry
    names one, else the manifest's), ``manifest`` or a seeded mode named in the registry (see
    :mod:`harmonize.export.slice_splits`); the mode used is ``result.split_mode``.
    ``progress(total)`` returns a callback called once per finished case. Raises
    :class:`ExportError` before writing anything when OpenCV (contours) is missing.
    """

    options = options or SliceOptions()
    out = Path(out)
    entries = load_entries(manifests)
    opencv()  # fail once, up front, rather than once per case
    mode = resolve_split_mode(split_mode, sorted({e.dataset for e in entries}))
    split_of, warnings = case_splits(entries, mode)
    result = SliceExport(out=out, warnings=warnings, split_mode=mode)
    for folder in (*FOLDERS, "splits", "metadata/cases"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    tasks = [SliceTask(e, out, options, skip_existing) for e in entries]
    for task, outcome in run_cases(export_case, tasks, workers=workers, progress=progress,
                                   errors=result.errors):
        result.cases[task.entry.key] = outcome
        if outcome.pop("skipped", False):
            result.skipped.append(task.entry.key)
    result.removed = remove_stale(out, result.cases)
    result.splits = {s: sorted(k for k in result.cases if split_of[k] == s) for s in SPLITS}
    write_lists(out, result)
    write_summary(out, entries, result, options, mode)
    write_readme(out, entries, result, options, mode, split_mode)
    return result


