"""MONAI Decathlon-style datalist (``monai.data.load_decathlon_datalist``).

``{"training": [...], "validation": [...], "testing": [...]}`` from the manifest's train, val
and test splits. Each item has ``image`` (one path, or a list of one path per channel, which
MONAI's ``LoadImaged`` stacks) and ``label`` (omitted for unlabelled cases), plus ``case_id``,
``dataset``, ``patient_id`` and ``labels`` (canonical name -> mask values: the mask is the
record's own file, merges are value sets). Paths are absolute, or relative to ``base_dir``; pass
the same folder as ``base_dir`` to ``load_decathlon_datalist`` (its default is the datalist's
own folder). No volume is read or written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harmonize import __version__
from harmonize.export import Entry, ExportError, load_entries, output_path
from harmonize.files import write_text_atomic

KEYS = {"train": "training", "val": "validation", "test": "testing"}


def datalist_item(entry: Entry, base_dir: Path | None) -> dict[str, Any]:
    images = [output_path(p, base_dir) for p in entry.image_paths()]
    item: dict[str, Any] = {"image": images[0] if len(images) == 1 else images}
    mask = entry.mask_path()
    if mask is not None:
        item["label"] = output_path(mask, base_dir)
    item.update({
        "case_id": entry.case_id, "dataset": entry.dataset, "patient_id": entry.record.patient_id,
        "labels": {name: list(values) for name, values in entry.record.labels.items()},
    })
    return item


def build_datalist(entries: Sequence[Entry], base_dir: Path | None = None) -> dict[str, Any]:
    """The datalist document for ``entries`` (every record needs a split)."""
    doc: dict[str, Any] = {
        "name": "+".join(sorted({e.dataset for e in entries})),
        "description": f"harmonize {__version__} datalist",
        "modality": {str(c): name for c, name in enumerate(_channels(entries[0]))},
        "base_dir": None if base_dir is None else Path(base_dir).resolve().as_posix(),
        "training": [], "validation": [], "testing": [],
    }
    for entry in entries:
        if entry.split not in KEYS:
            raise ExportError(f"record has no split ({entry.split!r})", dataset=entry.dataset,
                              case=entry.case_id, file=entry.manifest,
                              hint="regenerate the manifest with `harmonize manifest` or "
                                   "`harmonize run`")
        doc[KEYS[entry.split]].append(datalist_item(entry, base_dir))
    doc["numTraining"] = len(doc["training"])
    doc["numValidation"] = len(doc["validation"])
    doc["numTest"] = len(doc["testing"])
    return doc


def _channels(entry: Entry) -> list[str]:
    record = entry.record
    if record.channels:
        return list(record.channels)
    return [record.modality]


def export_monai(manifests: Sequence[Path] | Path, out: Path,
                 base_dir: Path | None = None) -> dict[str, Any]:
    """Write the datalist for ``manifests`` to ``out`` (a .json file) and return it."""
    out = Path(out)
    if out.suffix.lower() != ".json":
        raise ExportError("the datalist must be a .json file", file=out,
                          hint="pass --out datalist.json")
    doc = build_datalist(load_entries(manifests), base_dir)
    write_text_atomic(out, json.dumps(doc, indent=1) + "\n")
    return doc
