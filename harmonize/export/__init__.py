"""Exports of manifests to the formats people already train with, and what they share.

One module per format: :mod:`~harmonize.export.slices` (2D PNG slices in the
layout of a published 2D slice dataset, see its module doc) with
:mod:`~harmonize.export.verify`, :mod:`~harmonize.export.nnunet` (nnU-Net v2 raw dataset),
:mod:`~harmonize.export.monai` (Decathlon-style datalist) and :mod:`~harmonize.export.sat`
(SAT-DS JSONL and split JSON; :mod:`~harmonize.export.sat_import` reads them back).

Every exporter starts from one or more manifests (``harmonize manifest``: records point at the
source files in any orientation; ``harmonize run``: normalized RAS outputs). This module holds
what they share:

* :func:`load_entries` reads manifests into :class:`Entry` objects (a record, the folder its
  paths are relative to, and the file stem exports use: the case id, or ``<dataset>_<case id>``
  when the manifests hold several datasets);
* :func:`read_case` reads a record's image and mask through the one reading layer
  (:func:`harmonize.read.case.read_case`: one grid rule, known label values) and optionally
  reorients both to RAS+ (closest canonical, no interpolation);
* :func:`source_intensity` undoes a recorded intensity mapping
  (:func:`harmonize.engine.intensity.undo_intensity`) and refuses when a requested window reaches outside
  the range the engine clipped to;
* :class:`LabelScheme` turns records' ``labels`` (canonical name -> mask values) into consecutive
  label values named by the most specific class of each value (a dataset whose label values are
  1 kidney, 2 kidney tumor, 3 kidney cyst keeps them; values 1/2/4 become 1/2/3), as nnU-Net and
  SAT-DS need.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.engine.intensity import undo_intensity
from harmonize.errors import ErrorRecord, HarmonizeError, LabelError, ReadError
from harmonize.manifest.build import read_manifest
from harmonize.manifest.records import STAGES, ManifestRecord, check_identifier, require_stage
from harmonize.read.case import read_case as read_record_case
from harmonize.read.case import record_files, record_rescale
from harmonize.read.volume import Volume

__all__ = [
    "Entry",
    "ExportError",
    "LabelScheme",
    "load_entries",
    "output_path",
    "read_case",
    "read_image",
    "read_mask",
    "remap_values",
    "source_intensity",
    "specific_names",
]


class ExportError(HarmonizeError):
    """An export cannot be made as asked (bad options, unsupported input, inconsistent records)."""

    kind = "export"


@dataclass(frozen=True)
class Entry:
    """One manifest record, the folder its paths are relative to, and its export file stem."""

    record: ManifestRecord
    base: Path
    key: str
    manifest: Path

    @property
    def dataset(self) -> str:
        return self.record.dataset

    @property
    def case_id(self) -> str:
        return self.record.case_id

    def image_paths(self) -> list[Path]:
        """Absolute image paths, through the path gate (:func:`record_files`)."""
        return [p.resolve() for p in record_files(self.record, self.base)[0]]

    @property
    def files_as_read(self) -> bool:
        """Whether the record's image files hold the values reading gives (no descriptor
        ``rescale`` still to apply): only then may an export reuse or point at them."""
        return record_rescale(self.record) is None

    def mask_path(self) -> Path | None:
        """Absolute mask path (``None`` when unlabelled), through the path gate."""
        mask = record_files(self.record, self.base)[1]
        return None if mask is None else mask.resolve()

    @property
    def split(self) -> str | None:
        return self.record.split

    @property
    def intensity(self) -> dict[str, Any]:
        """The recorded intensity mapping (``{"method": "none"}`` for source manifests)."""
        params = self.record.extra.get("intensity")
        return dict(params) if isinstance(params, dict) else {"method": "none"}

    def error(self, message: str, *, file: Path | None = None, hint: str | None = None,
              kind: type[HarmonizeError] = ReadError) -> HarmonizeError:
        return kind(message, dataset=self.dataset, case=self.case_id, file=file, hint=hint)


def load_entries(manifests: Sequence[Path] | Path) -> list[Entry]:
    """Records of every manifest, in manifest then case order, with their export stems.

    Exports take source or normalized manifests, never a mix (:class:`ManifestError`).
    Raises :class:`ExportError` for no manifest, no record, or the same (dataset, case) twice.
    """
    paths = [Path(manifests)] if isinstance(manifests, (str, Path)) else [Path(p) for p in manifests]
    if not paths:
        raise ExportError("no manifest given", hint="pass --manifest PATH (a <dataset>.jsonl)")
    loaded: list[tuple[ManifestRecord, Path, Path]] = []
    for path in paths:
        records = read_manifest(path)
        base = path.resolve().parent
        loaded.extend((r, base, path) for r in sorted(records, key=lambda r: r.case_id))
    if not loaded:
        raise ExportError("the manifest(s) hold no record", file=paths[0],
                          hint="check the manifest; `harmonize manifest` writes one record per case")
    require_stage([r for r, _, _ in loaded], STAGES, consumer="an export", mix="error")
    datasets = {r.dataset for r, _, _ in loaded}
    seen: dict[tuple[str, str], Path] = {}
    entries = []
    for record, base, path in loaded:
        ident = (record.dataset, record.case_id)
        if ident in seen:
            raise ExportError(
                f"case {record.case_id!r} of dataset {record.dataset!r} is in two manifests "
                f"({seen[ident]} and {path})", dataset=record.dataset, case=record.case_id,
                file=path, hint="pass each manifest once",
            )
        seen[ident] = path
        key = record.case_id if len(datasets) == 1 else f"{record.dataset}_{record.case_id}"
        check_identifier(key, what="export file stem", dataset=record.dataset, file=path)
        entries.append(Entry(record=record, base=base, key=key, manifest=path.resolve()))
    return entries


def output_path(path: Path, base_dir: Path | None) -> str:
    """``path`` as written into a list file: absolute, or relative to ``base_dir`` (POSIX)."""
    path = Path(path).resolve()
    if base_dir is None:
        return path.as_posix()
    return Path(os.path.relpath(path, Path(base_dir).resolve())).as_posix()


# ------------------------------------------------------------------------------------ volumes


def read_case(entry: Entry, *, ras: bool = True, mask: bool = True,
              image_voxels: bool = True) -> tuple[Volume, Volume | None]:
    """Image and mask of a record (mask ``None`` when unlabelled or ``mask=False``) through the
    one reading layer (:func:`harmonize.read.case.read_case`: same grid rule, known label values,
    errors naming dataset, case and file), in RAS+ when ``ras`` (closest canonical, never
    interpolated). ``image_voxels=False`` reads only the image's grid (a zero-cost stand-in)."""
    data = read_record_case(entry.record, base=entry.base, label=mask, ras=ras,
                            image_voxels=image_voxels)
    return data.image, data.label


def read_image(entry: Entry) -> Volume:
    """The record's image as stored, (X, Y, Z) or (X, Y, Z, C) with one file per channel stacked."""
    return read_case(entry, ras=False, mask=False)[0]


def read_mask(entry: Entry) -> Volume | None:
    """The record's mask as stored (``None`` when unlabelled), checked against the image's grid
    without reading the image's voxels."""
    return read_case(entry, ras=False, image_voxels=False)[1]


def source_intensity(
    data: np.ndarray, entry: Entry, *, window: tuple[float, float] | None = None,
    channel: int | None = None,
) -> np.ndarray:
    """``data`` (a volume or a slice of the record's image) in source units (HU for CT).

    Source manifests pass through unchanged. For a normalized record the recorded mapping is
    undone (exact inside its clip range); when ``window`` reaches outside that clip range the
    values there were lost, and an :class:`ExportError` says so instead of exporting wrong pixels.
    ``channel`` selects per-channel parameters (``data`` is then that channel only).
    """
    if entry.record.stage == "source":  # original intensities: nothing to undo
        return data
    params = entry.intensity
    if params.get("method", "none") == "none":
        return data
    if channel is not None and isinstance(params.get("scale"), list):
        params = {**params, "scale": params["scale"][channel], "offset": params["offset"][channel],
                  "clip": params["clip"][channel] if params.get("clip") else None}
    clip = params.get("clip")
    if window is not None and clip is not None and not isinstance(clip[0], list):
        lo, hi = float(clip[0]), float(clip[1])
        tolerance = 1e-4 * max(hi - lo, 1e-6)  # float round-off of the undo
        if window[0] < lo - tolerance or window[1] > hi + tolerance:
            raise entry.error(
                f"the image was normalized with values clipped to [{lo:g}, {hi:g}], so the "
                f"export window [{window[0]:g}, {window[1]:g}] reaches values that no longer "
                "exist", kind=ExportError, file=entry.image_paths()[0],
                hint=f"choose a window inside [{lo:g}, {hi:g}] (--window), or export from the "
                     "source manifest written by `harmonize manifest`",
            )
    return undo_intensity(data, params)


# ------------------------------------------------------------------------------------ labels


def specific_names(labels: Mapping[str, Iterable[int]]) -> dict[int, str]:
    """Mask value -> the most specific class containing it (fewest values; first on ties).

    ``{kidney: [1, 2, 3], kidney mass: [2, 3], kidney tumor: [2], kidney cyst: [3]}`` gives
    ``{1: kidney, 2: kidney tumor, 3: kidney cyst}``. Value 0 is never a class value.
    """
    best: dict[int, tuple[int, int, str]] = {}
    for order, (name, values) in enumerate(labels.items()):
        values = [int(v) for v in values]
        for value in values:
            if value == 0:
                continue
            candidate = (len(values), order, name)
            if value not in best or candidate < best[value]:
                best[value] = candidate
    return {value: best[value][2] for value in sorted(best)}


@dataclass
class LabelScheme:
    """Consecutive export labels 1..K over a set of records, named by their classes.

    Each record's mask value ``v`` becomes the export label of ``specific_names(labels)[v]``;
    names get labels in order of first appearance (records in order, values ascending), so one
    dataset's values keep their order (values 1/2/4 -> 1/2/3) and datasets that share a name
    share its label. ``regions`` maps every class name to the export labels whose voxels are all
    its own; a voxel overlapping structures share (a combination value) has one export label,
    that of its most specific class, and ``shared`` names, per class, who took such voxels.
    """

    names: list[str] = field(default_factory=list)
    regions: dict[str, list[int]] = field(default_factory=dict)
    #: class -> the classes its shared voxels (overlapping structures) are exported as
    shared: dict[str, list[str]] = field(default_factory=dict)
    _maps: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)

    @classmethod
    def from_entries(cls, entries: Iterable[Entry]) -> LabelScheme:
        scheme = cls()
        index: dict[str, int] = {}
        for entry in entries:
            labels = entry.record.labels
            mapping: dict[int, int] = {}
            specific = specific_names(labels)
            for value, name in specific.items():
                if name not in index:
                    scheme.names.append(name)
                    index[name] = len(scheme.names)
                mapping[value] = index[name]
            scheme._maps[(entry.dataset, entry.case_id)] = mapping
            members: dict[int, set[int]] = {}
            for value, label in mapping.items():
                members.setdefault(label, set()).add(value)
            for name, values in labels.items():
                own = {int(v) for v in values}
                # an export label is in a class's region only when all of its voxels are the
                # class's: a voxel two overlapping structures share goes to one of them
                covered = {label for label, vals in members.items() if vals <= own}
                lost = own - {v for label in covered for v in members[label]}
                if lost:
                    takers = sorted({specific[v] for v in lost if v in specific} - {name})
                    scheme.shared.setdefault(name, [])
                    scheme.shared[name] = sorted(set(scheme.shared[name]) | set(takers))
                scheme.regions.setdefault(name, [])
                scheme.regions[name] = sorted(set(scheme.regions[name]) | covered)
        return scheme

    def mapping(self, entry: Entry) -> dict[int, int]:
        """This record's mask value -> export label (0 -> 0 implied)."""
        return self._maps[(entry.dataset, entry.case_id)]

    def label_of(self, name: str) -> int:
        return self.names.index(name) + 1

    def table(self) -> dict[str, int]:
        """The global label table: ``background`` 0, then each export label by name (a name
        seen twice gets `` (label k)``). nnU-Net's ``labels`` and the MONAI datalist's."""
        labels = {"background": 0}
        for label, name in enumerate(self.names, start=1):
            labels[name if name not in labels else f"{name} (label {label})"] = label
        return labels

    def remap(self, entry: Entry, data: np.ndarray, *, file: Path | None = None) -> np.ndarray:
        """``data`` with every value replaced by its export label (uint8, or uint16 above 255).

        A value that no class of the record covers is a :class:`LabelError`: exporting it as
        background would silently drop annotated voxels.
        """
        return remap_values(data, self.mapping(entry), entry=entry, file=file,
                            dtype=np.uint8 if len(self.names) <= 255 else np.uint16)

    def is_identity(self, entry: Entry) -> bool:
        mapping = self.mapping(entry)
        return all(k == v for k, v in mapping.items())


def remap_values(data: np.ndarray, mapping: Mapping[int, int], *, entry: Entry,
                 file: Path | None, dtype: Any) -> np.ndarray:
    """Look-up-table remap of a label map (values must be non-negative integers)."""
    if data.size == 0:
        return data.astype(dtype)
    top = int(data.max())
    lut = np.full(top + 1, -1, dtype=np.int64)
    lut[0] = 0
    for value, label in mapping.items():
        if value <= top:
            lut[value] = label
    present = np.unique(data)
    unknown = [int(v) for v in present if lut[int(v)] < 0]
    if unknown:
        raise entry.error(
            f"mask holds value(s) {unknown} that no class of the record covers "
            f"(record classes: {dict(entry.record.labels)})", file=file, kind=LabelError,
            hint="regenerate the manifest so its labels cover every mask value, or fix the mask",
        )
    return lut.astype(dtype)[data]


def run_cases(
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    *,
    workers: int | None,
    progress: Callable[[int], Callable[[], None]] | None,
    errors: list[ErrorRecord],
) -> Iterator[tuple[Any, Any]]:
    """Run ``fn`` on every task (each has an ``entry`` with ``dataset`` and ``case_id``) in a local
    process pool; yield ``(task, result)`` for successes and append an :class:`ErrorRecord` to
    ``errors`` for each failure, so one bad case never stops an export."""
    from harmonize.engine.executors import make_executor

    pool = make_executor("local", workers=workers)
    start = getattr(pool, "start", None)
    if start is not None:
        start()  # fork workers before a progress bar thread exists
    advance = progress(len(tasks)) if progress else (lambda: None)
    try:
        for index, outcome in pool.imap_unordered(fn, tasks):
            task = tasks[index]
            if isinstance(outcome, BaseException):
                errors.append(ErrorRecord.from_exception(
                    outcome, dataset=task.entry.dataset, case=task.entry.case_id))
            else:
                yield task, outcome
            advance()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the workers now rather than wait for them
        pool.abort()
        raise
    finally:
        pool.close()
