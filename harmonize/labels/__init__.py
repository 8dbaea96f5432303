"""Label vocabulary, channel vocabulary and label rules (renames, merges, hierarchy)."""

from __future__ import annotations

from typing import Any

#: names the 0.1 flat module ``harmonize.labels`` had, and the module that now holds each
_MOVED = {
    "class_values": "harmonize.labels.rules",
    "check_observed_values": "harmonize.labels.rules",
}


def __getattr__(name: str) -> Any:
    """``from harmonize.labels import X`` of a 0.1 name keeps working, with a DeprecationWarning."""
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'harmonize.labels' has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(f"harmonize.labels.{name} moved to {module}.{name}; import it from there",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), name)
