"""House rules of DESIGN.md, checked on the source tree.

* Every module of ``harmonize/`` (and of ``plugins/``) is at most :data:`MAX_LINES` lines.
* ``harmonize/`` knows no dataset: no dataset id of the catalogue (``registry/datasets/*.yaml``) and
  no dataset family (a ``plugins/*.py`` module named after the ids it serves) appears as a word in
  any ``harmonize/**/*.py``. The names are computed from the registry and plugins, never listed.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from harmonize.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "harmonize"
PLUGINS = ROOT / "plugins"
MAX_LINES = 400

#: Dataset ids that are also ordinary English words are matched only as the dataset spells them
#: (the first word of its descriptor's ``name``, case-sensitive) and not inside an identifier, so
#: a variable called ``word`` or ``NONE_WORD`` is not a dataset name but ``WORD`` is.
ENGLISH_WORDS = {"word"}


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@cache
def _descriptors() -> dict[str, dict]:
    docs = [load_yaml(p.read_text(encoding="utf-8"))
            for p in sorted((ROOT / "registry" / "datasets").glob("*.yaml"))]
    return {str(doc["id"]): doc for doc in docs}


@cache
def dataset_names() -> dict[str, re.Pattern[str]]:
    """Name -> pattern matching it as a word (``-`` and ``_`` interchangeable; letters and digits
    around it break the match, ``_`` does not, so ``kits23_2d`` names ``kits23``)."""
    descriptors = _descriptors()
    ids = set(descriptors)
    families = {p.stem.replace("_", "-") for p in PLUGINS.glob("*.py")
                if not p.stem.startswith("_")
                and any(i == p.stem.replace("_", "-") or i.startswith(p.stem.replace("_", "-"))
                        for i in ids)}
    patterns = {}
    for name in sorted(ids | families):
        if name in ENGLISH_WORDS:  # as the dataset spells it, and not inside an identifier
            spelling, flags, edge = str(descriptors[name]["name"]).split()[0], 0, "A-Za-z0-9_"
        else:
            spelling, flags, edge = name, re.IGNORECASE, "A-Za-z0-9"
        body = "[-_]".join(re.escape(part) for part in re.split(r"[-_]", spelling))
        patterns[name] = re.compile(rf"(?<![{edge}]){body}(?![{edge}])", flags)
    return patterns


def test_the_names_are_computed_from_the_catalogue() -> None:
    names = dataset_names()
    ids = set(_descriptors())
    assert len(ids) >= 20 and ids <= set(names)
    assert ENGLISH_WORDS <= ids, "an English-word exception is no longer a dataset id: drop it"
    families = set(names) - ids
    assert families and all(any(i.startswith(f) for i in ids) for f in families)
    some_id = sorted(ids - ENGLISH_WORDS)[0]
    assert names[some_id].search(f"see {some_id.upper()}'s layout")
    assert names[some_id].search(f"def {some_id.replace('-', '_')}_split():")
    assert not names[some_id].search(f"x{some_id}y")
    for word in ENGLISH_WORDS:
        spelled = str(_descriptors()[word]["name"]).split()[0]
        assert names[word].search(f"e.g. {spelled}'s layout")
        assert not names[word].search(f"{word} = 1; NONE_{spelled} = 2")


@pytest.mark.parametrize("module", _modules(CORE), ids=_rel)
def test_core_names_no_dataset(module: Path) -> None:
    found = []
    patterns = dataset_names()
    for number, line in enumerate(module.read_text(encoding="utf-8").splitlines(), start=1):
        for name, pattern in patterns.items():
            if pattern.search(line):
                found.append(f"{_rel(module)}:{number}: {name!r} in {line.strip()!r}")
    assert not found, ("harmonize/ knows no dataset: use a generic example, or move the named "
                       "convention into registry/\n" + "\n".join(found))


@pytest.mark.parametrize("module", [*_modules(CORE), *_modules(PLUGINS)], ids=_rel)
def test_module_is_at_most_400_lines(module: Path) -> None:
    lines = len(module.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, (f"{_rel(module)} has {lines} lines (> {MAX_LINES}): "
                                "split it by concern")
