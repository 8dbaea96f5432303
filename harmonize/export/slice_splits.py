"""Which split each case of a 2D slices export goes to (``--split-mode``).

Three modes:

* ``default`` (built in, the default): the seeded mode whose ``datasets`` list names every
  exported record's dataset (a dataset's published 2D split, e.g. the seed's ``random.seed(42)``
  split for the seed's dataset), otherwise ``manifest``; :func:`resolve_split_mode`;
* ``manifest`` (built in): the split recorded on each record; a record without one
  is an :class:`~harmonize.export.ExportError`.
* a *seeded case split* (:func:`seeded_case_splits`): ``random.Random(seed)`` shuffles the sorted
  case keys, the first 70 % go to train, the next 10 % to val (both rounded down), the rest to test.
  It splits cases, not patients; :func:`case_splits` warns when a patient lands in two splits.

Seeded modes are named conventions and therefore data: the ``slice_split_modes`` section of
``registry/presets.yaml`` gives each its name (what users pass to ``--split-mode``), its seed, a
summary and its source, and optionally the ``datasets`` it is the default for
(:class:`SeededSplitMode`, :func:`seeded_split_modes`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harmonize.errors import DescriptorError
from harmonize.export import Entry, ExportError
from harmonize.manifest.records import SPLITS
from harmonize.yamlio import load_registry

MANIFEST_MODE, DEFAULT_MODE = "manifest", "default"
TRAIN_FRACTION, VAL_FRACTION = 0.7, 0.1
_MODE_KEYS = {"seed", "summary", "source"}
_OPTIONAL_KEYS = {"datasets"}


@dataclass(frozen=True)
class SeededSplitMode:
    """A named seeded case split: the name users type, the shuffle's seed, its provenance, and the
    dataset ids whose exports use it by default (``--split-mode default``)."""

    name: str
    seed: int
    summary: str
    source: str
    datasets: tuple[str, ...] = ()


def parse_split_modes(data: Any,
                      source: str = "registry/presets.yaml") -> dict[str, SeededSplitMode]:
    """Name -> :class:`SeededSplitMode` from a ``slice_split_modes`` mapping; every entry needs an
    integer ``seed`` and ``summary``/``source`` texts, may have ``datasets`` (a list of dataset
    ids, each the default of at most one mode), and may not be named ``manifest`` or
    ``default``."""

    def bad(message: str) -> DescriptorError:
        return DescriptorError(f"slice_split_modes: {message}", file=source)

    if not isinstance(data, dict):
        raise bad("must map split-mode names to entries")
    modes: dict[str, SeededSplitMode] = {}
    owner: dict[str, str] = {}
    for name, entry in data.items():
        if str(name) in (MANIFEST_MODE, DEFAULT_MODE):
            raise bad(f"{name!r} is a built-in mode; choose another name")
        if (not isinstance(entry, dict) or not _MODE_KEYS <= set(entry) <= _MODE_KEYS | _OPTIONAL_KEYS
                or type(entry["seed"]) is not int
                or not all(isinstance(entry[k], str) for k in ("summary", "source"))):
            raise bad(f"{name!r} needs exactly an integer 'seed', a 'summary' and a 'source' "
                      "(and optionally 'datasets')")
        datasets = entry.get("datasets", [])
        if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
            raise bad(f"{name!r}: 'datasets' must be a list of dataset ids")
        for dataset in datasets:
            if dataset in owner:
                raise bad(f"dataset {dataset!r} is the default of both {owner[dataset]!r} and "
                          f"{name!r}")
            owner[dataset] = str(name)
        modes[str(name)] = SeededSplitMode(str(name), entry["seed"], entry["summary"],
                                           entry["source"], tuple(datasets))
    return modes


def seeded_split_modes() -> dict[str, SeededSplitMode]:
    """The seeded split modes named in the installed ``registry/presets.yaml``."""
    return parse_split_modes(load_registry("presets.yaml").get("slice_split_modes"))


def split_modes() -> tuple[str, ...]:
    """Every accepted ``--split-mode``: ``default``, ``manifest``, then the registry's seeded
    modes."""
    return (DEFAULT_MODE, MANIFEST_MODE, *seeded_split_modes())


def resolve_split_mode(mode: str, datasets: Sequence[str]) -> str:
    """The mode ``default`` stands for given the exported ``datasets``: the seeded mode whose
    ``datasets`` name all of them, else ``manifest``. Any other mode is returned unchanged."""
    if mode != DEFAULT_MODE:
        return mode
    for seeded in seeded_split_modes().values():
        if datasets and set(datasets) <= set(seeded.datasets):
            return seeded.name
    return MANIFEST_MODE


def seeded_case_splits(keys: Sequence[str], seed: int) -> dict[str, list[str]]:
    """Split -> sorted keys: ``random.Random(seed)`` shuffles the sorted keys (the same stream as
    ``random.seed(seed); random.shuffle(ids)``); the first 70 % train, the next 10 % val (both
    rounded down), the rest test (489 keys -> 342/48/99)."""
    ids = sorted(keys)
    random.Random(seed).shuffle(ids)
    n_train, n_val = int(len(ids) * TRAIN_FRACTION), int(len(ids) * VAL_FRACTION)
    return {"train": sorted(ids[:n_train]), "val": sorted(ids[n_train:n_train + n_val]),
            "test": sorted(ids[n_train + n_val:])}


def case_splits(entries: Sequence[Entry], mode: str) -> tuple[dict[str, str], list[str]]:
    """Export key -> split, and warnings. ``mode`` is ``manifest`` or a seeded mode's name
    (resolve ``default`` first with :func:`resolve_split_mode`)."""
    seeded = seeded_split_modes()
    if mode != MANIFEST_MODE and mode not in seeded:
        raise ExportError(f"unknown split mode {mode!r}",
                          hint=f"use one of {split_modes()}")
    warnings: list[str] = []
    if mode in seeded:
        splits = seeded_case_splits([e.key for e in entries], seeded[mode].seed)
        of = {key: split for split, keys in splits.items() for key in keys}
        patients: dict[str, set[str]] = {}
        for entry in entries:
            patients.setdefault(entry.record.patient_key, set()).add(of[entry.key])
        mixed = sorted(p for p, s in patients.items() if len(s) > 1)
        if mixed:
            warnings.append(f"{mode} splits cases, not patients: {len(mixed)} patient(s) have "
                            f"cases in several splits (e.g. {mixed[0]}); use --split-mode manifest")
        return of, warnings
    of = {}
    for entry in entries:
        if entry.split not in SPLITS:
            raise ExportError(
                f"record has no split ({entry.split!r})", dataset=entry.dataset,
                case=entry.case_id, file=entry.manifest,
                hint="regenerate the manifest with `harmonize manifest` or `harmonize run`, "
                     "or pass a seeded --split-mode (" + ", ".join(seeded) + ")",
            )
        of[entry.key] = entry.split
    return of, warnings
