"""The dataset catalogue of ``harmonize plugins``: one row per registered dataset, shown as a
compact table (one line per dataset, fits an 80-column terminal), a table of label lists
(``--labels``), JSON (``--format json``: every field) or Markdown (README's catalogue)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from harmonize.errors import HarmonizeError
from harmonize.plugin.catalog import Catalog

#: Width of the licence column in a narrow terminal (the other columns keep their width).
MIN_LICENCE = 12
#: Widest source column (built-in plugins say ``built-in``; a package ``<name> <version>``).
MAX_SOURCE = 24
#: Longest label list shown in a Markdown row before "(+N more)".
MARKDOWN_LABELS = 12


def catalogue_rows(catalog: Catalog) -> tuple[list[dict[str, Any]], list[HarmonizeError]]:
    """One JSON-ready row per dataset (strings, counts, label lists, ``None``), and the errors of
    plugins whose descriptor cannot be loaded (those datasets get no row)."""
    rows: list[dict[str, Any]] = []
    broken: list[HarmonizeError] = []
    for dataset_id, plugin in catalog.datasets.items():
        try:
            desc = plugin.descriptor
        except HarmonizeError as exc:
            broken.append(exc)
            continue
        rows.append({
            "id": dataset_id, "name": desc.name, "source": plugin.source,
            "modality": desc.modality, "region": desc.region, "cases": desc.cases,
            "labels": plugin.label_names, "licence": desc.licence, "citation": desc.citation,
            "homepage": desc.homepage, "expected_root": desc.expected_root,
            "download": desc.download, "sat_ds": list(desc.sat_ds),
        })
    return rows, broken


def compact_table(rows: list[dict[str, Any]], width: int) -> Table:
    """One line per dataset: id, modality, cases, the number of labels, source and licence,
    ``width`` characters wide at most (at least 80 is assumed readable).

    Every cell is one line: the licence gets the width the other columns leave (at least
    :data:`MIN_LICENCE`) and is cut with an ellipsis; a source longer than :data:`MAX_SOURCE`
    (a third-party distribution and version) is cut the same way.
    """
    cells = [[row["id"], row["modality"], "?" if row["cases"] is None else str(row["cases"]),
              str(len(row["labels"])), row["source"]] for row in rows]  # ?: count not stated
    headers = ["id", "modality", "cases", "labels", "source"]
    widths = [max([len(h), *(len(c[k]) for c in cells)]) for k, h in enumerate(headers)]
    widths[-1] = min(widths[-1], MAX_SOURCE)
    gaps = 2 * len(headers)  # one space either side of each inner column edge
    licence = max(MIN_LICENCE, width - sum(widths) - gaps)
    table = Table(title=f"{len(rows)} datasets (--labels: label lists; --format json: "
                        "everything)",
                  title_justify="left", box=None, pad_edge=False, header_style="bold")
    for header, size in zip(headers, widths, strict=True):
        table.add_column(header, no_wrap=True, overflow="ellipsis", min_width=size,
                         max_width=size, justify="right" if header in ("cases", "labels")
                         else "left")
    table.add_column("licence", no_wrap=True, overflow="ellipsis", max_width=licence)
    for row, cell in zip(rows, cells, strict=True):
        table.add_row(*cell, row["licence"])
    return table


def labels_table(rows: list[dict[str, Any]]) -> Table:
    """Every dataset's canonical label names, wrapped at word boundaries (``--labels``)."""
    table = Table(title=f"{len(rows)} datasets and their labels (canonical names)",
                  title_justify="left", box=None, pad_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True)
    table.add_column("labels", ratio=1)
    for row in rows:
        table.add_row(f"{row['id']} ({len(row['labels'])})", ", ".join(row["labels"]))
    return table


def print_catalogue(console: Console, rows: list[dict[str, Any]], *, labels: bool = False) -> None:
    """The human-readable catalogue: :func:`compact_table`, or :func:`labels_table` with
    ``labels``."""
    console.print(labels_table(rows) if labels else compact_table(rows, console.width))


def short_list(names: list[str], limit: int = MARKDOWN_LABELS) -> str:
    """The first ``limit`` names, then ``(+N more)``."""
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def catalogue_markdown(rows: list[dict[str, Any]]) -> str:
    """The dataset catalogue as a Markdown table (README's table is this output, checked by a test)."""

    def cell(text: object) -> str:
        return str(text or "").replace("|", "\\|").replace("\n", " ")

    lines = [
        "| id | SAT-DS | modality | region | cases | labels | licence | expected folder | "
        "download |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        home = f"[{row['homepage']}]({row['homepage']})" if row["homepage"] else ""
        download = f"`{cell(row['download'])}`" if row["download"] else home
        lines.append(
            f"| `{row['id']}` | {cell(', '.join(row['sat_ds']))} | {row['modality']} | "
            f"{cell(row['region'])} | {row['cases'] or ''} | "
            f"{cell(short_list(row['labels']))} | {cell(row['licence'])} | "
            f"`{cell(row['expected_root'])}` | {download} |"
        )
    return "\n".join(lines) + "\n"


def sat_ds_coverage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every SAT-DS dataset name (``registry/sat-ds.yaml``) with the dataset ids that declare it
    (``sat_ds:``), and the names no id declares."""
    from harmonize.labels.sat_ds import load_sat_ds

    served: dict[str, list[str]] = {name: [] for name in sorted(load_sat_ds(), key=str.lower)}
    for row in rows:
        for name in row["sat_ds"]:
            served.setdefault(name, []).append(row["id"])
    missing = [name for name, ids in served.items() if not ids]
    return {"sat_ds": served, "covered": len(served) - len(missing), "total": len(served),
            "missing": missing}


def sat_ds_table(coverage: dict[str, Any]) -> Table:
    """SAT-DS's datasets and the harmonize ids serving each (``--sat-ds``)."""
    table = Table(title=f"SAT-DS datasets: {coverage['covered']} of {coverage['total']} have a "
                        "harmonize id (its sat_ds: key)",
                  title_justify="left", box=None, pad_edge=False, header_style="bold")
    table.add_column("SAT-DS dataset", no_wrap=True)
    table.add_column("harmonize id(s)", ratio=1)
    for name, ids in coverage["sat_ds"].items():
        table.add_row(name, ", ".join(ids) if ids else "[red]none yet[/red]")
    return table


def show_catalogue(console: Console, rows: list[dict[str, Any]], errors: list[HarmonizeError],
                   *, format: str, labels: bool, sat_ds: bool) -> None:
    """What ``harmonize plugins`` prints for its options (JSON, Markdown or a table)."""
    import sys

    from harmonize.cli.console import print_json

    if sat_ds and format == "json":
        print_json(sat_ds_coverage(rows))
    elif sat_ds:
        console.print(sat_ds_table(sat_ds_coverage(rows)))
    elif format == "json":
        print_json({"datasets": rows, "errors": [e.to_dict() for e in errors]})
    elif format == "markdown":
        sys.stdout.write(catalogue_markdown(rows))
    else:
        print_catalogue(console, rows, labels=labels)
