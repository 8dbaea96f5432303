"""Images and labels under different roots (descriptor key ``roots``, group keys ``images_root``
and ``label_root``).

A release that adds labels to another release's images (liver segments drawn on a segmentation
challenge's images; whole-body labels on a PET/CT challenge's CT) names the other folder in its
descriptor::

    roots: {base: ../base-release}     # relative to --root, or absolute
    layout: {images_root: base, images: "imagesTr/{case}.nii.gz", label: "{case}.nii.gz"}

At run time ``harmonize --extra-root base=/data/base-release ...`` (repeatable) or
``HARMONIZE_ROOTS=base=/data/base-release`` (several joined with the path separator, ``:`` on
POSIX) overrides the descriptor's path. Every root must be an existing folder;
templates are confined to their own root by the path gate, and each extra root is remembered as a
trusted root (:func:`harmonize.gate.remember_root`) because manifests will point into it.
"""

from __future__ import annotations

import os
from pathlib import Path

from harmonize.errors import DiscoveryError
from harmonize.gate import remember_root
from harmonize.plugin.descriptor import Descriptor

#: run-time override of the descriptor's extra roots: ``name=path`` entries
ROOTS_ENV = "HARMONIZE_ROOTS"
#: the dataset root's name in group keys (the default)
MAIN = ""


def resolve_roots(desc: Descriptor, root: Path) -> dict[str, Path]:
    """Name -> folder for the dataset root (``""``) and every root the descriptor names."""
    overrides = _overrides(desc)
    roots = {MAIN: root}
    for name, default in desc.roots.items():
        given = overrides.get(name)
        path = Path(os.path.expanduser(given if given is not None else default))
        folder = path if path.is_absolute() else root / path
        if not folder.is_dir():
            source = (f"{ROOTS_ENV} ({name}={given})" if given is not None
                      else f"the descriptor's roots.{name} ({default!r}, relative to --root)")
            raise DiscoveryError(
                f"root {name!r} is not a folder: {folder}", dataset=desc.id,
                file=desc.source_file,
                hint=f"{source} must name the extracted release; set "
                f"{ROOTS_ENV}={name}=<folder> to point elsewhere")
        roots[name] = folder.resolve()
        remember_root(roots[name])
    return roots


def add_extra_roots(entries: list[str]) -> None:
    """Add ``name=path`` entries (paths made absolute) to :data:`ROOTS_ENV` for this process and
    its workers; a :class:`ValueError` names an entry that is not ``name=path``."""
    current = [e for e in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if e]
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep or not name.isidentifier() or not path:
            raise ValueError(f"{entry!r} is not name=path (e.g. base=/data/base-release)")
        current.append(f"{name}={Path(os.path.expanduser(path)).absolute()}")
    os.environ[ROOTS_ENV] = os.pathsep.join(current)


def _overrides(desc: Descriptor) -> dict[str, str]:
    out = {}
    for entry in filter(None, os.environ.get(ROOTS_ENV, "").split(os.pathsep)):
        name, sep, path = entry.partition("=")
        if not sep or not path:
            raise DiscoveryError(f"{ROOTS_ENV} entry {entry!r} is not name=path",
                                 dataset=desc.id, hint=f"e.g. {ROOTS_ENV}=base=/data/base-release")
        if name in desc.roots:
            out[name] = path  # a later entry wins
    return out
