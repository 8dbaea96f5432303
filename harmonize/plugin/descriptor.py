"""Dataset descriptors: the data half of a dataset plugin (``registry/datasets/<id>.yaml``).

A descriptor states what a dataset *is* (label values, class merges, modality, licence, ...).
Its structure is :data:`~harmonize.plugin.descriptor_schema.DESCRIPTOR_SCHEMA` (published as
``registry/schema/descriptor.schema.json``). Loading is strict: an unknown key, a wrong type or a
bad value is a :class:`DescriptorError` naming the file and the key path, because a typo in a
label map silently corrupts training data.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harmonize.errors import DescriptorError
from harmonize.labels.channels import load_channels
from harmonize.plugin.descriptor_schema import DESCRIPTOR_SCHEMA, MODALITIES
from harmonize.plugin.layout_checks import layout_problems
from harmonize.schemacheck import Problem, describe_problems, json_view, schema_problems
from harmonize.yamlio import load_yaml

__all__ = ["MODALITIES", "SCHEMA_FILE", "Descriptor", "LayoutGroup", "SplitFile",
           "load_descriptor", "parse_descriptor"]

#: The published schema's file name under ``registry/schema/``.
SCHEMA_FILE = "descriptor.schema.json"


@dataclass(frozen=True)
class LayoutGroup:
    """One glob of images in a YAML-only dataset, with its label template and official split.

    ``images`` is a glob with optional placeholders (:mod:`harmonize.plugin.layout_paths`);
    ``label`` and ``structures`` (one mask per structure, ``{structure}`` in the file name) are
    path templates relative to the root; ``{case}`` is the case id, ``{name}`` the image file
    name, ``{parent}`` the image's folder relative to the root. ``channel_files`` maps channel
    names to one template each, in channel order; ``raters`` (union, majority or
    ``{choose: <rater>}``) combines the files a label template with ``{rater}`` names.
    ``duplicates: skip`` lets an earlier group's case win over this group's same case id
    (a release's corrected copies listed first); the default ``error`` refuses it.
    ``case_template`` builds the case id's text from several placeholders of ``images``
    (``"{patient}_{study}"``) where no single path part is unique. ``rescale`` (slope,
    intercept) is this group's images' stored-to-physical rescale; it wins over the
    descriptor's (one centre of a release stores CT +1000, another HU).
    """

    images: str
    label: str | None = None
    structures: str | None = None
    channel_files: Mapping[str, str] | None = None
    raters: str | Mapping[str, str] | None = None
    images_root: str | None = None
    label_root: str | None = None
    split: str | None = None
    label_required: bool = True
    duplicates: str = "error"
    case_template: str | None = None
    rescale: tuple[float, float] | None = None


@dataclass(frozen=True)
class SplitFile:
    """Where a release states its official split (see ``split_file`` in the schema)."""

    path: str
    id_column: str | None = None
    split_column: str | None = None
    delimiter: str | None = None
    id_key: str | None = None
    id_pattern: str | None = None
    split: str | None = None
    by: str = "case"


@dataclass(frozen=True)
class Descriptor:
    """Everything harmonize needs to know about a dataset that is data rather than code.

    ``channels`` names the image channels in file order (names or synonyms from
    ``registry/channels.yaml``); ``channel_synonyms`` maps this dataset's own channel names onto
    canonical ones (``{MRI: T1}``). Both are checked against the channel vocabulary on load.
    ``rescale`` is ``(slope, intercept)``: physical value = stored * slope + intercept, applied
    once by the one reading layer (:mod:`harmonize.read.case`).
    """

    id: str
    name: str
    modality: str
    values: Mapping[int, str]
    classes: Mapping[str, tuple[int, ...]]
    region: str = ""
    licence: str = ""
    citation: str = ""
    homepage: str = ""
    download: str = ""
    version: str = ""
    description: str = ""
    cases: int | None = None
    channels: tuple[str, ...] | None = None
    channel_synonyms: Mapping[str, str] = field(default_factory=dict)
    ct_window: tuple[float, float] | None = None
    rescale: tuple[float, float] | None = None
    official_split: str = ""
    expected_root: str = ""
    sat_ds: tuple[str, ...] = ()
    overlaps: tuple[Mapping[str, str], ...] = ()
    layout: tuple[LayoutGroup, ...] = ()
    case_id: str | None = None
    patient_id: str | None = None
    channel_grid: str = "same"
    partial_labels: bool = False
    roi_patterns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    structure_files: Mapping[str, str] = field(default_factory=dict)
    split_names: Mapping[str, str] = field(default_factory=dict)
    split_file: SplitFile | None = None
    split_ids: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    exclude_cases: Mapping[str, str] = field(default_factory=dict)
    value_ranges: Mapping[int, tuple[float, float]] = field(default_factory=dict)
    label_encoding: str = "values"
    roots: Mapping[str, str] = field(default_factory=dict)
    source_file: Path | None = field(default=None, compare=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)


def load_descriptor(path: Path) -> Descriptor:
    """Read and validate one descriptor file.

    Each failure is a :class:`DescriptorError` naming the file and saying what went wrong: the
    file does not exist (the usual cause: a plugin package that does not install its YAML as
    package data), cannot be read (a folder, permissions), is not valid YAML, or breaks the format.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DescriptorError(
            "descriptor file does not exist", file=path,
            hint="check the path; a plugin package must install its descriptor with its code "
            "(package data, see README 'Add a dataset') or pass the descriptor to the plugin",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DescriptorError(f"cannot read descriptor file: {exc}", file=path,
                              hint="pass a readable UTF-8 YAML file") from exc
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise DescriptorError(f"descriptor is not valid YAML: {exc}", file=path,
                              hint="fix the YAML syntax") from exc
    return parse_descriptor(data, source=path)


def parse_descriptor(data: Any, *, source: Path | None = None) -> Descriptor:
    """Validate a descriptor mapping (as loaded from YAML) and return a :class:`Descriptor`.

    Structure, types, allowed values and unknown keys are checked by :data:`DESCRIPTOR_SCHEMA`;
    then what a schema cannot say: ``classes`` use values declared in ``values`` (each value
    once), channel names are in the channel vocabulary, ``ct_window`` is low < high, ``case_id``
    and ``patient_id`` compile (Python regexes) with a group ``id``, ``roi_patterns`` compile
    and name classes. Every problem is a
    :class:`DescriptorError` naming the file and the key path (``classes.kidney[2]``).
    """
    dataset = data.get("id") if isinstance(data, dict) else None

    def fail(problems: list[Problem]) -> DescriptorError:
        return DescriptorError(
            describe_problems(problems),
            dataset=dataset if isinstance(dataset, str) else None,
            file=source,
            hint="see the descriptor format in README.md ('Add a dataset') and its JSON Schema, "
            f"registry/schema/{SCHEMA_FILE}",
        )

    problems = schema_problems(data, DESCRIPTOR_SCHEMA)
    if problems:
        raise fail(problems)
    data = json_view(data)
    out: dict[str, Any] = {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
    out["values"] = dict(sorted((int(k), name) for k, name in data["values"].items()))
    out["classes"] = {name: tuple(sorted(set([members] if isinstance(members, int) else members)))
                      for name, members in data["classes"].items()}
    if "roi_patterns" in data:
        out["roi_patterns"] = {name: tuple(items) for name, items in data["roi_patterns"].items()}
    for key in ("channels", "overlaps"):
        if key in data:
            out[key] = tuple(data[key])
    if "sat_ds" in data:
        out["sat_ds"] = (data["sat_ds"],) if isinstance(data["sat_ds"], str) else tuple(data["sat_ds"])
    if "ct_window" in data:
        out["ct_window"] = (float(data["ct_window"][0]), float(data["ct_window"][1]))
    if "rescale" in data:
        out["rescale"] = _rescale(data["rescale"])
    if "layout" in data:
        groups = data["layout"] if isinstance(data["layout"], list) else [data["layout"]]
        out["layout"] = tuple(LayoutGroup(**{**group, "rescale": _rescale(group["rescale"])}
                                          if "rescale" in group else group)
                              for group in groups)
    if "split_file" in data:
        out["split_file"] = SplitFile(**data["split_file"])
    if "value_ranges" in data:
        out["value_ranges"] = {int(k): (v[0], v[1]) for k, v in data["value_ranges"].items()}
    if "split_ids" in data:
        out["split_ids"] = {k: tuple(v) for k, v in data["split_ids"].items()}
    problems = _semantic_problems(data, out) + layout_problems(data, out)
    if problems:
        raise fail(problems)
    _check_channels(out, source)
    return Descriptor(**out, source_file=source)


def _rescale(value: Mapping[str, Any]) -> tuple[float, float]:
    """A schema-valid ``rescale`` object as ``(slope, intercept)``."""
    return float(value.get("slope", 1)), float(value["intercept"])


def _semantic_problems(data: dict[str, Any], out: dict[str, Any]) -> list[Problem]:
    """What the schema cannot check: cross-field references, Python regexes, low < high."""
    problems = []
    if len(out["values"]) < len(data["values"]):
        problems.append(Problem("values", f"a label value is given twice "
                                f"({sorted(data['values'], key=int)} as integers)"))
    foreground = sorted(v for v in out["values"] if v)
    for name, members in data["classes"].items():
        for k, value in enumerate(members if isinstance(members, list) else [members]):
            if value not in out["values"]:
                where = f"classes.{name}" + (f"[{k}]" if isinstance(members, list) else "")
                problems.append(Problem(where, f"{value!r} is not a foreground value declared "
                                        f"in 'values' ({foreground})"))
    if out.get("sat_ds"):
        from harmonize.labels.sat_ds import load_sat_ds

        known = load_sat_ds()
        for k, name in enumerate(out["sat_ds"]):
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=1)
                guess = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(Problem(f"sat_ds[{k}]", f"{name!r} is not a SAT-DS dataset{guess};"
                                        " see registry/sat-ds.yaml"))
    if "ct_window" in out and not out["ct_window"][0] < out["ct_window"][1]:
        problems.append(Problem("ct_window", f"{data['ct_window']!r} must be (low, high) in HU "
                                "with low < high"))
    for name, items in data.get("roi_patterns", {}).items():
        if name not in data["classes"]:
            problems.append(Problem(f"roi_patterns.{name}", f"{name!r} is not a class of this "
                                    f"descriptor ({', '.join(data['classes'])})"))
        for k, item in enumerate(items):
            try:
                re.compile(item)
            except re.error as exc:
                problems.append(Problem(f"roi_patterns.{name}[{k}]", f"{item!r} is not a valid "
                                        f"Python regular expression: {exc}"))
    for key in ("case_id", "patient_id"):
        if key not in data:
            continue
        try:
            pattern = re.compile(data[key])
        except re.error as exc:
            problems.append(Problem(key, f"{data[key]!r} is not a valid Python regular "
                                    f"expression: {exc}"))
            continue
        if "id" not in pattern.groupindex:
            problems.append(Problem(key, f"{data[key]!r} needs a named group (?P<id>...) "
                                    "holding the id"))
    return problems


def _check_channels(out: dict[str, Any], source: Path | None) -> None:
    """Every channel name and every channel_synonyms target must be in the channel vocabulary."""
    vocabulary = load_channels()
    for name, target in out.get("channel_synonyms", {}).items():
        try:
            vocabulary.resolve(target, dataset=out["id"], file=source)
        except DescriptorError as exc:
            raise _at(exc, f"channel_synonyms.{name}") from None
    for k, group in enumerate(out.get("layout") or ()):
        for name in group.channel_files or {}:
            try:
                vocabulary.resolve(name, dataset=out["id"], file=source,
                                   synonyms=out.get("channel_synonyms"))
            except DescriptorError as exc:
                raise _at(exc, f"layout[{k}].channel_files.{name}") from None
    for k, name in enumerate(out.get("channels") or ()):
        try:
            vocabulary.resolve(name, dataset=out["id"], file=source,
                               synonyms=out.get("channel_synonyms"))
        except DescriptorError as exc:
            raise _at(exc, f"channels[{k}]") from None
    try:  # two names of one canonical channel
        vocabulary.canonical(out.get("channels"), modality=out["modality"], dataset=out["id"],
                             file=source, synonyms=out.get("channel_synonyms"))
    except DescriptorError as exc:
        raise _at(exc, "channels") from None


def _at(exc: DescriptorError, path: str) -> DescriptorError:
    """``exc`` with the key path in front of its message."""
    return DescriptorError(str(Problem(path, exc.message)), dataset=exc.dataset, case=exc.case,
                           file=exc.file, hint=exc.hint)
