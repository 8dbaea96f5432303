"""Official splits of a YAML-only dataset: from the descriptor's ids, a file of the release, a
``{split}`` folder, or the layout group.

:class:`OfficialSplits` answers one case's split in that order of precedence (``split_ids``,
``split_file``, the ``{split}`` placeholder's text through ``split_names``, the group's
``split``). A split file that is missing, unreadable or names an unknown split is a
:class:`~harmonize.errors.DiscoveryError` naming the file, so a wrong split never passes silently.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmonize.errors import DiscoveryError
from harmonize.gate import confine_template
from harmonize.plugin.case import SPLITS
from harmonize.plugin.descriptor import Descriptor, SplitFile


@dataclass(frozen=True)
class OfficialSplits:
    """The split sources of one dataset root; :meth:`of` gives one case's split."""

    names: dict[str, str]
    by_id: dict[str, str]
    from_file: dict[str, str]
    file_by: str

    def of(self, case_id: str, patient_id: str, folder: str | None, group: str | None
           ) -> str | None:
        """The case's official split; a ``{split}`` folder text that names no split is a
        :class:`ValueError` with the text (the caller reports it)."""
        if case_id in self.by_id:
            return self.by_id[case_id]
        key = patient_id if self.file_by == "patient" else case_id
        if key in self.from_file:
            return self.from_file[key]
        if folder is not None:
            split = self.names.get(folder, folder)
            if split not in SPLITS:
                raise ValueError(folder)
            return split
        return group


def official_splits(desc: Descriptor, root: Path) -> OfficialSplits:
    """Read the descriptor's split sources under ``root`` (the split file, if any, now)."""
    by_id = {case: split for split, ids in desc.split_ids.items() for case in ids}
    spec = desc.split_file
    from_file = _read_split_file(desc, root, spec) if spec is not None else {}
    return OfficialSplits(dict(desc.split_names), by_id, from_file,
                          spec.by if spec is not None else "case")


def _read_split_file(desc: Descriptor, root: Path, spec: SplitFile) -> dict[str, str]:
    path = confine_template(spec.path, root, template=spec.path, dataset=desc.id)

    def fail(message: str, hint: str) -> DiscoveryError:
        return DiscoveryError(message, dataset=desc.id, file=path, hint=hint)

    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise fail(f"cannot read the split file: {exc.strerror or exc}",
                   f"the descriptor's split_file.path says the release has {spec.path}; "
                   "check --root and the release") from None
    except UnicodeDecodeError as exc:
        raise fail(f"split file is not UTF-8 text: {exc}", "pass the release's own file") from None
    try:
        pairs = list(_pairs(path.suffix.lower(), text, spec))
    except (ValueError, KeyError, TypeError) as exc:
        raise fail(f"cannot read the split file: {exc}",
                   "check split_file in the descriptor against the file's format") from None
    pattern = re.compile(spec.id_pattern) if spec.id_pattern else None
    out: dict[str, str] = {}
    for raw, name in pairs:
        found = pattern.search(raw) if pattern is not None else None
        if pattern is not None and found is None:
            raise fail(f"entry {raw!r} does not match split_file.id_pattern {spec.id_pattern!r}",
                       "fix id_pattern so it finds the id in every entry")
        ident = found.group("id") if found is not None else raw.strip()
        split = desc.split_names.get(name, name)
        if split not in SPLITS:
            raise fail(f"split {name!r} (for {ident!r}) is not train, val or test",
                       f"map it in the descriptor: split_names: {{{name}: train|val|test}}")
        if out.setdefault(ident, split) != split:
            raise fail(f"{ident!r} is listed in two splits ({out[ident]} and {split})",
                       "the release's split file contradicts itself; report it upstream")
    return out


def _pairs(suffix: str, text: str, spec: SplitFile) -> list[tuple[str, str]]:
    """(id text, split name) for every entry of the file."""
    if suffix in (".csv", ".tsv"):
        rows = csv.DictReader(text.splitlines(),
                              delimiter=spec.delimiter or ("\t" if suffix == ".tsv" else ","))
        columns = [spec.id_column, spec.split_column]
        missing = [c for c in columns if c not in (rows.fieldnames or [])]
        if missing:
            raise ValueError(f"no column(s) {missing}; the file has {rows.fieldnames}")
        return [(row[spec.id_column or ""], row[spec.split_column or ""]) for row in rows]
    if suffix == ".txt":
        return _text_pairs(text, spec.split)
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a JSON split file is an object: split name -> list of ids")
    pairs = []
    for name, entries in data.items():
        if not isinstance(entries, list):
            continue  # other keys of the file (e.g. dataset.json's "name")
        for entry in entries:
            pairs.append((_entry_id(entry, spec), name))
    return pairs


def _text_pairs(text: str, split: str | None) -> list[tuple[str, str]]:
    """One id per line, all in ``split``; without it, sections opened by ``<name>:`` lines
    (blank lines ignored)."""
    pairs, section = [], split
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        if split is None and line.endswith(":"):
            section = line[:-1].strip()
            continue
        if section is None:
            raise ValueError(f"id {line!r} comes before any '<split name>:' line")
        pairs.append((line, section))
    return pairs


def _entry_id(entry: Any, spec: SplitFile) -> str:
    if isinstance(entry, dict) and spec.id_key is not None:
        entry = entry[spec.id_key]
    if not isinstance(entry, str):
        raise ValueError(f"entry {entry!r} is not an id string"
                         + ("" if spec.id_key else "; set split_file.id_key for object entries"))
    return entry
