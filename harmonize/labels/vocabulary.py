"""The shared label vocabulary: canonical structure names, synonyms and a parent/child hierarchy.

Loaded from ``registry/vocabulary.yaml``::

    left kidney:
      synonyms: [kidney_left, Left kidney]
      parents: [kidney]

Names are lowercase English (level codes such as ``vertebra L1`` keep their capitals). A synonym belongs to exactly one canonical name; lookups ignore case,
underscores and repeated spaces. The hierarchy is a DAG (checked on load).

Plugins add names without editing that file: their ``harmonize_vocabulary`` hook returns
:class:`Structure` objects, merged by :meth:`Vocabulary.extend` (a name or synonym defined twice is
an error naming both sources). :func:`load_vocabulary` without a path returns the bundled file plus
every installed plugin's structures.

A structure may carry its DICOM codes (``codes:``, see :mod:`harmonize.labels.codes`), exposed by
:meth:`Vocabulary.code`; two structures never share the same coded identity (type, modifier,
region, region modifier), whether they come from the file or from plugins.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from harmonize.errors import DescriptorError, LabelError, PluginError
from harmonize.labels.codes import StructureCodes, parse_codes
from harmonize.yamlio import load_yaml


def normalize_name(name: str) -> str:
    """Lookup key of a name: lowercase, underscores as spaces, single spaces."""
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().lower()


BUNDLED = "registry/vocabulary.yaml"


@dataclass(frozen=True)
class Structure:
    """A canonical structure name a plugin adds to the vocabulary.

    ``name`` must be new (not a name or synonym of any other source); ``synonyms`` are other
    spellings that resolve to it; ``parents`` are existing names (or names added with it) that
    contain it, e.g. ``Structure("left adrenal gland", ("adrenal_gland_left",), ("adrenal gland",))``;
    ``codes`` are its DICOM codes where they exist (:class:`~harmonize.labels.codes.StructureCodes`).
    """

    name: str
    synonyms: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    description: str = ""
    codes: StructureCodes | None = None

    def __post_init__(self) -> None:
        for attr in ("synonyms", "parents"):
            value = getattr(self, attr)
            if isinstance(value, str) or not all(isinstance(v, str) and v.strip() for v in value):
                raise PluginError(f"structure {self.name!r}: {attr} must be a list of names, "
                                  f"got {value!r}", hint="e.g. synonyms=('kidney_left',)")
            object.__setattr__(self, attr, tuple(value))
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip():
            raise PluginError(f"structure name {self.name!r} must be a non-empty string "
                              "without outer spaces")
        if self.codes is not None and not isinstance(self.codes, StructureCodes):
            raise PluginError(f"structure {self.name!r}: codes must be StructureCodes, got "
                              f"{type(self.codes).__name__}",
                              hint="e.g. StructureCodes(category=Code(...), type=Code(...))")


@dataclass(frozen=True)
class Vocabulary:
    """Canonical names with synonyms and parents; immutable once loaded.

    ``origins`` names where each canonical name was defined (:data:`BUNDLED` or a plugin);
    ``codes`` holds the DICOM codes of the names that have them.
    """

    parents: Mapping[str, tuple[str, ...]]
    lookup: Mapping[str, str]
    source: Path | None = None
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)
    codes: Mapping[str, StructureCodes] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.parents)

    def __reduce__(self) -> str | tuple[Any, ...]:
        """The bundled vocabulary pickles as a reference to it (a DataLoader worker loads its
        own copy once instead of receiving ~500 structures with every dataset)."""
        if self is bundled_vocabulary():
            return (bundled_vocabulary, ())
        return super().__reduce__()

    def __contains__(self, name: object) -> bool:
        return name in self.parents

    def code(self, name: str) -> StructureCodes | None:
        """The DICOM codes of canonical ``name`` (a synonym is resolved first), or ``None`` when
        it has none; :class:`LabelError` for a name that is not in the vocabulary."""
        return self.codes.get(self.resolve(name))

    def by_code(self, codes: StructureCodes) -> str | None:
        """The canonical name coded as ``codes`` (same type, modifier, region and region
        modifier; the category and meanings are not compared), or ``None``."""
        return next((n for n, c in self.codes.items() if c.key == codes.key), None)

    def resolve(self, name: str, *, dataset: str | None = None, file: Path | None = None) -> str:
        """Canonical name for ``name`` (a canonical name or a synonym); LabelError otherwise."""
        if name in self.parents:
            return name
        found = self.lookup.get(normalize_name(name))
        if found is None:
            close = difflib.get_close_matches(normalize_name(name), list(self.lookup), n=3)
            names = list(dict.fromkeys(self.lookup[c] for c in close))  # synonyms of one name once
            hint = (
                f"did you mean {', '.join(repr(n) for n in names)}? "
                if close
                else ""
            ) + ("if it is new, add it from your plugin's harmonize_vocabulary() hook "
                 "(README: 'Add structure names')")
            raise LabelError(
                f"{name!r} is not a canonical structure name or synonym",
                dataset=dataset,
                file=file,
                hint=hint,
            )
        return found

    def children(self, name: str) -> list[str]:
        return [child for child, parents in self.parents.items() if name in parents]

    def descendants(self, name: str) -> list[str]:
        """Every name below ``name`` in the hierarchy, nearest first."""
        out: list[str] = []
        frontier = [name]
        while frontier:
            nxt = []
            for node in frontier:
                for child in self.children(node):
                    if child not in out:
                        out.append(child)
                        nxt.append(child)
            frontier = nxt
        return out

    def origin(self, name: str) -> str:
        """Where canonical ``name`` was defined."""
        return self.origins.get(name, str(self.source) if self.source else BUNDLED)

    def extend(self, structures: Iterable[Structure], *, source: str) -> Vocabulary:
        """A new vocabulary with ``structures`` added; :class:`PluginError` naming both sources
        when a name or synonym is already defined, and for unknown parents or cycles."""
        parents = dict(self.parents)
        lookup = dict(self.lookup)
        origins = {name: self.origin(name) for name in parents}
        codes = dict(self.codes)
        for structure in structures:
            if not isinstance(structure, Structure):
                raise PluginError(f"{source} returned {type(structure).__name__}, not a Structure",
                                  hint="return harmonize.plugin.Structure objects")
            if structure.name in parents:
                raise _conflict(structure.name, structure.name, source, origins)
            for key in (structure.name, *structure.synonyms):
                owner = lookup.setdefault(normalize_name(key), structure.name)
                if owner != structure.name:
                    raise _conflict(key, owner, source, origins)
            parents[structure.name] = structure.parents
            origins[structure.name] = source
            if structure.codes is not None:
                codes[structure.name] = structure.codes
        for name, ps in parents.items():
            for parent in ps:
                if parent not in parents:
                    raise PluginError(f"structure {name!r} from {origins[name]} has unknown "
                                      f"parent {parent!r}", hint="use a canonical name as parent")

        def fail(message: str) -> PluginError:
            return PluginError(f"{message} (structures from {source})")

        _check_acyclic(parents, fail)
        clash = _code_clash(codes)
        if clash:
            first, second = clash
            raise PluginError(
                f"structure {second!r} from {origins[second]} has the same codes as {first!r} "
                f"from {origins[first]} ({codes[second]})",
                hint="a left/right pair differs by its modifier; give it other codes or use "
                     f"{first!r}")
        return Vocabulary(parents=parents, lookup=lookup, source=self.source, origins=origins,
                          codes=codes)

    def ancestors(self, name: str) -> list[str]:
        out: list[str] = []
        frontier = list(self.parents.get(name, ()))
        while frontier:
            node = frontier.pop(0)
            if node not in out:
                out.append(node)
                frontier.extend(self.parents.get(node, ()))
        return out


def _conflict(key: str, owner: str, source: str, origins: Mapping[str, str]) -> PluginError:
    return PluginError(
        f"structure name {key!r} from {source} is already defined as {owner!r} by "
        f"{origins.get(owner, BUNDLED)}",
        hint="use the existing name in the descriptor's classes, or rename one of them",
    )


def parse_vocabulary(data: Any, *, source: Path | None = None) -> Vocabulary:
    """Validate the YAML mapping and build a :class:`Vocabulary`."""

    def fail(message: str) -> DescriptorError:
        return DescriptorError(message, file=source, hint="fix registry/vocabulary.yaml")

    if not isinstance(data, dict) or not data:
        raise fail("the vocabulary must be a mapping of canonical names")
    parents: dict[str, tuple[str, ...]] = {}
    lookup: dict[str, str] = {}
    codes: dict[str, StructureCodes] = {}
    for name, entry in data.items():
        entry = entry or {}
        if not isinstance(name, str) or not name or name != name.strip():
            raise fail(f"canonical name {name!r} must be a non-empty string without outer spaces")
        unknown = set(entry) - {"synonyms", "parents", "description", "codes"}
        if unknown:
            raise fail(f"{name!r}: unknown key(s) {sorted(unknown)}")
        parents[name] = tuple(entry.get("parents", ()))
        if "codes" in entry:
            codes[name] = parse_codes(entry["codes"], fail=_prefixed(fail, f"{name!r}: "))
        for key in (name, *entry.get("synonyms", ())):
            norm = normalize_name(str(key))
            if norm in lookup and lookup[norm] != name:
                raise fail(f"synonym {key!r} is claimed by both {lookup[norm]!r} and {name!r}")
            lookup[norm] = name
    for name, ps in parents.items():
        for parent in ps:
            if parent not in parents:
                raise fail(f"{name!r} has unknown parent {parent!r}")
    _check_acyclic(parents, fail)
    clash = _code_clash(codes)
    if clash:
        raise fail(f"{clash[0]!r} and {clash[1]!r} have the same codes ({codes[clash[1]]}); "
                   "a left/right pair differs by its modifier")
    return Vocabulary(parents=parents, lookup=lookup, source=source, codes=codes)


def _prefixed(fail: Callable[[str], Exception], prefix: str) -> Callable[[str], Exception]:
    return lambda message: fail(prefix + message)


def _code_clash(codes: Mapping[str, StructureCodes]) -> tuple[str, str] | None:
    """The first two names with the same coded identity (type, modifier, region, region
    modifier), or ``None``: structures may share a type code only when a modifier or the region
    tells them apart."""
    seen: dict[tuple[tuple[str, str] | None, ...], str] = {}
    for name, structure_codes in codes.items():
        other = seen.setdefault(structure_codes.key, name)
        if other != name:
            return other, name
    return None


def _check_acyclic(parents: Mapping[str, Iterable[str]], fail: Any) -> None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise fail(f"cycle in the hierarchy: {' -> '.join([*path, node])}")
        state[node] = 1
        for parent in parents.get(node, ()):
            visit(parent, [*path, node])
        state[node] = 2

    for node in parents:
        visit(node, [])


def load_vocabulary(path: Path | None = None) -> Vocabulary:
    """Load a vocabulary file; without ``path``, the bundled one plus the structures of every
    installed plugin (a plugin whose structures conflict is left out and reported by
    ``harmonize plugins``)."""
    if path is None:
        from harmonize.plugin.structures import installed_vocabulary

        return installed_vocabulary(bundled_vocabulary())
    path = Path(path)
    return parse_vocabulary(_read(path), source=path)


@cache
def bundled_vocabulary() -> Vocabulary:
    """The installed ``registry/vocabulary.yaml`` alone (cached)."""
    resource = resources.files("harmonize.registry").joinpath("vocabulary.yaml")
    return parse_vocabulary(_read(Path(str(resource))), source=Path(str(resource)))


def _read(path: Path) -> Any:
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DescriptorError(f"cannot read vocabulary: {exc}", file=path) from exc
