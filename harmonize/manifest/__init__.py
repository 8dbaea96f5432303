"""Manifests: records (source and normalized stages), building, reading, splits, duplicates."""

from __future__ import annotations

from typing import Any

#: names the 0.1 flat module ``harmonize.manifest`` had, and the module that now holds each
_MOVED = {
    "relative_path": "harmonize.manifest.build",
    "has_label": "harmonize.manifest.build",
    "case_class_values": "harmonize.manifest.build",
    "source_section": "harmonize.manifest.build",
    "record_for_case": "harmonize.manifest.build",
    "ManifestResult": "harmonize.manifest.build",
    "build_manifest": "harmonize.manifest.build",
    "dumps": "harmonize.manifest.build",
    "write_manifest": "harmonize.manifest.build",
    "manifest_paths": "harmonize.manifest.build",
    "other_records": "harmonize.manifest.build",
    "write_splits": "harmonize.manifest.build",
    "read_manifest": "harmonize.manifest.build",
    "validate_manifest": "harmonize.manifest.build",
    "SPLITS_FILE": "harmonize.manifest.build",
}


def __getattr__(name: str) -> Any:
    """``from harmonize.manifest import X`` of a 0.1 name keeps working, with a DeprecationWarning."""
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'harmonize.manifest' has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(f"harmonize.manifest.{name} moved to {module}.{name}; import it from there",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), name)
