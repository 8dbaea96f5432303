"""The one gate for untrusted identifiers and paths.

Manifests, descriptors and dataset folders come from other people. Everything they name passes
here before it names a file or a folder:

* :func:`check_identifier`: a dataset or case id is a safe folder name (no separator, no ``..``,
  no leading dot), because ids become file and folder names in outputs, caches and exports.
* :func:`confine`: a path read from a manifest, joined to the folder it is relative to (the
  manifest's folder), resolves (symlinks followed) inside that folder or inside a *trusted root*.
* :func:`confine_template`: a path formatted from a descriptor template stays inside ``--root``
  (checked lexically: symlinks inside a dataset root are the user's own).

Trusted roots are the folders a user names: ``HARMONIZE_TRUSTED_ROOTS`` (``os.pathsep``
separated), the CLI's ``harmonize --trust-root DIR`` (which sets it, so workers inherit it), and
the ``--root`` of every ``harmonize manifest`` this user ran (remembered in
:func:`remembered_roots_file`), since a source manifest's paths point into its dataset root.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harmonize.errors import DiscoveryError, HarmonizeError, ManifestError

TRUSTED_ROOTS_ENV = "HARMONIZE_TRUSTED_ROOTS"
#: Overrides where ``harmonize manifest`` remembers its roots (default: the user's config folder).
REMEMBERED_ROOTS_ENV = "HARMONIZE_REMEMBERED_ROOTS"

#: A safe id: one folder name on every platform (no separator; a leading letter or digit, so no
#: ``.``, ``..`` or hidden name).
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
#: Longest id: a file name limit of common file systems.
MAX_ID_LENGTH = 255


def is_safe_identifier(value: object) -> bool:
    """Whether ``value`` is a string usable as one folder name on every platform."""
    return (isinstance(value, str) and len(value) <= MAX_ID_LENGTH
            and SAFE_ID.fullmatch(value) is not None)


def check_identifier(value: Any, *, what: str, dataset: str | None, file: Path | None = None,
                     error: type[HarmonizeError] = DiscoveryError) -> str:
    """Return ``value`` if it is a safe folder name, else raise ``error`` naming it.

    Safe (:data:`SAFE_ID`): letters, digits and ``. _ + -``, starting with a letter or digit,
    at most :data:`MAX_ID_LENGTH` characters.
    """
    if not is_safe_identifier(value):
        raise error(
            f"unsafe {what} {value!r}: ids may only use letters, digits and . _ + - "
            "and may not contain path separators or '..'",
            dataset=dataset if is_safe_identifier(dataset) else None,
            file=file,
            hint="fix the plugin's id extraction or rename the file" if error is DiscoveryError
            else "fix or remove this record; ids become file and folder names",
        )
    return value


def remembered_roots_file() -> Path:
    """Where ``harmonize manifest`` remembers the dataset roots it read (one path per line)."""
    return Path(_remembered_roots_path())


def _remembered_roots_path() -> str:
    """``HARMONIZE_REMEMBERED_ROOTS``, else ``$XDG_CONFIG_HOME`` (or ``~/.config``)
    ``/harmonize/trusted-roots``; a string, as the gate computes it per record."""
    return os.environ.get(REMEMBERED_ROOTS_ENV) or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"),
        "harmonize", "trusted-roots")


def remember_root(root: Path) -> None:
    """Add ``root`` (resolved) to the remembered roots; a read-only config folder is ignored
    (the user can still name the root with ``--trust-root``)."""
    path = remembered_roots_file()
    root_text = str(Path(root).resolve())
    try:
        known = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        if root_text in known:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(root_text + "\n")
    except (OSError, UnicodeError):
        return


def trusted_roots() -> tuple[Path, ...]:
    """The trusted roots in force: ``HARMONIZE_TRUSTED_ROOTS`` and the remembered ones, resolved."""
    return tuple(map(Path, _trusted_strings()))


@functools.lru_cache(maxsize=8)
def _trusted(env: str, remembered_file: str, stamp: int | None) -> tuple[str, ...]:
    """Roots named by the variable and the remembered file (cached per value and file mtime:
    a manifest of 20,000 records outside its folder reads the file once)."""
    named = [p for p in env.split(os.pathsep) if p]
    if stamp is not None:
        try:
            remembered = Path(remembered_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeError):
            remembered = []
        named += [line.strip() for line in remembered if line.strip()]
    return tuple(str(Path(p).resolve()) for p in named)


def add_trusted_roots(roots: Iterable[str | Path]) -> None:
    """Name more trusted roots for this process and its workers (sets ``HARMONIZE_TRUSTED_ROOTS``)."""
    current = [p for p in os.environ.get(TRUSTED_ROOTS_ENV, "").split(os.pathsep) if p]
    current += [str(Path(r).resolve()) for r in roots]
    os.environ[TRUSTED_ROOTS_ENV] = os.pathsep.join(dict.fromkeys(current))


def confine(relative: str, base: Path, *, what: str, dataset: str | None = None,
            case: str | None = None) -> Path:
    """``base / relative``, if it resolves inside ``base`` or a trusted root; else a
    :class:`ManifestError` naming the field, its value, where it leads and what to do.

    The returned path is ``base / relative`` normalized (``..`` folded), not symlink-resolved,
    so file names and suffixes are the ones the manifest gives.
    """
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise ManifestError(f"{what} {relative!r} is not a path", dataset=dataset, case=case,
                            hint="fix or regenerate the manifest")
    joined = os.path.normpath(os.path.join(base, relative))
    resolved = os.path.realpath(joined)
    base_real = _realpath_of_base(os.fspath(base))
    if _inside(resolved, base_real) or any(_inside(resolved, root) for root in _trusted_strings()):
        return Path(joined)
    raise ManifestError(
        f"{what} {relative!r} leads to {resolved}, outside the manifest's folder "
        f"{base_real}; it was not read",
        dataset=dataset, case=case,
        hint=f"if you trust this manifest, name the folder that holds its data with "
             f"`harmonize --trust-root DIR` or {TRUSTED_ROOTS_ENV}=DIR",
    )


#: A manifest's folder is resolved once per process, not once per record.
_realpath_of_base = functools.lru_cache(maxsize=64)(os.path.realpath)


def _trusted_strings() -> tuple[str, ...]:
    """The trusted roots as resolved strings, from the cache (no ``Path`` objects per record)."""
    path = _remembered_roots_path()
    try:
        stamp: int | None = os.stat(path).st_mtime_ns
    except OSError:
        stamp = None
    return _trusted(os.environ.get(TRUSTED_ROOTS_ENV, ""), path, stamp)


def _inside(path: str, folder: str) -> bool:
    """Whether the resolved ``path`` is ``folder`` or under it (string test: this runs per record)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def confine_template(formatted: str, root: Path, *, template: str, dataset: str,
                     file: Path | None = None) -> Path:
    """``root / formatted`` when the formatted template stays inside ``root`` lexically (no
    absolute path, no ``..`` above the root); else a :class:`DiscoveryError` naming the template."""
    relative = Path(os.path.normpath(formatted))
    if relative.is_absolute() or relative.parts[:1] == ("..",) or formatted.startswith(("/", "\\")):
        raise DiscoveryError(
            f"template {template!r} formats to {formatted!r}, outside the dataset root",
            dataset=dataset, file=file,
            hint="templates name files under --root: use {case}, {name} and {parent} plainly",
        )
    return Path(root) / relative


__all__ = ["REMEMBERED_ROOTS_ENV", "MAX_ID_LENGTH", "SAFE_ID", "TRUSTED_ROOTS_ENV", "add_trusted_roots", "check_identifier",
           "confine", "confine_template", "is_safe_identifier", "remember_root",
           "remembered_roots_file", "trusted_roots"]
