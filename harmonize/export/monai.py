"""MONAI Decathlon-style datalist (``monai.data.load_decathlon_datalist``).

``{"training": [...], "validation": [...], "testing": [...]}`` from the manifest's train, val
and test splits. Each item has ``image`` (one path, or a list of one path per channel, which
MONAI's ``LoadImaged`` stacks, in canonical channel order: ``registry/channels.yaml``; the
document's ``modality`` names them) and ``label`` (omitted for unlabelled cases), plus ``case_id``,
``dataset``, ``patient_id`` and ``labels`` (canonical name -> mask values: the mask is the
record's own file, merges are value sets). Paths are absolute, or relative to ``base_dir``; pass
the same folder as ``base_dir`` to ``load_decathlon_datalist`` (its default is the datalist's
own folder). Each item's ``channels`` names its image's channels in order: one file per
channel is listed in canonical order; a 4D file keeps its file order (no volume is read or
written). The document's ``modality`` maps index -> name. Datasets whose items would stack different
sequences at one position (``LoadImaged`` stacks by position) are refused naming both. Every
case is read through the one reading layer (header and label: a mask off its image's grid is
refused as by every other command). ``channels=[...]`` makes every item exactly those channels, in that order:
datasets lacking one are refused naming both datasets, as a 4D file that would need reordering.
Datasets whose channels cannot be aligned (several channels without names) cannot be mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harmonize import __version__, jsonio
from harmonize.export import Entry, ExportError, load_entries, output_path, read_case
from harmonize.files import write_text_atomic
from harmonize.labels.channels import (
    channel_count,
    export_plan,
    load_channels,
    record_channels,
    union_channels,
)

KEYS = {"train": "training", "val": "validation", "test": "testing"}


def datalist_item(entry: Entry, base_dir: Path | None,
                  order: Sequence[int] | None = None) -> dict[str, Any]:
    """One item; ``order`` lists, per datalist channel, the record's image file (one per channel)."""
    images = [output_path(p, base_dir) for p in entry.image_paths()]
    if order is not None and len(images) > 1:
        images = [images[k] for k in order]
    item: dict[str, Any] = {"image": images[0] if len(images) == 1 else images}
    mask = entry.mask_path()
    if mask is not None:
        item["label"] = output_path(mask, base_dir)
    item.update({
        "case_id": entry.case_id, "dataset": entry.dataset, "patient_id": entry.record.patient_id,
        "labels": {name: list(values) for name, values in entry.record.labels.items()},
    })
    return item


def build_datalist(entries: Sequence[Entry], base_dir: Path | None = None,
                   channels: Sequence[str] | None = None) -> dict[str, Any]:
    """The datalist document for ``entries`` (every record needs a split)."""
    names, orders = _channel_plan(entries, channels)
    shared = names[0] if all(n == names[0] for n in names) else []
    doc: dict[str, Any] = {
        "name": "+".join(sorted({e.dataset for e in entries})),
        "description": f"harmonize {__version__} datalist",
        "modality": {str(c): name for c, name in enumerate(shared)},
        "base_dir": None if base_dir is None else Path(base_dir).resolve().as_posix(),
        "training": [], "validation": [], "testing": [],
    }
    for entry, order, own in zip(entries, orders, names):
        read_case(entry, ras=False, image_voxels=False)  # the one reading layer's checks
        if entry.split not in KEYS:
            raise ExportError(f"record has no split ({entry.split!r})", dataset=entry.dataset,
                              case=entry.case_id, file=entry.manifest,
                              hint="regenerate the manifest with `harmonize manifest` or "
                                   "`harmonize run`")
        item = datalist_item(entry, base_dir, order)
        item["channels"] = own
        doc[KEYS[entry.split]].append(item)
    doc["numTraining"] = len(doc["training"])
    doc["numValidation"] = len(doc["validation"])
    doc["numTest"] = len(doc["testing"])
    return doc


def _channel_plan(entries: Sequence[Entry], channels: Sequence[str] | None
                  ) -> tuple[list[list[str]], list[list[int]]]:
    """Per entry its channel names and, for each, its own channel index (image file).

    Default: every channel of the entry, canonical order (a 4D file keeps its file order: the
    datalist cannot reorder voxels). ``channels``: exactly those, in that order, in every entry."""
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
        return [list(names) for _ in entries], plan
    found = [record_channels(r) for r in records]
    union_channels([(r.dataset, n) for r, n in zip(records, found)], error=ExportError)
    names_out: list[list[str]] = []
    plan = []
    for record, own, whole in zip(records, found, four_d):
        count = channel_count(record)
        if own is None:  # one dataset without channel names: by position
            names_out.append([f"{record.modality}{c}" for c in range(count)])
            plan.append(list(range(count)))
            continue
        ordered = own if whole else load_channels().order(own)
        names_out.append(ordered)
        plan.append([own.index(n) for n in ordered])
    first = next(i for i, n in enumerate(names_out))
    for i, own_names in enumerate(names_out):
        if own_names != names_out[first]:  # LoadImaged stacks by position: channel c must agree
            a, b = entries[first], entries[i]
            raise ExportError(
                f"datasets {a.dataset!r} (channels {names_out[first]}) and {b.dataset!r} "
                f"(channels {own_names}) cannot share a datalist: MONAI stacks an item's "
                "channels by position, so channel c would be a different sequence per dataset",
                dataset=b.dataset, case=b.case_id,
                hint="pass --channels with channels every dataset has (one file per channel), "
                     "export the datasets separately, or use `harmonize export nnunet`, which "
                     "writes every channel in canonical order")
    return names_out, plan


def export_monai(manifests: Sequence[Path] | Path, out: Path, base_dir: Path | None = None,
                 channels: Sequence[str] | None = None) -> dict[str, Any]:
    """Write the datalist for ``manifests`` to ``out`` (a .json file) and return it;
    ``channels`` chooses the channels (names or synonyms, default all, canonical order)."""
    out = Path(out)
    if out.suffix.lower() != ".json":
        raise ExportError("the datalist must be a .json file", file=out,
                          hint="pass --out datalist.json")
    doc = build_datalist(load_entries(manifests), base_dir, channels)
    write_text_atomic(out, jsonio.dumps(doc, indent=1) + "\n")
    return doc
