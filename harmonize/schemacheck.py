"""Check a YAML document against a published JSON Schema (draft 2020-12), with readable problems.

Descriptors and run files are validated here, with :mod:`jsonschema`, against the schemas their
modules define (and publish under ``registry/schema/``). Contracts:

* :func:`json_view` is the document as JSON sees it (and as an editor's YAML language server
  validates it): every mapping key is a string (``{1: liver}`` -> ``{"1": "liver"}``). Parsers
  read that view, so what they read is exactly what was validated; two keys that are one JSON
  key (``1`` and ``"1"``) are a problem.
* :func:`schema_problems` lists every violation as a :class:`Problem`: the key path
  (``classes.kidney[2]``; ``""`` for the whole document) and a sentence showing the offending
  value; an unknown key names the closest known key; most problems quote the field's
  ``description`` from the schema. Unknown keys come first, then missing keys, then the rest in
  document order. Callers raise their own error (:class:`~harmonize.errors.DescriptorError`, ...).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: At most this many problems are spelled out in one message (the rest are counted).
SHOWN = 5

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null (empty)"}
_VALIDATORS: dict[str, Any] = {}


@dataclass(frozen=True)
class Problem:
    """One violation: where (a key path such as ``layout[0].split``) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"key {self.path!r}: {self.message}" if self.path else f"top level: {self.message}"


def key_path(parts: Iterable[str | int]) -> str:
    """``["classes", "kidney", 2]`` -> ``classes.kidney[2]``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def json_key(key: Any) -> str:
    """A mapping key as JSON text has it: ``1`` -> ``"1"``, ``True`` -> ``"true"``, ``1.5`` ->
    ``"1.5"``, ``None`` -> ``"null"``."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return str(key)


def json_view(data: Any) -> Any:
    """``data`` with every mapping key a string (:func:`json_key`, recursively)."""
    if isinstance(data, Mapping):
        return {json_key(k): json_view(v) for k, v in data.items()}
    if isinstance(data, list):
        return [json_view(v) for v in data]
    return data


def _key_clashes(data: Any, path: list[str | int]) -> Iterable[Problem]:
    """Two keys of one mapping that are the same JSON key (``1`` and ``"1"``)."""
    if isinstance(data, Mapping):
        seen: dict[str, Any] = {}
        for key, value in data.items():
            if json_key(key) in seen:
                yield Problem(key_path([*path, json_key(key)]),
                              f"given twice (as {seen[json_key(key)]!r} and {key!r})")
            seen[json_key(key)] = key
            yield from _key_clashes(value, [*path, json_key(key)])
    elif isinstance(data, list):
        for k, value in enumerate(data):
            yield from _key_clashes(value, [*path, k])


def describe_problems(problems: Sequence[Problem]) -> str:
    """The problems as one message: the first :data:`SHOWN`, then how many more."""
    text = "; ".join(str(p) for p in problems[:SHOWN])
    if len(problems) > SHOWN:
        text += f"; and {len(problems) - SHOWN} more problem(s)"
    return text


def schema_problems(data: Any, schema: Mapping[str, Any]) -> list[Problem]:
    """Every violation of ``schema`` by ``data`` (after :func:`json_view`), best first."""
    from jsonschema import Draft202012Validator

    key = str(schema.get("$id") or id(schema))
    validator = _VALIDATORS.get(key)
    if validator is None:
        validator = _VALIDATORS[key] = Draft202012Validator(schema)
    clashes = list(_key_clashes(data, []))
    if clashes:
        return clashes
    view = json_view(data)
    ranked: list[tuple[int, int, str, Problem]] = []
    order = {k: n for n, k in enumerate(view)} if isinstance(view, Mapping) else {}
    for error in [e for top in validator.iter_errors(view) for e in _expand(top)]:
        for rank, problem in _problems(error):
            first = problem.path.split(".")[0].split("[")[0]
            ranked.append((rank, order.get(first, len(order)), problem.path, problem))
    ranked = sorted(set(ranked), key=lambda r: r[:3])
    return [p for *_, p in ranked]


def _expand(error: Any) -> list[Any]:
    """An ``anyOf``/``oneOf`` failure as the failures of the one branch whose type fits the
    value (a list for a list), else itself (reported with the field's description)."""
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return [error]
    branches: dict[Any, list[Any]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    depth = len(error.absolute_path)
    fitting = [subs for index, subs in branches.items()
               if _fits(error.validator_value[index], error.instance) is not False
               and not any(s.validator == "type" and len(s.absolute_path) == depth for s in subs)]
    if len(fitting) != 1:
        return [error]
    return [e for sub in fitting[0] for e in _expand(sub)]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", type(None): "null"}.get(type(value), "object")


def _fits(branch: Mapping[str, Any], value: Any) -> bool | None:
    """Whether ``value`` has a JSON type ``branch`` accepts (None when the branch does not say)."""
    if "type" in branch:
        types = [branch["type"]] if isinstance(branch["type"], str) else branch["type"]
        kind = _json_type(value)
        return kind in types or (kind == "number" and "integer" in types)
    if "enum" in branch:
        return _json_type(value) in {_json_type(v) for v in branch["enum"]}
    return None


def _problems(error: Any) -> Iterable[tuple[int, Problem]]:
    path = list(error.absolute_path)
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "additionalProperties" and value is False:
        known = list(error.schema.get("properties", {}))
        for extra in [k for k in instance if k not in known]:
            close = difflib.get_close_matches(str(extra), known, n=1, cutoff=0.6)
            guess = f"did you mean {close[0]!r}? " if close else ""
            yield 0, Problem(key_path([*path, str(extra)]),
                             f"unknown key; {guess}known keys: {', '.join(known)}")
        return
    if kind == "required":
        properties = error.schema.get("properties", {})
        for missing in [k for k in value if k not in instance]:
            about = _sentence(properties.get(missing, {}).get("description"))
            yield 1, Problem(key_path([*path, missing]),
                             "missing required key" + (f" ({about})" if about else ""))
        return
    if kind == "not" and isinstance(value, dict) and list(value) == ["required"]:
        yield 1, Problem(key_path(path), f"give {' or '.join(map(repr, value['required']))}, "
                         "not both")
        return
    about = _description(error)
    if "propertyNames" in error.relative_schema_path:
        # the instance is the offending key itself
        yield 2, Problem(key_path([*path, str(instance)]),
                         "not allowed as a key here" + (f": {about}" if about else ""))
        return
    shown = _show(instance)
    if kind == "type":
        types = [value] if isinstance(value, str) else list(value)
        message = f"must be {' or '.join(_TYPE_NAMES.get(t, t) for t in types)}, got {shown}"
    elif kind in ("enum", "const"):
        choices = list(value) if kind == "enum" else [value]
        words = [c for c in choices if isinstance(c, str)]
        close = difflib.get_close_matches(instance, words, n=1) if isinstance(instance, str) else []
        message = f"must be one of {choices}, got {shown}" + (
            f"; did you mean {close[0]!r}?" if close else "")
        about = about if error.parent is not None else ""  # one branch of several forms
    elif kind in ("minItems", "minProperties", "minLength") and value == 1:
        message = f"must not be empty, got {shown}"
    elif kind in ("minItems", "maxItems"):
        count = "exactly" if error.schema.get("minItems") == error.schema.get("maxItems") else (
            "at least" if kind == "minItems" else "at most")
        message = f"needs {count} {value} item(s), got {len(instance)}: {shown}"
    elif kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=",
                "exclusiveMaximum": "<"}[kind]
        message = f"{shown} must be {sign} {value}"
    elif kind == "pattern":
        message = f"{shown} is not allowed" if about else f"{shown} does not match {value!r}"
    elif kind in ("anyOf", "oneOf"):
        message = f"{shown} is not one of the accepted forms"
    else:
        message = error.message
    yield 2, Problem(key_path(path), message + (f" ({about})" if about else ""))


def _description(error: Any) -> str:
    """The first sentence of the nearest ``description`` on the way up from the failed schema."""
    while error is not None:
        if isinstance(error.schema, Mapping) and error.schema.get("description"):
            return _sentence(error.schema["description"])
        error = error.parent
    return ""


def _sentence(text: str | None) -> str:
    text = " ".join((text or "").split())
    end = re.search(r"\.\s+(?=[A-Z])", text)
    return text[: end.start()] if end else text.rstrip(".")


def _show(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
