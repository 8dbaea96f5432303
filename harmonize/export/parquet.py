"""``harmonize export parquet``: a collection of manifests as one Parquet table.

Each row is a record's schema-version-3 line (:meth:`ManifestRecord.to_json`), plus ``manifest``
(the manifest file's name it came from), under the explicit Arrow schema of
:func:`harmonize.manifest.columns.arrow_schema` (types stated, never inferred). Paths (``image``,
``mask``, ``source``'s) are rewritten relative to the Parquet file's folder, so
``Path(table_file).parent / row["image"][0]`` opens the image wherever the collection is. Records
are read through the export loader (:func:`harmonize.export.load_entries`: the manifest reader and
its gate, one stage, each case once). The file is written atomically (temp file + rename); the
CLI holds the output folder's lock. Needs ``pyarrow`` (extra ``table``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmonize.errors import HarmonizeError
from harmonize.export import ExportError, load_entries
from harmonize.files import atomic_path
from harmonize.manifest.build import expand_manifests, relative_path


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise HarmonizeError("the Parquet export needs pyarrow",
                             hint="pip install 'harmonize-med[table]'") from exc
    return pyarrow


@dataclass
class ParquetResult:
    path: Path
    rows: int
    datasets: list[str]
    bytes: int


def table_schema() -> Any:
    """The Parquet table's Arrow schema: the manifest columns, then ``manifest``."""
    pa = _pyarrow()
    from harmonize.manifest.columns import arrow_schema

    return arrow_schema().append(pa.field("manifest", pa.string()))


def _moved(path: str | None, base: Path, folder: Path) -> str | None:
    """A record path (relative to its manifest's folder ``base``) relative to ``folder``."""
    return None if path is None else relative_path(base / path, folder)


def export_parquet(manifests: Sequence[Path], out: Path) -> ParquetResult:
    """Write the records of ``manifests`` (files or folders of manifests) to the Parquet file
    ``out`` (see the module doc). Raises :class:`ExportError` for no record, a stage mix or a
    case given twice or a record file that does not exist (nothing is written then),
    :class:`~harmonize.errors.OutputError` when ``out`` cannot be written."""
    pa = _pyarrow()
    out = Path(out)
    if out.suffix != ".parquet":
        raise ExportError(f"{out} is not a .parquet file name", file=out,
                          hint="pass --out NAME.parquet")
    entries = load_entries(expand_manifests(manifests))
    folder = out.resolve().parent
    rows = []
    for entry in entries:
        for path in [*entry.image_paths(), *filter(None, [entry.mask_path()])]:
            if not path.is_file():
                raise entry.error("a file the record names does not exist", file=path,
                                  hint="export the manifest in the folder `harmonize run` "
                                  "wrote it to, or rerun it")
        row = entry.record.to_json()
        row["image"] = [_moved(p, entry.base, folder) for p in row["image"]]
        row["mask"] = _moved(row["mask"], entry.base, folder)
        source = row["source"]
        for item in [*source["images"], *([source["label"]] if source["label"] else [])]:
            item["path"] = _moved(item["path"], entry.base, folder)
        row["manifest"] = entry.manifest.name
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=table_schema())
    with atomic_path(out) as tmp:
        pa.parquet.write_table(table, tmp, compression="zstd")
    return ParquetResult(path=out, rows=len(rows), datasets=sorted({e.dataset for e in entries}),
                         bytes=out.stat().st_size)
