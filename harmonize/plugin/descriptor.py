"""Dataset descriptors: the data half of a dataset plugin (``registry/datasets/<id>.yaml``).

A descriptor states what a dataset *is* (label values, class merges, modality, licence, ...).
Loading is strict: an unknown key, a wrong type or a bad value is a :class:`DescriptorError`
naming the file and the key, because a typo in a label map silently corrupts training data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from harmonize.errors import DescriptorError
from harmonize.labels.channels import load_channels
from harmonize.plugin.case import SPLITS
from harmonize.yamlio import load_yaml

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MODALITIES = ("CT", "MR", "PET", "US", "XR")


@dataclass(frozen=True)
class LayoutGroup:
    """One glob of images in a YAML-only dataset, with its label template and official split.

    ``label`` is a path template relative to the root; ``{case}`` is the case id, ``{name}`` the
    image file name, ``{parent}`` the image's folder relative to the root.
    """

    images: str
    label: str | None = None
    split: str | None = None
    label_required: bool = True


@dataclass(frozen=True)
class Descriptor:
    """Everything harmonize needs to know about a dataset that is data rather than code.

    ``channels`` names the image channels in file order (names or synonyms from
    ``registry/channels.yaml``); ``channel_synonyms`` maps this dataset's own channel names onto
    canonical ones (``{MRI: T1}``). Both are checked against the channel vocabulary on load.
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
    official_split: str = ""
    expected_root: str = ""
    overlaps: tuple[Mapping[str, str], ...] = ()
    layout: tuple[LayoutGroup, ...] = ()
    case_id: str | None = None
    patient_id: str | None = None
    source_file: Path | None = field(default=None, compare=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)


_KEYS = {f.name for f in fields(Descriptor)} - {"source_file"}
_REQUIRED = ("id", "name", "modality", "values", "classes")
_LAYOUT_KEYS = {f.name for f in fields(LayoutGroup)}


def load_descriptor(path: Path) -> Descriptor:
    """Read and validate one descriptor file."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DescriptorError(
            f"cannot read descriptor: {exc}", file=path, hint="fix the YAML syntax"
        ) from exc
    return parse_descriptor(data, source=path)


def parse_descriptor(data: Any, *, source: Path | None = None) -> Descriptor:
    """Validate a descriptor mapping (as loaded from YAML) and return a :class:`Descriptor`."""
    dataset = data.get("id") if isinstance(data, dict) else None

    def fail(message: str, key: str | None = None) -> DescriptorError:
        where = f"key {key!r}: " if key else ""
        return DescriptorError(
            where + message,
            dataset=dataset if isinstance(dataset, str) else None,
            file=source,
            hint="see the descriptor format in README.md ('Add a dataset')",
        )

    if not isinstance(data, dict):
        raise fail("a descriptor must be a YAML mapping")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise fail(f"unknown key(s) {unknown}; allowed: {sorted(_KEYS)}", unknown[0])
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise fail(f"missing required key(s) {missing}", missing[0])

    out: dict[str, Any] = {}
    for key in ("id", "name", "modality", "region", "licence", "citation", "homepage",
                "download", "version", "description", "official_split", "expected_root"):
        if key in data:
            if not isinstance(data[key], str):
                raise fail(f"must be a string, got {type(data[key]).__name__}", key)
            out[key] = data[key].strip()
    if not _ID.match(out["id"]):
        raise fail("must be lowercase letters, digits, '.', '_' or '-'", "id")
    if out["modality"] not in MODALITIES:
        raise fail(f"must be one of {MODALITIES}", "modality")

    out["values"] = _parse_values(data["values"], fail)
    out["classes"] = _parse_classes(data["classes"], out["values"], fail)
    if "cases" in data:
        if not isinstance(data["cases"], int) or data["cases"] < 0:
            raise fail("must be a non-negative integer", "cases")
        out["cases"] = data["cases"]
    if "channels" in data:
        chans = data["channels"]
        if not isinstance(chans, list) or not chans or not all(isinstance(c, str) for c in chans):
            raise fail("must be a non-empty list of channel names", "channels")
        out["channels"] = tuple(chans)
    if "channel_synonyms" in data:
        out["channel_synonyms"] = _parse_channel_synonyms(data["channel_synonyms"], fail)
    _check_channels(out, source)
    if "ct_window" in data:
        win = data["ct_window"]
        if (
            not isinstance(win, list)
            or len(win) != 2
            or not all(isinstance(v, (int, float)) for v in win)
            or win[0] >= win[1]
        ):
            raise fail("must be [low, high] in HU with low < high", "ct_window")
        out["ct_window"] = (float(win[0]), float(win[1]))
    if "overlaps" in data:
        ovl = data["overlaps"]
        if not isinstance(ovl, list) or not all(
            isinstance(o, dict) and isinstance(o.get("dataset"), str) for o in ovl
        ):
            raise fail("must be a list of {dataset: id, note: text}", "overlaps")
        out["overlaps"] = tuple(ovl)
    for key in ("case_id", "patient_id"):
        if key in data:
            try:
                pattern = re.compile(data[key])
            except (re.error, TypeError) as exc:
                raise fail(f"not a valid regular expression: {exc}", key) from exc
            if "id" not in pattern.groupindex:
                raise fail("the regular expression needs a named group (?P<id>...)", key)
            out[key] = data[key]
    if "layout" in data:
        out["layout"] = _parse_layout(data["layout"], fail)
    return Descriptor(**out, source_file=source)


def _parse_channel_synonyms(raw: Any, fail: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in raw.items()):
        raise fail("must map the dataset's channel names to canonical channel names "
                   "(registry/channels.yaml)", "channel_synonyms")
    return dict(raw)


def _check_channels(out: dict[str, Any], source: Path | None) -> None:
    """Every channel name and every channel_synonyms target must be in the channel vocabulary."""
    vocabulary = load_channels()
    for target in out.get("channel_synonyms", {}).values():
        vocabulary.resolve(target, dataset=out["id"], file=source)
    vocabulary.canonical(out.get("channels"), modality=out["modality"], dataset=out["id"],
                         file=source, synonyms=out.get("channel_synonyms"))


def _parse_values(raw: Any, fail: Any) -> dict[int, str]:
    if not isinstance(raw, dict) or not raw:
        raise fail("must map label values (integers) to the release's names", "values")
    values: dict[int, str] = {}
    for key, name in raw.items():
        try:
            value = int(key)
        except (TypeError, ValueError):
            raise fail(f"label value {key!r} is not an integer", "values") from None
        if value < 0 or not isinstance(name, str):
            raise fail(f"label value {key!r} must be >= 0 with a string name", "values")
        values[value] = name
    return dict(sorted(values.items()))


def _parse_classes(raw: Any, values: Mapping[int, str], fail: Any) -> dict[str, tuple[int, ...]]:
    if not isinstance(raw, dict) or not raw:
        raise fail("must map canonical names to lists of label values", "classes")
    classes: dict[str, tuple[int, ...]] = {}
    for name, members in raw.items():
        if isinstance(members, int):
            members = [members]
        if not isinstance(name, str) or not isinstance(members, list) or not members:
            raise fail(f"class {name!r} must map to a non-empty list of label values", "classes")
        for value in members:
            if not isinstance(value, int) or value not in values or value == 0:
                raise fail(
                    f"class {name!r} uses label value {value!r}, which is not a foreground value "
                    f"in 'values' ({sorted(v for v in values if v)})",
                    "classes",
                )
        classes[name] = tuple(sorted(set(members)))
    return classes


def _parse_layout(raw: Any, fail: Any) -> tuple[LayoutGroup, ...]:
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise fail("must be a list of {images, label, split} groups", "layout")
    groups = []
    for group in raw:
        if not isinstance(group, dict):
            raise fail("each group must be a mapping", "layout")
        unknown = sorted(set(group) - _LAYOUT_KEYS)
        if unknown:
            raise fail(f"unknown key(s) {unknown} in a group; allowed: {sorted(_LAYOUT_KEYS)}", "layout")
        if not isinstance(group.get("images"), str):
            raise fail("each group needs 'images', a glob relative to the dataset root", "layout")
        for key in ("images", "label"):
            pattern = group.get(key)
            if isinstance(pattern, str) and (pattern.startswith(("/", "\\")) or ".." in Path(pattern).parts):
                raise fail(f"{key} {pattern!r} must stay inside the dataset root", "layout")
        if group.get("split") not in (None, *SPLITS):
            raise fail(f"split must be one of {SPLITS}", "layout")
        groups.append(LayoutGroup(**group))
    return tuple(groups)
