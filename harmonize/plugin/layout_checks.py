"""Load-time checks of a descriptor's layout language that its JSON Schema cannot state.

:func:`layout_problems` returns one :class:`~harmonize.schemacheck.Problem` (key path + reason)
per mistake, so :func:`~harmonize.plugin.descriptor.parse_descriptor` reports all of them in one
error naming the file: placeholders unknown or unavailable where used, ``{structure}`` outside a
structure file name, structure classes not numbered 1..N, split sources that cannot be read.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from harmonize.plugin.layout_paths import (
    TEMPLATE_FIELDS,
    PatternError,
    check_template,
    compile_pattern,
    template_fields,
)
from harmonize.schemacheck import Problem

#: top-level keys that only mean something with a layout
LAYOUT_ONLY = ("structure_files", "split_names", "split_file", "split_ids", "value_ranges",
               "label_encoding", "roots", "exclude_cases")
SPLIT_FILE_SUFFIXES = (".csv", ".tsv", ".json", ".txt")


def layout_problems(data: dict[str, Any], out: dict[str, Any]) -> list[Problem]:
    """Every layout mistake in a schema-valid descriptor (``data`` as loaded, ``out`` parsed)."""
    groups = out.get("layout") or ()
    if not groups:
        return [Problem(key, "only a YAML-only dataset (with a 'layout' section) uses this key")
                for key in LAYOUT_ONLY if key in data]
    problems: list[Problem] = []
    listed = isinstance(data["layout"], list)
    for k, group in enumerate(groups):
        where = f"layout[{k}]" if listed else "layout"
        problems += _group_problems(where, group)
        for key in ("images_root", "label_root"):
            name = getattr(group, key)
            if name is not None and name not in (out.get("roots") or {}):
                problems.append(Problem(f"{where}.{key}", f"{name!r} is not a root named in "
                                        f"'roots' ({sorted(out.get('roots') or {})})"))
    with_structures = [g for g in groups if g.structures]
    one_hot = out.get("label_encoding", "values") != "values"  # one-hot or Slicer segments
    if with_structures or one_hot:
        problems += _structure_class_problems(out)
    if one_hot and out.get("value_ranges"):
        problems.append(Problem("value_ranges", "a one-hot or Slicer-segment label has no grey "
                                "values; drop value_ranges or label_encoding"))
    if not with_structures and "structure_files" in data and out.get(
            "label_encoding") != "slicer-segments":
        problems.append(Problem("structure_files", "no layout group has 'structures' (one file "
                                "per structure) and the labels are not slicer-segments; remove "
                                "structure_files"))
    problems += _range_problems(out)
    if out.get("split_file") is not None:
        problems += _split_file_problems(out["split_file"])
    owner: dict[str, str] = {}
    for split, ids in (out.get("split_ids") or {}).items():
        for case in ids:
            if case in owner:
                problems.append(Problem(f"split_ids.{split}", f"{case!r} is also listed in "
                                        f"split_ids.{owner[case]}"))
            owner[case] = split
    return problems


def _group_problems(where: str, group: Any) -> list[Problem]:
    try:
        pattern = compile_pattern(group.images)
    except PatternError as exc:
        return [Problem(f"{where}.images", str(exc))]
    available = tuple(dict.fromkeys((*(f for f in TEMPLATE_FIELDS if f != "session"),
                                     *pattern.fields)))
    problems = []
    if group.raters is not None or (group.label and "rater" in template_fields(group.label)):
        problems += _rater_problems(where, group, available)
        templates = []
    else:
        templates = [("label", group.label)]
    templates += [
        (f"channel_files.{name}", t) for name, t in (group.channel_files or {}).items()]
    for key, template in templates:
        if template is None:
            continue
        try:
            check_template(template, available)
        except PatternError as exc:
            problems.append(Problem(f"{where}.{key}", str(exc)))
    if group.structures is not None:
        problems += _structures_template_problems(f"{where}.structures", group.structures,
                                                  available)
    if group.case_template is not None:
        try:
            check_template(group.case_template, pattern.fields)
            if "/" in group.case_template:
                raise PatternError(f"{group.case_template!r}: a case id has no '/'")
        except PatternError as exc:
            problems.append(Problem(f"{where}.case_template", str(exc)))
    return problems


def _rater_problems(where: str, group: Any, available: tuple[str, ...]) -> list[Problem]:
    if group.raters is None or group.label is None:
        return [Problem(f"{where}.raters", "raters needs a label template with {rater} in its "
                        "file name, and {rater} needs raters (union, majority or {choose: ...})")]
    try:
        check_template(group.label, (*available, "rater"))
        folder, _, file_name = group.label.rpartition("/")
        in_file = template_fields(file_name)
        if in_file.count("rater") != 1 or "rater" in template_fields(folder):
            raise PatternError(f"{group.label!r} needs {{rater}} exactly once, in the file name")
        if set(in_file) - {"rater", "case", "patient", "session"}:
            raise PatternError(f"{group.label!r}: the file name part may use {{rater}}, "
                               "{case}, {patient} and {session} only")
    except PatternError as exc:
        return [Problem(f"{where}.label", str(exc))]
    return []


def _structures_template_problems(where: str, template: str, available: tuple[str, ...]
                                  ) -> list[Problem]:
    try:
        check_template(template, (*available, "structure"))
        folder, _, file_name = template.rpartition("/")
        in_file = template_fields(file_name)
        if in_file.count("structure") != 1 or "structure" in template_fields(folder):
            raise PatternError(f"{template!r} needs {{structure}} exactly once, in the file "
                               "name (the last path component)")
        if set(in_file) - {"structure", "case", "patient", "session"}:
            raise PatternError(f"{template!r}: the file name part may use {{structure}}, "
                               "{case}, {patient} and {session} only")
    except PatternError as exc:
        return [Problem(where, str(exc))]
    return []


def _structure_class_problems(out: dict[str, Any]) -> list[Problem]:
    """Structures (files or one-hot channels) are combined with stable values (structure i is
    value i): the descriptor must say exactly that, so its values and classes stay true for single-structure voxels."""
    problems = []
    foreground = [v for v in out["values"] if v]
    if foreground != list(range(1, len(foreground) + 1)):
        problems.append(Problem("values", f"with one file per structure the values must be "
                                f"1..N, one per structure (got {foreground})"))
    by_value: dict[int, str] = {}
    for name, members in out["classes"].items():
        if len(members) != 1 or members[0] in by_value:
            problems.append(Problem(f"classes.{name}", "with one file per structure each class "
                                    "is exactly one value of its own"))
        else:
            by_value[members[0]] = name
    missing = [v for v in foreground if v not in by_value]
    if missing:
        problems.append(Problem("classes", f"values {missing} have no class; with one file per "
                                "structure every value is one structure's class"))
    for text, name in (out.get("structure_files") or {}).items():
        if name not in out["classes"]:
            problems.append(Problem(f"structure_files.{text}", f"{name!r} is not a class "
                                    f"of this descriptor ({sorted(out['classes'])})"))
    return problems


def _range_problems(out: dict[str, Any]) -> list[Problem]:
    problems = []
    ranges = sorted((low, high, value) for value, (low, high) in
                    (out.get("value_ranges") or {}).items())
    for low, high, value in ranges:
        if value not in out["values"] or value == 0:
            problems.append(Problem(f"value_ranges.{value}", "is not a foreground value "
                                    "declared in 'values'"))
        if not 0 < low <= high:
            problems.append(Problem(f"value_ranges.{value}", f"[{low}, {high}] must be "
                                    "0 < low <= high (zero is background)"))
    for (_, high, a), (low, _, b) in zip(ranges, ranges[1:]):
        if low <= high:
            problems.append(Problem(f"value_ranges.{b}", f"overlaps the range of {a}"))
    return problems


def _split_file_problems(spec: Any) -> list[Problem]:
    problems = []
    suffix = PurePosixPath(spec.path).suffix.lower()
    if suffix not in SPLIT_FILE_SUFFIXES:
        problems.append(Problem("split_file.path", f"{spec.path!r}: a split file is one of "
                                f"{', '.join(SPLIT_FILE_SUFFIXES)}"))
    needs = {".csv": ("id_column", "split_column"),
             ".tsv": ("id_column", "split_column")}.get(suffix, ())
    for key in needs:
        if getattr(spec, key) is None:
            problems.append(Problem(f"split_file.{key}", f"a {suffix} split file needs {key}"))
    if spec.id_pattern is not None:
        try:
            pattern = re.compile(spec.id_pattern)
        except re.error as exc:
            problems.append(Problem("split_file.id_pattern", f"{spec.id_pattern!r} is not a "
                                    f"valid Python regular expression: {exc}"))
        else:
            if "id" not in pattern.groupindex:
                problems.append(Problem("split_file.id_pattern", f"{spec.id_pattern!r} needs a "
                                        "named group (?P<id>...) holding the id"))
    return problems
