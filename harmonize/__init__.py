"""harmonize: many public medical imaging segmentation datasets, one harmonized collection.

Public API for plugin authors: :data:`hookimpl`, :class:`DatasetPlugin`, :class:`Case`,
:class:`Skipped`. Importing this package does no work (plugins load in ``get_plugin_manager``).
"""

from harmonize.dataset import DatasetPlugin
from harmonize.errors import HarmonizeError
from harmonize.hookspecs import hookimpl
from harmonize.records import Case, ManifestRecord, Skipped

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
