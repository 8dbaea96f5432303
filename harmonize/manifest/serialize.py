"""The one (de)serializer of manifest records: a :class:`ManifestRecord` as a schema-version-3
line, and any supported line (1, 2 or 3) as the record's fields.

In memory a record keeps its Python shapes (``labels`` a dict of name -> values, ``intensity`` a
dict whose ``clip``/``offset``/``scale`` are lists for multi-channel images, ``metadata`` a dict).
On disk (v3) every field has one type whatever the dataset (:data:`~harmonize.manifest.columns.
COLUMNS`): ``image`` is always a list, ``labels`` a list of ``{name, values}``, ``intensity`` one
object per channel with the same keys for CT and MR, ``operations`` ``{op, params}``,
``provenance`` ``{name, version}`` pairs, and ``metadata``, ``settings`` and any engine field the
schema does not type (``extra``) JSON text. Floats are written at full precision (``repr``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harmonize.manifest.columns import COLUMNS, coerce, uncoerce
from harmonize.manifest.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from harmonize.manifest.records import ManifestRecord

#: Engine fields a record keeps in ``extra`` in memory that v3 gives a typed column.
TYPED_EXTRA = ("fingerprint", "instances", "original", "operations", "intensity", "settings",
               "provenance")
#: Intensity keys that hold one value per channel (a list) for multi-channel images.
PER_CHANNEL = ("clip", "offset", "scale")


def encode(record: ManifestRecord) -> dict[str, Any]:
    """The record as a v3 manifest line (JSON types, fields in :data:`COLUMNS` order).

    Raises ``ValueError`` naming the field when a value cannot take its column's type."""
    # a shallow view: coerce() builds every list and object of the line anew (no deep copy)
    data = {name: getattr(record, name) for name in record.__dataclass_fields__}
    extra: dict[str, Any] = dict(data.pop("extra"))
    typed = {k: extra.pop(k) for k in TYPED_EXTRA if k in extra}
    image = data["image"]
    data.update(typed)
    data.update(
        schema_version=SCHEMA_VERSION,
        image=[image] if isinstance(image, str) else image,
        labels=[{"name": name, "values": values} for name, values in data["labels"].items()],
        intensity=None if "intensity" not in typed else intensity_rows(
            typed["intensity"], channels=data["shape"][3] if len(data["shape"]) == 4 else 1),
        provenance=None if "provenance" not in typed else [
            {"name": k, "version": v} for k, v in typed["provenance"].items()],
        extra=extra or None,
    )
    try:
        return {name: coerce(data.get(name), col, name) for name, col in COLUMNS.items()}
    except ValueError as exc:
        raise ValueError(f"{record.dataset}/{record.case_id}: {exc}") from None


def decode(data: Mapping[str, Any]) -> dict[str, Any]:
    """A v3 line as the record's in-memory fields (typed engine fields back in ``extra``, keys
    the schema does not know kept in ``extra``)."""
    out = {name: uncoerce(data.get(name), col) for name, col in COLUMNS.items()}
    extra: dict[str, Any] = out.pop("extra") or {}
    extra.update({k: v for k, v in data.items() if k not in COLUMNS})
    image = out["image"] or []
    out["image"] = image[0] if len(image) == 1 else image
    out["labels"] = {item["name"]: item["values"] for item in out["labels"] or []}
    for key in ("label", "annotated", "same_patient_as"):
        out[key] = out[key] or []
    out["metadata"] = out["metadata"] or {}
    if out["source"] is not None:
        out["source"].setdefault("label", None)
    if out["intensity"] is not None:
        out["intensity"] = intensity_params(out["intensity"])
    if out["provenance"] is not None:
        out["provenance"] = {p["name"]: p["version"] for p in out["provenance"]}
    for key in TYPED_EXTRA:
        value = out.pop(key)
        if value is not None:
            extra[key] = value
    return {**out, "extra": extra}


def intensity_rows(params: Mapping[str, Any], *, channels: int) -> list[dict[str, Any]]:
    """The intensity mapping as one object per channel (``channel`` = its position in the
    image): :data:`PER_CHANNEL` keys split by channel, the others repeated. A mapping that
    changed nothing (``method`` none) gives ``channels`` rows."""
    if not params:
        return []
    listed = [k for k in PER_CHANNEL if isinstance(params.get(k), list)
              and (k != "clip" or any(isinstance(c, list) for c in params[k]))]  # or None
    count = len(params[listed[0]]) if listed else (
        channels if params.get("method", "none") == "none" else 1)
    return [{"channel": c, **{k: (v[c] if k in listed else v) for k, v in params.items()}}
            for c in range(count)]


def intensity_params(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The inverse of :func:`intensity_rows`: per-channel keys become lists when there are
    several channels (the in-memory shape :func:`~harmonize.engine.intensity.undo_intensity`
    reads)."""
    if not rows:
        return {}
    first = {k: v for k, v in rows[0].items() if k != "channel"}
    if len(rows) == 1 or first.get("method", "none") == "none":
        return first
    for key in PER_CHANNEL:
        if key in first:
            first[key] = [row.get(key) for row in rows]
    return first
