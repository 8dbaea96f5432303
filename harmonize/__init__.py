"""harmonize: many public medical imaging segmentation datasets, one harmonized collection.

Plugin authors import from :mod:`harmonize.plugin` (the one public plugin module); the names
:data:`hookimpl`, :class:`DatasetPlugin`, :class:`Case` and :class:`Skipped` are also here.
Importing this package does no work (plugins load in ``get_plugin_manager``; the names below
import their modules on first use, so ``harmonize --help`` starts without numpy or nibabel).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import harmonize._moved

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "Case": "harmonize.plugin",
    "DatasetPlugin": "harmonize.plugin",
    "HarmonizeError": "harmonize.errors",
    "ManifestRecord": "harmonize.manifest.records",
    "Skipped": "harmonize.plugin",
    "hookimpl": "harmonize.plugin",
}

__all__ = ["Case", "DatasetPlugin", "HarmonizeError", "ManifestRecord", "Skipped", "__version__",
           "hookimpl"]

if TYPE_CHECKING:
    from harmonize.errors import HarmonizeError
    from harmonize.manifest.records import ManifestRecord
    from harmonize.plugin import Case, DatasetPlugin, Skipped, hookimpl


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'harmonize' has no attribute {name!r}")


harmonize._moved.install()
