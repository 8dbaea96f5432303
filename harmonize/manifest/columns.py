"""The column types of a schema-version-3 manifest line: one type per field, whatever the dataset.

:data:`COLUMNS` is the one statement of the v3 layout. The serializer
(:mod:`harmonize.manifest.serialize`) coerces every value to it on writing, so a collection of
manifests is one table (Hugging Face ``datasets``, ``pyarrow.json``, pandas); the Parquet export
(:mod:`harmonize.export.parquet`) derives its explicit Arrow schema from it (:func:`arrow_schema`).

A type is a :class:`Col`: a scalar (``str``, ``int``, ``float``, ``json`` = a JSON object written
as text, for free per-dataset data), a ``list`` of one type, or a ``struct`` with fixed fields in a
fixed order. Every value may be null (a ``sparse`` struct's null fields are keys it lacks). A struct with ``rest`` keeps keys outside its fields as JSON
text in that field, so nothing a plugin or the engine adds is lost or changes a column's type.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harmonize import jsonio


@dataclass(frozen=True)
class Col:
    """A column type (see the module doc)."""

    kind: str  # "str" | "int" | "float" | "json" | "list" | "struct"
    item: Col | None = None
    fields: tuple[tuple[str, Col], ...] = field(default=())
    rest: str | None = None
    sparse: bool = False  # a struct whose null fields are left out on reading


STR, INT, FLOAT, JSON = Col("str"), Col("int"), Col("float"), Col("json")


def list_of(item: Col) -> Col:
    return Col("list", item=item)


def struct(rest: str | None = None, sparse: bool = False, **fields: Col) -> Col:
    return Col("struct", fields=tuple(fields.items()), rest=rest, sparse=sparse)


_FILE = struct(path=STR, sha256=STR)
_STATS = struct(mean=FLOAT, std=FLOAT, median=FLOAT, min=FLOAT, max=FLOAT,
                percentile_00_5=FLOAT, percentile_99_5=FLOAT, n=INT)
#: one channel's intensity mapping ``y = (clip(x, *clip) - offset) / scale``
INTENSITY_CHANNEL = struct(
    channel=INT, method=STR, scaling=STR, clip=list_of(FLOAT), offset=FLOAT, scale=FLOAT,
    percentiles=list_of(FLOAT), window_source=STR, modality=STR, reason=STR,
    dataset_stats=_STATS, more=JSON, rest="more", sparse=True,
)

#: Every field of a v3 line, in the order written.
COLUMNS: dict[str, Col] = {
    "schema_version": INT, "stage": STR, "dataset": STR, "case_id": STR, "patient_id": STR,
    "modality": STR, "image": list_of(STR), "mask": STR, "label": list_of(STR),
    "labels": list_of(struct(name=STR, values=list_of(INT))),
    "annotated": list_of(STR), "official_split": STR, "split": STR,
    "shape": list_of(INT), "spacing": list_of(FLOAT), "orientation": STR,
    "source": struct(images=list_of(_FILE), label=_FILE, channels=list_of(STR), more=JSON,
                     rest="more", sparse=True),
    "channels": list_of(STR), "affine": list_of(list_of(FLOAT)), "ct_window": list_of(FLOAT),
    "same_patient_as": list_of(STR), "metadata": JSON,
    "fingerprint": STR,
    "instances": list_of(struct(
        value=INT, voxels=INT, volume_ml=FLOAT, mean_hu=FLOAT, long_axis_mm=FLOAT,
        short_axis_mm=FLOAT, axial_slice=INT, slices=INT, centroid_mm=list_of(FLOAT),
        attributes=JSON, rest="attributes")),
    "original": struct(shape=list_of(INT), spacing=list_of(FLOAT), orientation=STR,
                       affine=list_of(list_of(FLOAT)), dtype=STR),
    "operations": list_of(struct(op=STR, params=JSON, rest="params")),
    "intensity": list_of(INTENSITY_CHANNEL),
    "settings": JSON,
    "provenance": list_of(struct(name=STR, version=STR)),
    "extra": JSON,
}


def json_text(value: Mapping[str, Any]) -> str:
    """A JSON object as compact text (the ``json`` column type); floats round-trip (``repr``)."""
    return jsonio.dumps(dict(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def coerce(value: Any, col: Col, where: str = "") -> Any:
    """``value`` as ``col`` says (ints of a float column become floats, struct keys in order and
    all present); a value that cannot take the type is a ``ValueError`` naming ``where``."""
    if value is None:
        return None
    kind = col.kind
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected text, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{where}: {number} is not a finite number")
        return number
    if kind == "json":
        if isinstance(value, str):
            return value
        return json_text(value)
    if kind == "list":
        assert col.item is not None
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return [coerce(v, col.item, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object, got {value!r}")
    names = {name for name, _ in col.fields}
    out = {name: coerce(value.get(name), sub, f"{where}.{name}") for name, sub in col.fields
           if name != col.rest}
    others = {k: v for k, v in value.items() if k not in names}
    if col.rest is not None:
        out[col.rest] = json_text(others) if others else None
    elif others:
        raise ValueError(f"{where}: unexpected keys {sorted(others)}")
    return out


@functools.cache
def _plain(col: Col) -> bool:
    """True for scalars and (nested) lists of scalars other than ``json``: read as they are."""
    if col.kind == "list":
        assert col.item is not None
        return _plain(col.item)
    return col.kind in ("str", "int", "float")


def uncoerce(value: Any, col: Col) -> Any:
    """The inverse of :func:`coerce` for reading: ``json`` text parsed, a struct's ``rest``
    merged back, a ``sparse`` struct's null fields left out."""
    if value is None or _plain(col):
        return value
    if col.kind == "json":
        return json.loads(value) if isinstance(value, str) else value
    if col.kind == "list":
        assert col.item is not None
        return [uncoerce(v, col.item) for v in value]
    if col.kind != "struct":
        return value
    out: dict[str, Any] = {}
    for name, sub in col.fields:
        item = uncoerce(value.get(name), sub)
        if name == col.rest:
            out.update(item or {})
        elif item is not None or not col.sparse:
            out[name] = item
    return out


def arrow_type(col: Col) -> Any:
    """The Arrow type of ``col`` (``json`` is a string column). Needs ``pyarrow``."""
    import pyarrow as pa

    if col.kind in ("str", "json"):
        return pa.string()
    if col.kind == "int":
        return pa.int64()
    if col.kind == "float":
        return pa.float64()
    if col.kind == "list":
        assert col.item is not None
        return pa.list_(arrow_type(col.item))
    return pa.struct([pa.field(name, arrow_type(sub)) for name, sub in col.fields])


def arrow_schema() -> Any:
    """The Arrow schema of a manifest table: :data:`COLUMNS`, every field nullable."""
    import pyarrow as pa

    return pa.schema([pa.field(name, arrow_type(col)) for name, col in COLUMNS.items()])


def hf_features() -> Any:
    """:func:`arrow_schema` as Hugging Face ``datasets.Features``, for
    ``datasets.load_dataset("json", data_files=manifests, features=hf_features())``: ``datasets``
    takes a JSON collection's types from its first file, where a field that is null or empty in
    every line (a CT window in an MR dataset) has no type. Needs ``datasets``."""
    import datasets

    return datasets.Features.from_arrow_schema(arrow_schema())
