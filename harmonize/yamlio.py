"""Strict YAML loading: a repeated key is an error (PyYAML silently keeps the last one)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from harmonize.errors import DescriptorError


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml's C parser when PyYAML has it: ~5x faster on the
    vocabulary) with duplicate keys refused."""


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


#: Most nodes a document may hold once its aliases are expanded (an "alias bomb" of nested
#: anchors is small as text and exponential when walked; real descriptors hold a few thousand).
MAX_EXPANDED_NODES = 1_000_000


def expanded_size(node: yaml.Node, memo: dict[int, int | None] | None = None) -> int:
    """Nodes of ``node`` with every alias expanded, counted in time linear in distinct nodes;
    a node that contains itself (a recursive alias) raises ``yaml.YAMLError``."""
    memo = {} if memo is None else memo
    key = id(node)
    if key in memo:
        size = memo[key]
        if size is None:
            raise yaml.YAMLError(f"a recursive alias at {node.start_mark}".strip())
        return size
    memo[key] = None  # in progress
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    size = 1 + sum(expanded_size(child, memo) for child in children)
    memo[key] = size
    return size


def load_yaml(text: str) -> Any:
    """Parse YAML safely; duplicate keys, and a document larger than :data:`MAX_EXPANDED_NODES`
    nodes once aliases are expanded, raise ``yaml.YAMLError`` (checked before constructing)."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = expanded_size(node)
        if size > MAX_EXPANDED_NODES:
            raise yaml.YAMLError(
                f"the document expands to {size:,} nodes through its aliases (limit "
                f"{MAX_EXPANDED_NODES:,}): an alias bomb, or anchors nested too deep")
        return loader.construct_document(node)
    except RecursionError:
        raise yaml.YAMLError("the document is nested too deep to read") from None
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own limit
            raise yaml.YAMLError(f"the document is nested too deep to read ({exc})") from None
        raise
    finally:
        loader.dispose()


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
