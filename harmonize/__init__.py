"""harmonize: many public medical imaging segmentation datasets, one harmonized collection.

Plugin authors import from :mod:`harmonize.plugin` (the one public plugin module); the names
:data:`hookimpl`, :class:`DatasetPlugin`, :class:`Case` and :class:`Skipped` are also here.
Importing this package does no work (plugins load in ``get_plugin_manager``).
"""

import harmonize._moved
from harmonize.manifest.records import ManifestRecord
from harmonize.plugin import Case, DatasetPlugin, HarmonizeError, Skipped, hookimpl

__version__ = "0.1.0"

__all__ = [
    "Case",
    "DatasetPlugin",
    "HarmonizeError",
    "ManifestRecord",
    "Skipped",
    "__version__",
    "hookimpl",
]

harmonize._moved.install()
