"""Path patterns of the layout language: globs with named placeholders, and filling templates.

An image pattern is a glob relative to the dataset root (``*``, ``?``, ``[...]``, ``**``) that may
hold named placeholders, each inside one path component: ``{case}``, ``{patient}``,
``{session}`` and ``{split}``, or free names (``{region}``) that templates reuse, optionally constrained by a glob after a colon
(``{case:BDMAP_*}/ct.nii.gz``, ``{patient}-{session:[0-9][0-9][0-9]}``). Discovery globs with the
placeholders replaced by their constraint (default ``*``) and reads the placeholders' text back
from the path relative to the root (:meth:`PathPattern.match`; earlier placeholders take as much
as they can). Templates (``label``, ``structures``, ``channel_files``) use plain placeholders,
filled by :func:`fill`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: placeholders of an image pattern that mean something; any other name (``{region}``) is free
#: text that templates can reuse
IMAGE_FIELDS = ("case", "patient", "session", "split")
#: names an image pattern may not use (templates fill them from the matched file)
RESERVED = ("name", "parent", "structure")
#: placeholders a label, structure or channel template may use (``structure``: structures only)
TEMPLATE_FIELDS = ("case", "name", "parent", "patient", "session")
PLACEHOLDER = re.compile(r"\{(\w+)(?::([^{}/]*))?\}")


class PatternError(ValueError):
    """A pattern or template the layout language cannot use (the message says why)."""


@dataclass(frozen=True)
class PathPattern:
    """A compiled image pattern: the glob discovery runs and the regex reading placeholders back."""

    text: str
    glob: str
    regex: re.Pattern[str]
    fields: tuple[str, ...]

    def match(self, relative: str) -> dict[str, str] | None:
        """The placeholders' text in ``relative`` (a POSIX path relative to the root), or
        ``None`` when the path does not fit the pattern."""
        found = self.regex.fullmatch(relative)
        return None if found is None else {k: v for k, v in found.groupdict().items()}


def compile_pattern(text: str) -> PathPattern:
    """Compile an image pattern; a :class:`PatternError` for a reserved placeholder name, a
    a placeholder spanning ``/``, unbalanced braces or an empty constraint. A placeholder used again
    must match the same text (``{case}/{case}-t1n.nii.gz``)."""
    glob, regex, fields, pos = [], [], [], 0
    for found in PLACEHOLDER.finditer(text):
        literal = text[pos:found.start()]
        _check_braces(literal, text)
        glob.append(literal)
        regex.append(glob_regex(literal))
        name, constraint = found.group(1), found.group(2)
        if name in RESERVED:
            raise PatternError(f"{{{name}}} in {text!r} is filled from the matched file in "
                               "templates; an images pattern may not capture it")
        if name in fields:  # a repeat: the same text again
            if constraint is not None:
                raise PatternError(f"constrain {{{name}}} at its first use in {text!r}")
            glob.append("*")
            regex.append(f"(?P={name})")
            pos = found.end()
            continue
        if constraint is not None and (constraint == "" or "**" in constraint):
            raise PatternError(f"placeholder {{{name}:{constraint}}} in {text!r} needs a glob "
                               "within one folder or file name (not empty, no '**')")
        fields.append(name)
        constraint = constraint or "*"
        glob.append(constraint)
        regex.append(f"(?P<{name}>(?=[^/])(?:{glob_regex(constraint)}))")
        pos = found.end()
    _check_braces(text[pos:], text)
    glob.append(text[pos:])
    regex.append(glob_regex(text[pos:]))
    return PathPattern(text, "".join(glob), re.compile("".join(regex)), tuple(fields))


def _check_braces(literal: str, text: str) -> None:
    if "{" in literal or "}" in literal:
        raise PatternError(f"unbalanced or malformed braces in {text!r}; placeholders are "
                           "{name} or {name:glob} inside one path component")


def glob_regex(glob: str) -> str:
    """The regex source matching what the pathlib glob ``glob`` matches (``*``/``?`` stay inside
    one path component, ``**/`` is any number of folders)."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i) and (i == 0 or glob[i - 1] == "/"):
            out.append("(?:[^/]+/)*")
            i += 3
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and "]" in glob[i + 2:]:
            end = glob.index("]", i + 2)
            body = glob[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def template_fields(template: str) -> list[str]:
    """Placeholder names a template uses, in order (a constraint is an error in a template)."""
    names = []
    for found in PLACEHOLDER.finditer(template):
        if found.group(2) is not None:
            raise PatternError(f"{template!r}: a template's placeholders are plain ({{name}}); "
                               "constraints belong in the images pattern")
        names.append(found.group(1))
    rest = PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        raise PatternError(f"unbalanced or malformed braces in {template!r}")
    return names


def check_template(template: str, available: tuple[str, ...]) -> None:
    """A :class:`PatternError` unless every placeholder of ``template`` is in ``available``."""
    for name in template_fields(template):
        if name not in available:
            raise PatternError(f"placeholder {{{name}}} in {template!r} is not available here; "
                               "use " + ", ".join(f"{{{f}}}" for f in available))


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{name}`` in ``values`` replaced; other placeholders stay."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def any_glob(template: str, constraints: Mapping[str, str] | None = None) -> str:
    """The glob matching every file a template can name: each placeholder becomes its constraint
    in ``constraints`` (an images pattern's ``{case:topcow_ct_*}``), else ``*``."""
    return PLACEHOLDER.sub(lambda found: (constraints or {}).get(found.group(1), "*"), template)


def pattern_constraints(images: str, *, case_is_placeholder: bool = True) -> dict[str, str]:
    """The explicit constraints of an images pattern's placeholders (``{case:ATM_*}`` ->
    ``{"case": "ATM_*"}``); ``case`` is left out when the case id is not the placeholder's text
    (a ``case_template`` or a ``case_id`` regex builds it)."""
    found = {name: glob for name, glob in PLACEHOLDER.findall(images) if glob}
    if not case_is_placeholder:
        found.pop("case", None)
    return found
