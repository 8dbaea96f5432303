"""YAML-only built-in datasets: every ``registry/datasets/*.yaml`` that has a ``layout`` section."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

from harmonize.plugin import (
    DatasetPlugin,
    LayoutDataset,
    hookimpl,
    load_descriptor,
)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    folder = resources.files("harmonize.registry").joinpath("datasets")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        with resources.as_file(entry) as path:
            descriptor = load_descriptor(path)
        if descriptor.layout:
            yield LayoutDataset(descriptor)
