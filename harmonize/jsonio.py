"""Text that holds any file name: the one JSON encoder of every writer, and its escape scheme.

On Linux a file name is bytes; Python hands names that are not UTF-8 over as strings with lone
surrogates (``b"case\\xff"`` -> ``"case\\udcff"``), which cannot be written as UTF-8. Every JSON
file and JSON output of harmonize goes through :func:`dumps`, which passes each string (values and
keys) through :func:`escape_name`:

* a string that is valid UTF-8 text and holds no ``\\xHH`` sequence is written unchanged;
* otherwise its bytes (``os.fsencode``) are written as UTF-8 text with each byte that is not part
  of valid UTF-8 as ``\\xHH`` (two lowercase hex digits) and each backslash as ``\\x5c``.

So every output is valid UTF-8, and the scheme is reversible: :func:`unescape_name` gives the
original string back (``os.fsencode(unescape_name(text))`` is the original bytes), because an
escaped string holds no backslash other than its escapes and an unescaped one holds no ``\\xHH``.
Readable output (messages, the run summary) shows non-UTF-8 bytes the same way (:func:`printable`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

_TEXT_ESCAPE = re.compile(r"\\x[0-9a-fA-F]{2}")
_BYTE_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")


def _bytes_of(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        return text.encode("utf-8", "surrogatepass")


def escape_name(text: str) -> str:
    """``text`` as valid UTF-8 text, reversibly (see the module doc); most strings unchanged."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        if "\\" not in text or not _TEXT_ESCAPE.search(text):
            return text
    raw = _bytes_of(text).replace(b"\\", b"\\x5c")
    return raw.decode("utf-8", "backslashreplace")


def unescape_name(text: str) -> str:
    """The string :func:`escape_name` was given (non-UTF-8 bytes as surrogate escapes again)."""
    if "\\" not in text or not _TEXT_ESCAPE.search(text):
        return text
    raw = _BYTE_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))
    return raw.decode("utf-8", "surrogateescape")


def printable(text: object) -> str:
    """``str(text)`` for a terminal or log: non-UTF-8 bytes shown as ``\\xHH``, the rest as is."""
    value = str(text)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _bytes_of(value).decode("utf-8", "backslashreplace")
    return value


def escaped(data: Any) -> Any:
    """``data`` with every string (and dict key, and path) passed through :func:`escape_name`."""
    if isinstance(data, str):
        return escape_name(data)
    if isinstance(data, dict):
        return {escape_name(k) if isinstance(k, str) else k: escaped(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [escaped(v) for v in data]
    if isinstance(data, os.PathLike):
        return escape_name(os.fsdecode(data))
    return data


def dumps(data: Any, *, default: Callable[[Any], Any] | None = None, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`escaped` ``data`` (same keyword arguments); what ``default``
    returns is escaped too. The result is always valid UTF-8 text."""
    wrapped = None if default is None else (lambda obj: escaped(default(obj)))
    return json.dumps(escaped(data), default=wrapped, **kwargs)
