"""SAT-DS interop, export: per-dataset JSONL + split JSON out (and the format both ways use).

SAT-DS (zhaoziheng/SAT-DS) describes each sample as one JSONL line::

    {"image": "...", "mask": "...", "label": ["kidney", "kidney tumor", "kidney cyst"],
     "modality": "CT", "dataset": "<name>", "official_split": "train", "patient_id": "case_00000"}

and its ``loader.py`` reads ``label[i]`` as mask value ``i + 1`` for most datasets (merged classes
such as "kidney includes tumor and cyst" are added in per-dataset loader code). Splits are
``data/split_json/<dataset>.json``: ``{"train": [patient ids], "test": [patient ids]}``.

**Export** (:func:`export_sat`) writes ``<out>/jsonl/<name>.jsonl`` and
``<out>/split_json/<name>.json`` per SAT-DS dataset name, paths relative to ``<out>``. Datasets
whose descriptor names SAT-DS datasets (``sat_ds``) are written in SAT-DS's own names, label
lists and mask layouts (:mod:`harmonize.export.sat_layout`); the others in this generic layout:

* ``label`` lists one name per mask value, in value order: the most specific class of each value
  (:func:`harmonize.export.specific_names`), so ``label[i]`` is value ``i + 1`` exactly as SAT-DS
  reads it; classes annotated but without voxels (value set empty) follow, so a generic reader
  finds them absent. Merged classes (``kidney mass`` = tumor + cyst) are not in ``label``: SAT-DS
  derives them in code, and their value sets travel in the extra ``harmonize`` key.
* The mask is the record's own file when its values already are 1..K in that order; otherwise a
  remapped copy is written to ``<out>/masks/<dataset>/<case>.nii.gz`` (values 1/2/4 -> 1/2/3).
* One line per channel, as SAT-DS does (four MR sequences: four lines, one mask); a 4D image
  or a non-NIfTI image (DICOM) is written as one NIfTI per channel under
  ``<out>/images/<dataset>/``. Records without a mask are not exported (every SAT-DS sample has
  one); they are listed in the result.
* Lines of one case follow the canonical channel order (``registry/channels.yaml``) and name
  their canonical channel; ``modality`` is ``CT``, ``MRI`` (``MRI T2`` with a channel name) or
  ``PET``; ``official_split`` is ``train``/``val``/``test`` or ``unknown``.
* Split JSON: our test patients are ``test``; our val patients join ``train`` (SAT-DS has no
  validation split; ``val_to="test"`` puts them in test instead).
* Extra key ``harmonize``: ``case_id``, ``split``, ``labels`` (canonical name -> SAT mask values,
  merges included) and ``values`` (how many names of ``label`` are mask values). SAT-DS ignores
  keys it does not know;
  :func:`harmonize.export.sat_import.import_sat` uses it for an exact round trip.

**Import** (``harmonize import sat``) lives in :mod:`harmonize.export.sat_import`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harmonize import jsonio
from harmonize._moved import moved_names
from harmonize.errors import ErrorRecord, HarmonizeError
from harmonize.export import (
    Entry,
    ExportError,
    load_entries,
    output_path,
    read_image,
    read_mask,
    remap_values,
    specific_names,
)
from harmonize.files import write_text_atomic
from harmonize.labels.channels import load_channels, record_channels
from harmonize.read.nifti_writer import write_volume
from harmonize.read.volume import Volume, is_nifti

if TYPE_CHECKING:
    from harmonize.plugin.catalog import Catalog

#: our modality -> SAT-DS's string; SAT-DS files its cone-beam CT dataset under "CT"
SAT_MODALITY = {"CT": "CT", "CBCT": "CT", "MR": "MRI", "PET": "PET"}
SAT_SPLIT = {None: "unknown", "train": "train", "val": "val", "test": "test"}
REQUIRED_KEYS = ("image", "mask", "label", "modality", "dataset", "official_split", "patient_id")


# ------------------------------------------------------------------------------------- export


def sat_labels(labels: dict[str, list[int]]) -> tuple[list[str], int, dict[int, int],
                                                      dict[str, list[int]]]:
    """SAT ``label`` list, how many of its names are mask values, our value -> SAT value, and
    name -> SAT values for every class (merges included)."""
    names = specific_names(labels)
    order: list[str] = []
    for value in sorted(names):
        if names[value] not in order:
            order.append(names[value])
    values = len(order)
    value_map = {v: order.index(name) + 1 for v, name in names.items()}
    members: dict[int, set[int]] = {}
    for value, sat in value_map.items():
        members.setdefault(sat, set()).add(value)
    # a class holds a SAT value only when all of its voxels are the class's (a voxel that
    # overlapping structures share has one SAT value, its most specific class's)
    sat_values = {name: sorted(sat for sat, vals in members.items()
                               if vals <= {int(v) for v in vs})
                  for name, vs in labels.items()}
    order += [name for name, vs in labels.items() if not vs and name not in order]
    return order, values, value_map, sat_values


def converted_images(entry: Entry, out: Path) -> list[tuple[Path, str | None]]:
    """Per channel, in canonical channel order: a NIfTI path SAT-DS can load, and the channel's
    canonical name (or None when the record's channels have no names)."""
    paths = entry.image_paths()
    names = record_channels(entry.record)
    single = len(entry.record.shape) == 3
    if all(is_nifti(p) for p in paths) and (len(paths) > 1 or single) and entry.files_as_read:
        labels: list[str | None] = list(names) if names else [None] * len(paths)
        found: list[tuple[Path, str | None]] = list(zip(paths, labels))
    else:
        image = read_image(entry)
        data = image.data
        channels = [data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])]
        found = []
        for c, channel in enumerate(channels):
            target = out / "images" / entry.dataset / f"{entry.case_id}_{c:04d}.nii.gz"
            write_volume(Volume(channel, image.affine, "image"), target)
            found.append((target, names[c] if names and len(names) == len(channels) else None))
    if names is None:
        return found
    rank = {n: k for k, n in enumerate(load_channels().order(names))}
    return sorted(found, key=lambda item: rank.get(item[1] or "", 0))


def _sat_mask(entry: Entry, out: Path, value_map: dict[int, int]) -> Path | None:
    """The record's mask if SAT-DS reads it as is, else a remapped NIfTI copy."""
    path = entry.mask_path()
    if path is None:
        return None
    mask = read_mask(entry)  # checked against the image grid even when the file is reused
    assert mask is not None
    if is_nifti(path) and all(k == v for k, v in value_map.items()):
        return path
    dtype = np.uint8 if len(value_map) <= 255 else np.uint16
    data = remap_values(mask.data, value_map, entry=entry, file=path, dtype=dtype)
    target = out / "masks" / entry.dataset / f"{entry.case_id}.nii.gz"
    write_volume(Volume(data, mask.affine, "label"), target)
    return target


def sat_lines(entry: Entry, out: Path, name: str, base_dir: Path | None) -> list[dict[str, Any]]:
    """SAT-DS JSONL lines of one record (one per channel)."""
    record = entry.record
    label, values, value_map, sat_values = sat_labels(record.labels)
    mask = _sat_mask(entry, out, value_map)
    if mask is None:
        raise entry.error("SAT-DS samples need a mask; this record has none", kind=ExportError)
    modality = SAT_MODALITY.get(record.modality, record.modality)
    lines = []
    for path, channel in converted_images(entry, out):
        lines.append({
            "image": output_path(path, base_dir),
            "mask": output_path(mask, base_dir),
            "label": label,
            "modality": f"{modality} {channel}" if channel and channel != modality
                        and modality != "CT" else modality,
            "dataset": name,
            "official_split": SAT_SPLIT[record.official_split],
            "patient_id": record.patient_id,
            "harmonize": {"case_id": record.case_id, "dataset": record.dataset,
                          "split": record.split, "values": values, "labels": sat_values,
                          "channel": channel},
        })
    return lines


@dataclass
class SatExport:
    """Files written per SAT-DS dataset name, failures, and what SAT-DS cannot say per case."""

    out: Path
    jsonl: dict[str, Path] = field(default_factory=dict)
    split_json: dict[str, Path] = field(default_factory=dict)
    lines: int = 0
    errors: list[ErrorRecord] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sat_targets(dataset: str, names: dict[str, str], catalog: Catalog | None) -> list[str]:
    """SAT-DS dataset names a record of ``dataset`` is written to: ``names[dataset]``, else its
    descriptor's ``sat_ds`` names, else the dataset id itself."""
    if dataset in names:
        return [names[dataset]]
    plugin = catalog.datasets.get(dataset) if catalog is not None else None
    if plugin is not None and plugin.descriptor.sat_ds:
        return list(plugin.descriptor.sat_ds)
    return [dataset]


def export_sat(
    manifests: Sequence[Path] | Path,
    out: Path,
    *,
    names: dict[str, str] | None = None,
    base_dir: Path | None = None,
    val_to: str = "train",
    progress: Callable[[int], Callable[[], None]] | None = None,
    catalog: Catalog | None = None,
) -> SatExport:
    """Write SAT-DS JSONL and split JSON per SAT-DS dataset under ``out`` (see the module doc).

    A dataset whose descriptor names SAT-DS datasets (``sat_ds``) that SAT-DS's loader reads in a
    known layout (``registry/sat-ds.yaml``) is written in that layout under SAT-DS's name and
    label list (:mod:`harmonize.export.sat_layout`); others in the generic layout under their id.
    ``names`` renames datasets (our id -> SAT-DS name) over the descriptors; paths are relative
    to ``base_dir`` (default ``out``, as SAT-DS's are relative to its root); ``val_to`` is
    ``train`` or ``test``; ``catalog`` (default: the installed plugins) gives the descriptors.
    """
    from harmonize.export.sat_layout import sat_layout_lines
    from harmonize.labels.sat_ds import load_sat_ds
    from harmonize.labels.vocabulary import load_vocabulary
    from harmonize.plugin.catalog import load_catalog

    if val_to not in ("train", "test"):
        raise ExportError(f"val_to must be 'train' or 'test', got {val_to!r}")
    names = dict(names or {})
    out = Path(out)
    base_dir = out if base_dir is None else base_dir
    entries = load_entries(manifests)
    unknown = sorted(set(names) - {e.dataset for e in entries})
    if unknown:
        raise ExportError(f"--sat-name names dataset(s) {unknown} that are not in the manifests")
    catalog = catalog if catalog is not None else load_catalog()
    table, vocabulary = load_sat_ds(), load_vocabulary()
    result = SatExport(out=out)
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    splits: dict[str, dict[str, set[str]]] = {}
    advance = progress(len(entries)) if progress else (lambda: None)
    for entry in entries:
        if entry.record.mask is None:  # SAT-DS samples always have a mask
            result.unlabelled.append(f"{entry.dataset}/{entry.case_id}")
            advance()
            continue
        unnamed: set[str] | None = None  # classes no SAT-DS dataset of this case names
        for name in sat_targets(entry.dataset, names, catalog):
            sat = table.get(name)
            if sat is not None and sat.mask is None and entry.dataset not in names:
                # SAT-DS's loader reads this dataset in a layout harmonize does not write: its
                # name on our generic layout would be misread, so the record keeps its own id
                result.notes.append(f"{entry.dataset}/{entry.case_id}: SAT-DS's loader reads "
                                    f"{name} in a layout harmonize does not write; exported as "
                                    f"{entry.dataset!r} in the generic layout")
                name, sat = entry.dataset, None
            try:
                if sat is not None and sat.mask is not None:
                    made = sat_layout_lines(entry, out, sat, vocabulary, base_dir,
                                            lambda split: SAT_SPLIT[split])
                    lines = made.lines
                    result.notes += [f"{entry.dataset}/{entry.case_id}: {n}" for n in made.notes]
                    unnamed = made.unnamed if unnamed is None else unnamed & made.unnamed
                else:
                    lines = sat_lines(entry, out, name, base_dir)
            except HarmonizeError as exc:
                result.errors.append(ErrorRecord.from_exception(exc, dataset=entry.dataset,
                                                                case=entry.case_id))
                continue
            by_dataset.setdefault(name, []).extend(lines)
            split = entry.split if entry.split != "val" else val_to
            if split in ("train", "test"):
                splits.setdefault(name, {"train": set(), "test": set()})[split].add(
                    entry.record.patient_id)
        result.notes += [f"{entry.dataset}/{entry.case_id}: class {c!r} has voxels but no "
                         "SAT-DS name; they are background in SAT-DS" for c in sorted(unnamed or ())]
        advance()
    for name, lines in by_dataset.items():
        path = out / "jsonl" / f"{name}.jsonl"
        write_text_atomic(path, "".join(jsonio.dumps(line, ensure_ascii=False) + "\n"
                                        for line in lines))
        result.jsonl[name] = path
        doc = {k: sorted(v) for k, v in splits.get(name, {"train": set(), "test": set()}).items()}
        split_path = out / "split_json" / f"{name}.json"
        write_text_atomic(split_path, jsonio.dumps(doc) + "\n")
        result.split_json[name] = split_path
        result.lines += len(lines)
    return result


#: The import half moved to :mod:`harmonize.export.sat_import`; these names still import from here.
__getattr__ = moved_names("harmonize.export.sat", dict.fromkeys(
    ("import_sat", "case_ids", "read_sat_jsonl", "line_labels", "SatJsonlDataset", "SatImport",
     "OUR_MODALITY", "OUR_SPLIT"), "harmonize.export.sat_import"))
