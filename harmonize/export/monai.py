"""MONAI Decathlon-style datalist (``monai.data.load_decathlon_datalist``).

``{"training": [...], "validation": [...], "testing": [...]}`` from the manifest's train, val
and test splits, plus, once at the top of the document, what every item shares:

* ``labels``: the one global label table (``background`` 0, then 1..K by class name), built by
  :class:`harmonize.export.LabelScheme` exactly as the nnU-Net export builds it (value 1 is one
  class in every item: a kidney dataset next to a brain tumour dataset gives kidney 1, ...);
  ``classes`` (every class, merges included, -> the global labels it covers);
* ``modality``: index -> channel name: every item's channels when all items have the same
  (a 4D file's order included), else the union of the items' channels in canonical channel order
  (``registry/channels.yaml``; ``channels=[...]``: exactly those). Items with other channels
  are placed into these positions by name (see the README's MONAI section);
* ``datasets``: per dataset its ``modality``, ``channels``, ``labels`` (class -> its own mask
  values, union over its records) and ``label_of_mask_value`` (own value -> global label).

Each item holds only keys whose type is the same in every item, so MONAI's default collation
(``list_data_collate``) batches items of different datasets: ``image`` (always a list, one path
per channel file in canonical order; a 4D file is one path and keeps its file order),
``label`` (omitted for unlabelled cases: batch labelled items only), ``case_id``, ``dataset``,
``patient_id``, ``modality`` (the record's, e.g. ``CT``, ``MR``) and ``channels`` (the item's
channel names in ``image``'s order, joined with ``,``: a string, since lists of different
lengths do not collate).

``label`` holds global labels: a mask whose values already are the global labels is the
record's own file; any other is rewritten, remapped through the table, on its image's grid
(:func:`harmonize.read.nifti_writer.write_volume`, atomic) to
``<datalist stem>_labels/<key>.nii.gz`` beside the datalist; its ``.nii.gz`` files are removed
first, so no stale mask remains. Images are never copied: ``image`` points at the manifests' files
(absolute, or relative to ``base_dir``; pass the same folder as ``base_dir`` to
``load_decathlon_datalist``), so a source record whose descriptor rescales its images (files not
in physical units) is refused. Every case is read through the one
reading layer (a mask off its image's grid is refused as by every other command).
``channels=[...]`` makes every item exactly those channels, in that order: datasets lacking one
are refused naming both, as a 4D file that would need reordering. Datasets whose channels cannot
be aligned (several channels without names) cannot be mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harmonize import __version__, jsonio
from harmonize.export import (
    Entry,
    ExportError,
    LabelScheme,
    load_entries,
    output_path,
    read_case,
    read_mask,
    remap_values,
)
from harmonize.files import write_text_atomic
from harmonize.labels.channels import (
    channel_count,
    export_plan,
    load_channels,
    record_channels,
    union_channels,
)
from harmonize.read.nifti_writer import write_volume
from harmonize.read.volume import Volume

KEYS = {"train": "training", "val": "validation", "test": "testing"}
#: Separator of an item's ``channels`` string (channel names never contain it: ``--channels``
#: splits on it too).
CHANNEL_SEPARATOR = ","


def datalist_item(entry: Entry, base_dir: Path | None, order: Sequence[int] | None = None,
                  mask: Path | None = None) -> dict[str, Any]:
    """One item; ``order`` lists, per datalist channel, the record's image file (one per
    channel); ``mask`` replaces the record's own mask file (a remapped copy)."""
    images = [output_path(p, base_dir) for p in entry.image_paths()]
    if order is not None and len(images) > 1:
        images = [images[k] for k in order]
    item: dict[str, Any] = {"image": images}
    own = entry.mask_path()
    if own is not None:
        item["label"] = output_path(mask if mask is not None else own, base_dir)
    item.update({"case_id": entry.case_id, "dataset": entry.dataset,
                 "patient_id": str(entry.record.patient_id), "modality": entry.record.modality})
    return item


def remapped_masks(entries: Sequence[Entry], scheme: LabelScheme, folder: Path) -> dict[str, Path]:
    """Export key -> path in ``folder`` for every labelled entry whose mask values are not
    already the global labels (those need a remapped copy)."""
    return {e.key: folder / f"{e.key}.nii.gz" for e in entries
            if e.record.mask is not None and not scheme.is_identity(e)}


def build_datalist(entries: Sequence[Entry], base_dir: Path | None = None,
                   channels: Sequence[str] | None = None, scheme: LabelScheme | None = None,
                   masks: dict[str, Path] | None = None) -> dict[str, Any]:
    """The datalist document for ``entries`` (every record needs a split); ``masks`` maps export
    keys to remapped mask files (:func:`remapped_masks`), which this does not write."""
    scheme = scheme or LabelScheme.from_entries(entries)
    masks = masks or {}
    names, orders, modality = _channel_plan(entries, channels)
    doc: dict[str, Any] = {
        "name": "+".join(sorted({e.dataset for e in entries})),
        "description": f"harmonize {__version__} datalist",
        "modality": {str(c): name for c, name in enumerate(modality)},
        "labels": scheme.table(),
        "classes": {name: list(values) for name, values in scheme.regions.items()},
        # class -> classes its voxels shared with overlapping structures are labelled as
        **({"shared_voxels": dict(scheme.shared)} if scheme.shared else {}),
        "datasets": _dataset_tables(entries, names, scheme),
        "base_dir": None if base_dir is None else Path(base_dir).resolve().as_posix(),
        "training": [], "validation": [], "testing": [],
    }
    for entry, order, own in zip(entries, orders, names):
        read_case(entry, ras=False, image_voxels=False)  # the one reading layer's checks
        if not entry.files_as_read:  # the datalist points at files, never copies of them
            raise ExportError(
                "the image files are not in physical units (the dataset's descriptor rescales "
                "them when read) and a datalist can only point at them",
                dataset=entry.dataset, case=entry.case_id, file=entry.image_paths()[0],
                hint="export the manifest `harmonize run` writes (its images are rescaled)")
        if entry.split not in KEYS:
            raise ExportError(f"record has no split ({entry.split!r})", dataset=entry.dataset,
                              case=entry.case_id, file=entry.manifest,
                              hint="regenerate the manifest with `harmonize manifest` or "
                                   "`harmonize run`")
        item = datalist_item(entry, base_dir, order, masks.get(entry.key))
        item["channels"] = CHANNEL_SEPARATOR.join(own)
        doc[KEYS[entry.split]].append(item)
    doc["numTraining"] = len(doc["training"])
    doc["numValidation"] = len(doc["validation"])
    doc["numTest"] = len(doc["testing"])
    return doc


def _dataset_tables(entries: Sequence[Entry], names: Sequence[list[str]],
                    scheme: LabelScheme) -> dict[str, dict[str, Any]]:
    """Per dataset: modality, channels, own classes (union of value sets) and own value ->
    global label."""
    tables: dict[str, dict[str, Any]] = {}
    for entry, own in zip(entries, names):
        table = tables.setdefault(entry.dataset, {
            "modality": entry.record.modality, "channels": list(own), "labels": {},
            "label_of_mask_value": {}})
        for name, values in entry.record.labels.items():
            table["labels"][name] = sorted(set(table["labels"].get(name, [])) |
                                           {int(v) for v in values})
        for value, label in scheme.mapping(entry).items():
            table["label_of_mask_value"].setdefault(str(value), label)
    return tables


def _channel_plan(entries: Sequence[Entry], channels: Sequence[str] | None
                  ) -> tuple[list[list[str]], list[list[int]], list[str]]:
    """Per entry its channel names and, for each, its own channel index (image file); and the
    document's channel table.

    Default: every channel of the entry, canonical order (a 4D file keeps its file order: the
    datalist cannot reorder voxels); the table is those channels when every entry has the same,
    else the union in canonical order. ``channels``:
    exactly those, in that order, in every entry and in the table."""
    records = [e.record for e in entries]
    four_d = [not isinstance(r.image, list) and len(r.shape) == 4 for r in records]
    if channels is not None:
        names, plan = export_plan(records, channels, error=ExportError)
        for entry, order, whole in zip(entries, plan, four_d):
            if whole and order != list(range(channel_count(entry.record))):
                raise ExportError(
                    f"the 4D image holds the channels {record_channels(entry.record)}; a datalist "
                    f"cannot reorder or subset it to {names}", dataset=entry.dataset,
                    case=entry.case_id, hint="use `harmonize export nnunet --channels` (one file "
                    "per channel), or leave channels unset")
        return [list(names) for _ in entries], plan, list(names)
    found = [record_channels(r) for r in records]
    union = union_channels([(r.dataset, n) for r, n in zip(records, found)], error=ExportError)
    names_out: list[list[str]] = []
    plan = []
    for record, own, whole in zip(records, found, four_d):
        count = channel_count(record)
        if own is None:  # one dataset without channel names (union_channels refuses a mix)
            names_out.append([f"{record.modality}{c}" for c in range(count)])
            plan.append(list(range(count)))
            continue
        ordered = own if whole else load_channels().order(own)
        names_out.append(ordered)
        plan.append([own.index(n) for n in ordered])
    if all(n == names_out[0] for n in names_out):  # positional stacking holds as is
        union = names_out[0]
    return names_out, plan, union


def write_masks(entries: Sequence[Entry], scheme: LabelScheme, masks: dict[str, Path]) -> None:
    """Write each remapped mask of ``masks`` (export key -> path): the record's mask as stored,
    values replaced by global labels (uint8, uint16 above 255 labels), same grid and affine."""
    dtype = np.dtype(np.uint8 if len(scheme.names) <= 255 else np.uint16)
    for entry in entries:
        target = masks.get(entry.key)
        if target is None:
            continue
        mask = read_mask(entry)
        assert mask is not None  # remapped_masks lists labelled entries only
        data = remap_values(mask.data, scheme.mapping(entry), entry=entry,
                            file=entry.mask_path(), dtype=dtype)
        write_volume(Volume(data, mask.affine, "label"), target)


def export_monai(manifests: Sequence[Path] | Path, out: Path, base_dir: Path | None = None,
                 channels: Sequence[str] | None = None) -> dict[str, Any]:
    """Write the datalist for ``manifests`` to ``out`` (a .json file), and the remapped masks to
    ``<out stem>_labels/`` beside it (see the module doc); return the datalist. ``channels``
    chooses the channels (names or synonyms, default all, canonical order)."""
    out = Path(out)
    if out.suffix.lower() != ".json":
        raise ExportError("the datalist must be a .json file", file=out,
                          hint="pass --out datalist.json")
    entries = load_entries(manifests)
    scheme = LabelScheme.from_entries(entries)
    folder = out.parent / f"{out.stem}_labels"
    masks = remapped_masks(entries, scheme, folder)
    doc = build_datalist(entries, base_dir, channels, scheme, masks)
    if folder.is_dir():
        for stale in folder.glob("*.nii.gz"):  # a stale mask of an earlier export must not stay
            stale.unlink()
    if masks:
        folder.mkdir(parents=True, exist_ok=True)
        write_masks(entries, scheme, masks)
    write_text_atomic(out, jsonio.dumps(doc, indent=1) + "\n")
    return doc
