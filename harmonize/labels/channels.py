"""The channel vocabulary: canonical names of image channels, their synonyms and one order.

Loaded from ``registry/channels.yaml``; the file's order is the canonical channel order, the order
in which the loader stacks channels and every export writes them, whatever order a dataset ships::

    T1 contrast-enhanced:
      modality: MR
      synonyms: [T1ce, T1c, T1gd, T1post]

Lookups ignore case and the separators space ``-`` ``_`` ``.`` ``/`` ``(`` ``)`` (``T1-Gd`` is
``t1gd``); a synonym belongs to exactly one canonical name. A descriptor may add dataset-local
synonyms (``channel_synonyms: {MRI: T1}``) that map its own names onto canonical ones.

Contracts used by the record builders, the loader and the exports:

* :meth:`ChannelVocabulary.canonical` turns a case's channel names into canonical names, or raises
  a :class:`~harmonize.errors.DescriptorError` naming the dataset, the name and the closest names.
  A case without names gets its modality's channel (``CT``, ``PET``, ``MR`` ...).
* :func:`record_channels` gives a manifest record's canonical channels, or ``None`` when they
  cannot be aligned (several channels without names, or a name outside the vocabulary).
* :func:`union_channels` / :func:`common_channels` choose the channel list for mixed datasets and
  :func:`channel_positions` maps a record's channels onto it; datasets that cannot be aligned are
  an error naming both datasets.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

from harmonize.errors import DescriptorError, HarmonizeError
from harmonize.yamlio import load_yaml

_SEPARATORS = re.compile(r"[\s\-_./()]+")
_ENTRY_KEYS = {"synonyms", "modality", "description"}
EXTEND_HINT = ("if it is a known channel under another name, map it in the dataset's descriptor "
               "(channel_synonyms: {{{name}: {target}}}); if it is a new channel, add it to "
               "registry/channels.yaml")


def channel_key(name: str) -> str:
    """Lookup key of a channel name: lowercase without separators (``T1-Gd`` -> ``t1gd``)."""
    return _SEPARATORS.sub("", str(name)).lower()


@dataclass(frozen=True)
class ChannelVocabulary:
    """Canonical channel names in canonical order, with their modality and synonyms."""

    names: tuple[str, ...]
    modalities: Mapping[str, str]
    lookup: Mapping[str, str]
    source: Path | None = None

    def __contains__(self, name: object) -> bool:
        return name in self.modalities

    def get(self, name: str, synonyms: Mapping[str, str] | None = None) -> str | None:
        """Canonical name of ``name`` (dataset-local ``synonyms`` first), or None."""
        for key, target in (synonyms or {}).items():
            if channel_key(key) == channel_key(name):
                return self.lookup.get(channel_key(target))
        return self.lookup.get(channel_key(name))

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` canonical names whose names or synonyms look like ``name``."""
        close = difflib.get_close_matches(channel_key(name), list(self.lookup), n=n * 2, cutoff=0.5)
        return list(dict.fromkeys(self.lookup[c] for c in close))[:n]

    def resolve(
        self, name: str, *, dataset: str | None = None, case: str | None = None,
        file: Path | None = None, synonyms: Mapping[str, str] | None = None,
        error: type[HarmonizeError] = DescriptorError,
    ) -> str:
        """Canonical name of ``name``; ``error`` naming the dataset, the name and the closest
        canonical names otherwise."""
        found = self.get(name, synonyms)
        if found is not None:
            return found
        close = self.closest(name)
        hint = (f"did you mean {', '.join(repr(c) for c in close)}? " if close else "") + \
            EXTEND_HINT.format(name=name, target=close[0] if close else "<canonical name>")
        raise error(
            f"channel name {name!r} is not in the channel vocabulary "
            f"(canonical channels: {', '.join(self.names)})",
            dataset=dataset, case=case, file=file, hint=hint,
        )

    def for_modality(self, modality: str) -> str:
        """The channel of a single-channel image of ``modality`` that names no channel."""
        if modality in self.modalities:
            return modality
        raise DescriptorError(f"modality {modality!r} has no channel in the channel vocabulary",
                              hint="add it to registry/channels.yaml")

    def canonical(
        self, names: Sequence[str] | None, *, modality: str, dataset: str | None = None,
        case: str | None = None, file: Path | None = None,
        synonyms: Mapping[str, str] | None = None,
    ) -> list[str]:
        """A case's canonical channel names, in the case's own (file) order.

        ``names`` None or empty means one channel of ``modality``. A name outside the vocabulary
        or two names for one canonical channel is a :class:`DescriptorError`."""
        if not names:
            return [self.for_modality(modality)]
        out = [self.resolve(n, dataset=dataset, case=case, file=file, synonyms=synonyms)
               for n in names]
        for k, name in enumerate(out):
            if name in out[:k]:
                raise DescriptorError(
                    f"channels {list(names)} name {name!r} twice", dataset=dataset, case=case,
                    file=file, hint="each channel of a case must be a different sequence")
        return out

    def order(self, names: Iterable[str]) -> list[str]:
        """Canonical names sorted in vocabulary order (duplicates once)."""
        rank = {n: k for k, n in enumerate(self.names)}
        return sorted(set(names), key=lambda n: rank[n])


def parse_channels(data: Any, *, source: Path | None = None) -> ChannelVocabulary:
    """Validate the YAML mapping and build a :class:`ChannelVocabulary`."""

    def fail(message: str) -> DescriptorError:
        return DescriptorError(message, file=source, hint="fix registry/channels.yaml")

    if not isinstance(data, dict) or not data:
        raise fail("the channel vocabulary must be a mapping of canonical channel names")
    modalities: dict[str, str] = {}
    lookup: dict[str, str] = {}
    for name, entry in data.items():
        entry = entry or {}
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise fail(f"canonical channel {name!r} must be a non-empty string without outer spaces")
        if not isinstance(entry, dict) or set(entry) - _ENTRY_KEYS:
            raise fail(f"{name!r}: entries take only {sorted(_ENTRY_KEYS)}")
        modality = entry.get("modality")
        if not isinstance(modality, str):
            raise fail(f"{name!r}: 'modality' (CT, CBCT, MR, PET, US, XR) is required")
        modalities[name] = modality
        synonyms = entry.get("synonyms", [])
        if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
            raise fail(f"{name!r}: synonyms must be a list of strings")
        for key in (name, *synonyms):
            norm = channel_key(key)
            if not norm:
                raise fail(f"{name!r}: synonym {key!r} is empty once separators are ignored")
            if norm in lookup:
                raise fail(f"synonym {key!r} of {name!r} is already a name of {lookup[norm]!r} "
                           "(case and separators are ignored)")
            lookup[norm] = name
    return ChannelVocabulary(names=tuple(modalities), modalities=modalities, lookup=lookup,
                             source=source)


def load_channels(path: Path | None = None) -> ChannelVocabulary:
    """Load a channel vocabulary file; without ``path``, the bundled one (cached)."""
    if path is None:
        return _bundled()
    path = Path(path)
    return parse_channels(_read(path), source=path)


@cache
def _bundled() -> ChannelVocabulary:
    resource = Path(str(resources.files("harmonize.registry").joinpath("channels.yaml")))
    return parse_channels(_read(resource), source=resource)


def _read(path: Path) -> Any:
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DescriptorError(f"cannot read the channel vocabulary: {exc}", file=path) from exc


# -- aligning the channels of mixed datasets ------------------------------------------------------

class ChannelRecord(Protocol):
    """What alignment reads of a manifest record."""

    dataset: str
    modality: str
    image: str | list[str]
    shape: list[int]
    channels: list[str] | None


def channel_count(record: ChannelRecord) -> int:
    """Channels of a record's image, from ``channels``, the image list or a 4D shape."""
    if record.channels:
        return len(record.channels)
    if isinstance(record.image, list):
        return len(record.image)
    return int(record.shape[3]) if len(record.shape) == 4 else 1


def record_channels(record: ChannelRecord,
                    vocabulary: ChannelVocabulary | None = None) -> list[str] | None:
    """A record's canonical channels in its image's channel order, or None if they cannot be
    aligned (several channels without names, or a name outside the vocabulary).

    Resolves synonyms (manifests written before names were canonical); a single-channel record
    without names is its modality's channel."""
    vocabulary = vocabulary or load_channels()
    names = list(record.channels or [])
    if not names:
        single = channel_count(record) == 1 and record.modality in vocabulary.modalities
        return [vocabulary.for_modality(record.modality)] if single else None
    out = [vocabulary.get(n) for n in names]
    if any(n is None for n in out) or len(set(out)) != len(out):
        return None
    return [n for n in out if n is not None]


def _unaligned(records: Sequence[tuple[str, list[str] | None]], error: type[HarmonizeError]) -> None:
    """Raise ``error`` when records of several datasets mix and one cannot be aligned."""
    datasets = list(dict.fromkeys(d for d, _ in records))
    bad = next((d for d, names in records if names is None), None)
    if bad is not None and len(datasets) > 1:
        other = next(d for d in datasets if d != bad)
        raise error(
            f"cannot align the channels of {bad} with those of {other}: records of {bad} have "
            "several channels without names, or names outside the channel vocabulary",
            dataset=bad,
            hint=f"give {bad}'s descriptor 'channels:' (or channel_synonyms:) with names from "
                 "registry/channels.yaml and regenerate its manifest, or load it on its own",
        )


def union_channels(records: Sequence[tuple[str, list[str] | None]],
                   wanted: Sequence[str] | None = None, *,
                   error: type[HarmonizeError] = DescriptorError,
                   vocabulary: ChannelVocabulary | None = None) -> list[str]:
    """The channel list for ``(dataset, canonical channels)`` pairs: ``wanted`` resolved, else the
    union in vocabulary order. Unaligned records (None) mixed with another dataset raise ``error``
    naming both datasets."""
    vocabulary = vocabulary or load_channels()
    _unaligned(records, error)
    if wanted is not None:
        return _wanted(wanted, vocabulary, error)
    return vocabulary.order(n for _, names in records for n in names or ())


def common_channels(records: Sequence[tuple[str, list[str] | None]],
                    wanted: Sequence[str] | None = None, *,
                    error: type[HarmonizeError] = DescriptorError,
                    vocabulary: ChannelVocabulary | None = None) -> list[str]:
    """Like :func:`union_channels`, but every record must have every channel (formats that cannot
    mark a channel missing, e.g. nnU-Net): a dataset lacking one is ``error`` naming it and a
    dataset that has it."""
    channels = union_channels(records, wanted, error=error, vocabulary=vocabulary)
    for dataset, names in records:
        missing = [c for c in channels if names is not None and c not in names]
        if missing:
            has = next((d for d, n in records if n and missing[0] in n), None)
            by = f" that {has} has" if has else ""
            raise error(
                f"{dataset} lacks channel(s) {', '.join(missing)}{by} ({dataset} has {names}): "
                "this export needs every channel in every case",
                dataset=dataset,
                hint="choose channels that every dataset has (channels=[...] / --channels), or "
                     "export the datasets separately",
            )
    return channels


def _wanted(wanted: Sequence[str], vocabulary: ChannelVocabulary,
            error: type[HarmonizeError]) -> list[str]:
    if isinstance(wanted, str) or not list(wanted):
        raise error(f"channels must be a non-empty list of channel names, got {wanted!r}",
                    hint=f"use names from: {', '.join(vocabulary.names)}")
    out: list[str] = []
    for name in wanted:
        canonical = vocabulary.resolve(name, error=error)
        if canonical in out:
            raise error(f"channel {name!r} is asked for twice (as {canonical!r})",
                        hint="list each channel once")
        out.append(canonical)
    return out


def channel_positions(names: Sequence[str], channels: Sequence[str]) -> list[int]:
    """For each of a record's channels (``names``), its index in ``channels`` or -1 (not used)."""
    index = {c: k for k, c in enumerate(channels)}
    return [index.get(n, -1) for n in names]


def export_plan(records: Sequence[ChannelRecord], wanted: Sequence[str] | None = None, *,
                error: type[HarmonizeError] = DescriptorError,
                vocabulary: ChannelVocabulary | None = None) -> tuple[list[str], list[list[int]]]:
    """Channels of an export that needs every channel in every case (:func:`common_channels`) and,
    per record, for each of them the record's own channel index.

    Records of one dataset whose channels cannot be aligned keep their own (positional) order,
    named by their names or ``<modality><index>``; ``wanted`` then is an error."""
    vocabulary = vocabulary or load_channels()
    names = [record_channels(r, vocabulary) for r in records]
    pairs = [(r.dataset, n) for r, n in zip(records, names)]
    if any(n is None for n in names) and len({r.dataset for r in records}) == 1:
        if wanted is not None:
            raise error("channels cannot be chosen by name: the records have several channels "
                        "without names", dataset=records[0].dataset,
                        hint="give the dataset's descriptor 'channels:' and regenerate its manifest")
        counts = {channel_count(r) for r in records}
        if len(counts) > 1:
            raise error(f"records have different channel counts {sorted(counts)}",
                        dataset=records[0].dataset, hint="export cases with the same channels")
        first = records[0]
        width = counts.pop()
        own = list(first.channels or []) if len(first.channels or []) == width else [
            f"{first.modality}{c}" for c in range(width)]
        return own, [list(range(width)) for _ in records]
    channels = common_channels(pairs, wanted, error=error, vocabulary=vocabulary)
    return channels, [[(n or []).index(c) for c in channels] for n in names]
