"""harmonize: many public medical imaging segmentation datasets, one harmonized collection.

Public API for plugin authors: :data:`hookimpl`, :class:`DatasetPlugin`, :class:`Case`,
:class:`Skipped`. Importing this package does no work (plugins load in ``get_plugin_manager``).
"""

import harmonize._moved
from harmonize.errors import HarmonizeError
from harmonize.manifest.records import Case, ManifestRecord, Skipped
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.plugin.hookspecs import hookimpl

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
