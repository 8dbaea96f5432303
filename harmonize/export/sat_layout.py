"""SAT-DS export in SAT-DS's own layout, for datasets SAT-DS has (``registry/sat-ds.yaml``).

SAT-DS's ``loader.py`` reads each dataset with its own ``Loader_Wrapper.<name>`` method, which
hard-codes the dataset's ``label`` list and how its mask encodes it. A record of a dataset whose
descriptor names SAT-DS datasets (``sat_ds:``) is therefore written as that method reads it:

* ``dataset`` is the SAT-DS name and ``label`` SAT-DS's list verbatim (SAT-DS's terminology,
  merged names included: the method derives them);
* the mask follows :class:`~harmonize.labels.sat_ds.MaskLayout`: ``values`` (``label[i]`` is
  value ``i + 1``; each of our mask values goes to the SAT-DS name of the most specific of its
  classes that SAT-DS names)
  or ``channels`` (a ``(C, X, Y, Z)`` array, channel ``i`` = every voxel of the class
  ``label[i]`` resolves to, so overlapping classes keep their voxels);
* ``modality`` is SAT-DS's string for the line's channel (``MRI T2`` / ``MRI ADC``), and
  datasets SAT-DS reads through ``<4D file>/<channel>`` pseudo-paths get them.

SAT-DS names are matched to classes through the vocabulary (SAT-DS spellings are synonyms). What
SAT-DS cannot say is reported per case: SAT-DS names our case does not annotate (SAT-DS reads
them as absent; :attr:`SatLines.notes`) and classes of ours with voxels that no SAT-DS name
takes (:attr:`SatLines.unnamed`; the export reports those no SAT-DS dataset of the case takes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.errors import HarmonizeError
from harmonize.export import Entry, ExportError, output_path, read_image, read_mask, specific_names
from harmonize.labels.channels import record_channels
from harmonize.labels.sat_ds import SatDataset
from harmonize.labels.vocabulary import Vocabulary
from harmonize.read.nifti_writer import write_volume
from harmonize.read.volume import Volume, is_nifti

__all__ = ["SatLines", "sat_layout_lines"]


@dataclass
class SatLines:
    """The JSONL lines of one record for one SAT-DS dataset, and what SAT-DS cannot say."""

    lines: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    #: our classes with voxels that this SAT-DS dataset has no name for
    unnamed: set[str] = field(default_factory=set)


def sat_layout_lines(entry: Entry, out: Path, sat: SatDataset, vocabulary: Vocabulary,
                     base_dir: Path | None, split: Callable[[str | None], str]) -> SatLines:
    """Lines of ``entry`` for SAT-DS dataset ``sat`` (which has a mask layout)."""
    assert sat.mask is not None
    record = entry.record
    value_names = sat.label[: sat.mask.count]
    canonical = [_resolve(vocabulary, name, sat, entry) for name in value_names]
    notes = [f"{sat.name}: {name!r} is not annotated in this case (SAT-DS reads it as absent)"
             for name, c in zip(value_names, canonical) if c not in record.labels]
    mask = read_mask(entry)
    if mask is None:
        raise entry.error("SAT-DS samples need a mask; this record has none", kind=ExportError)
    target = out / "masks" / sat.name / f"{entry.key}.nii.gz"
    if sat.mask.layout == "values":
        lut, present, lost = _values_lut(mask.data, record.labels, canonical)
        source = entry.mask_path()
        if source is not None and is_nifti(source) and all(lut[v] == v for v in present):
            target = source  # already SAT-DS's values: no copy
        else:
            dtype = np.uint8 if len(canonical) < 256 else np.uint16
            write_volume(Volume(lut.astype(dtype)[mask.data], mask.affine, "label"), target)
        # our classes in SAT-DS's values (what `harmonize import sat` reads back exactly): a
        # SAT-DS value belongs to a class only when all of our values it holds are the class's
        members: dict[int, set[int]] = {}
        for v in np.flatnonzero(lut):
            members.setdefault(int(lut[v]), set()).add(int(v))
        sat_values = {name: sorted(sat for sat, vals in members.items()
                                   if vals <= {int(x) for x in values})
                      for name, values in record.labels.items()}
    else:
        data, lost = _channel_mask(mask.data, record.labels, canonical)
        write_volume(Volume(data, mask.affine, "label"), target)
        sat_values = {}  # channels, not values: `import sat` reads 3D value masks only
    lines = []
    for image, suffix, channel in _images(entry, out, sat):
        lines.append({
            "image": output_path(image, base_dir) + (f"/{suffix}" if suffix else ""),
            "mask": output_path(target, base_dir),
            "label": list(sat.label),
            "modality": sat.modality_of(channel),
            "dataset": sat.name,
            "official_split": split(record.official_split),
            "patient_id": record.patient_id,
            "harmonize": {"case_id": record.case_id, "dataset": record.dataset,
                          "split": record.split, "channel": channel, "layout": sat.mask.layout,
                          "values": sat.mask.count, "labels": sat_values},
        })
    return SatLines(lines, notes, set(lost))


def _resolve(vocabulary: Vocabulary, name: str, sat: SatDataset, entry: Entry) -> str:
    try:
        return vocabulary.resolve(name)
    except HarmonizeError as exc:
        raise entry.error(f"SAT-DS name {name!r} of {sat.name} is not in the vocabulary: "
                          f"{exc.message}", kind=ExportError,
                          hint="add it as a synonym in registry/vocabulary.yaml") from None


def _values_lut(data: np.ndarray, labels: dict[str, list[int]], canonical: list[str]
                ) -> tuple[np.ndarray, list[int], list[str]]:
    """Look-up table of our values -> SAT-DS's ``i + 1`` (by the most specific class SAT-DS
    names: a 'pathological lymph node' value is SAT-DS's 'lymph node' when the record lists
    it under both), the values present, and the classes whose voxels no SAT-DS name
    takes."""
    position = {name: i + 1 for i, name in enumerate(canonical)}
    present = np.flatnonzero(np.bincount(data.reshape(-1))).tolist() if data.size else []
    lut = np.zeros((max(present) if present else 0) + 1, dtype=np.int64)
    named = specific_names({n: v for n, v in labels.items() if n in position})
    lost = []
    for value, name in specific_names(labels).items():
        if value >= len(lut):
            continue
        if value in named:
            lut[value] = position[named[value]]
        elif value in present:
            lost.append(name)
    return lut, present, sorted(set(lost))


def _channel_mask(data: np.ndarray, labels: dict[str, list[int]], canonical: list[str]
                  ) -> tuple[np.ndarray, list[str]]:
    """A ``(C, X, Y, Z)`` uint8 array, channel ``i`` = voxels of class ``canonical[i]``."""
    out = np.zeros((len(canonical), *data.shape), dtype=np.uint8)
    for i, name in enumerate(canonical):
        if name in labels and labels[name]:
            out[i] = np.isin(data, labels[name])
    taken = {v for name in canonical if name in labels for v in labels[name]}
    lost = sorted({name for value, name in specific_names(labels).items()
                   if value not in taken and (data == value).any()})
    return out, lost


def _images(entry: Entry, out: Path, sat: SatDataset
            ) -> list[tuple[Path, str | None, str | None]]:
    """(image file, pseudo-path suffix or None, canonical channel) per line."""
    from harmonize.export.sat import converted_images  # one NIfTI per channel, shared

    if sat.only:  # SAT-DS has lines for these channels only (the PET of a PET/CT case)
        found: list[tuple[Path, str | None, str | None]] = [
            (path, None, channel) for path, channel in converted_images(entry, out)
            if channel in sat.only]
        if not found:
            raise entry.error(f"SAT-DS has {sat.name} lines for channels {list(sat.only)}; "
                              f"this record has {record_channels(entry.record)}",
                              kind=ExportError)
        return found
    if not sat.suffixed:
        return [(path, None, channel) for path, channel in converted_images(entry, out)]
    names = record_channels(entry.record) or []
    missing = [c for c in sat.suffixed if c not in names]
    if missing:
        raise entry.error(f"SAT-DS reads {sat.name} as channels {list(sat.suffixed)}; this "
                          f"record has {names}", kind=ExportError)
    paths = entry.image_paths()
    order = [names.index(c) for c in sat.suffixed]
    if (len(paths) == 1 and is_nifti(paths[0]) and order == list(range(len(names)))
            and entry.files_as_read):
        four_d = paths[0]
    else:
        image = read_image(entry)
        stack = image.data if image.data.ndim == 4 else image.data[..., None]
        four_d = out / "images" / sat.name / f"{entry.key}.nii.gz"
        write_volume(Volume(np.ascontiguousarray(stack[..., order]), image.affine, "image"),
                     four_d)
    # the loader picks the channel by the token after the last "/" (its own channel names)
    return [(four_d, sat.modality_of(c).rpartition(" ")[2], c) for c in sat.suffixed]
