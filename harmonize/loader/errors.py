"""The loader's error type."""

from __future__ import annotations

from harmonize.errors import HarmonizeError


class LoaderError(HarmonizeError):
    """The loader was asked for something the manifests cannot give (classes, patch, channels)."""

    kind = "loader"
