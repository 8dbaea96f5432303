"""``harmonize structures``: the label vocabulary (bundled names plus installed plugins' names)
with synonyms, parents and DICOM codes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from harmonize.cli.console import console, print_error, print_json
from harmonize.errors import HarmonizeError
from harmonize.labels.vocabulary import Vocabulary, load_vocabulary, normalize_name


def structure_rows(vocab: Vocabulary, names: list[str] | None = None) -> list[dict[str, Any]]:
    """One JSON row per canonical name (all, or ``names`` resolved through synonyms, in the
    order given): name, synonyms, parents, where it was defined and its codes (or ``None``)."""
    selected = [vocab.resolve(n) for n in names] if names else vocab.names
    rows = []
    for name in dict.fromkeys(selected):
        codes = vocab.codes.get(name)
        rows.append({
            "name": name,
            "synonyms": sorted(k for k, v in vocab.lookup.items()
                               if v == name and k != normalize_name(name)),
            "parents": list(vocab.parents[name]),
            "origin": vocab.origin(name),
            "codes": codes.to_dict() if codes is not None else None,
        })
    return rows


def register(app: typer.Typer) -> None:
    @app.command("structures")
    def structures_command(
        names: Annotated[list[str] | None, typer.Argument(
            help="Names or synonyms to show (default: every canonical name).")] = None,
        uncoded: Annotated[bool, typer.Option(help="Only structures without DICOM codes.")] = False,
        format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    ) -> None:
        """List the label vocabulary: canonical names, parents and DICOM codes (segment type,
        side modifier, region), from registry/vocabulary.yaml and installed plugins."""
        vocab = load_vocabulary()
        try:
            rows = structure_rows(vocab, names)
        except HarmonizeError as exc:
            print_error(exc)
            raise typer.Exit(2) from exc
        if uncoded:
            rows = [row for row in rows if row["codes"] is None]
        if format == "json":
            print_json({"structures": rows, "coded": sum(r["codes"] is not None for r in rows),
                        "total": len(rows)})
            return
        from rich.table import Table

        coded = sum(r["codes"] is not None for r in rows)
        table = Table(title=f"{len(rows)} structures, {coded} with DICOM codes "
                            "(--format json for categories, meanings, synonyms)",
                      title_justify="left")
        table.add_column("name", no_wrap=True)
        table.add_column("parents", overflow="fold", ratio=1)
        table.add_column("code (type + modifier, in region)", overflow="fold", ratio=2)
        for row in rows:
            codes = vocab.codes.get(row["name"])
            table.add_row(row["name"], ", ".join(row["parents"]),
                          str(codes) if codes is not None else "-")
        console.print(table)
