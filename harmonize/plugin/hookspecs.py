"""The plugin contract.

A plugin is any importable module or object with ``@hookimpl`` functions. The one registration hook
hands over typed :class:`~harmonize.plugin.dataset.DatasetPlugin` objects (the pattern of ``llm``, ``conda``
and ``tox``), so a dataset's knowledge lives on one object and the core never dispatches on ids::

    from harmonize.plugin import DatasetPlugin, hookimpl

    @hookimpl
    def harmonize_datasets():
        yield MyDataset()

A plugin whose datasets use structures the bundled vocabulary lacks adds them with
``harmonize_vocabulary`` (no installed file is edited). Third-party packages expose such a module
through the ``harmonize`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from harmonize.labels.vocabulary import Structure
    from harmonize.plugin.dataset import DatasetPlugin

PROJECT_NAME = "harmonize"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def harmonize_datasets() -> Iterable[DatasetPlugin]:  # type: ignore[empty-body]
    """Return or yield the :class:`DatasetPlugin` objects this plugin provides.

    Each object's ``id`` must be unique across all installed plugins; the core rejects a duplicate
    with an error naming both sources. Do no I/O here beyond reading small bundled files: the hook
    runs every time the CLI starts.
    """


@hookspec
def harmonize_vocabulary() -> Iterable[Structure]:  # type: ignore[empty-body]
    """Return or yield :class:`~harmonize.labels.vocabulary.Structure` objects: canonical names
    (with synonyms and parents, and DICOM codes where they exist: ``codes=StructureCodes(...)``)
    this plugin's descriptors use and the bundled vocabulary lacks.

    A name or synonym already defined (by the bundled vocabulary or another plugin), or codes
    another structure already has, is an error naming both sources, and the plugin's structures
    are left out. No I/O beyond small bundled files.
    """
