"""Strict YAML loading: a repeated key is an error (PyYAML silently keeps the last one)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from harmonize.errors import DescriptorError


class _StrictLoader(yaml.SafeLoader):
    pass


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(text: str) -> Any:
    """Parse YAML safely; duplicate keys raise ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass


@cache
def load_registry(name: str) -> Any:
    """The installed ``registry/<name>`` YAML file, parsed strictly (cached; do not mutate).

    A missing or malformed file is a :class:`~harmonize.errors.DescriptorError` naming it.
    """
    resource = resources.files("harmonize.registry").joinpath(name)
    path = Path(str(resource))
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DescriptorError(f"cannot read registry file: {exc}", file=path) from exc
