"""Run configuration: what to process (targets) and how (normalization settings), from flags or YAML.

A run is a list of :class:`Target` (dataset id + root + per-dataset setting overrides) plus run-wide
settings. The same settings keys work on the command line, in the ``settings:`` section of a run file
and in each dataset's entry::

    out: harmonized                 # relative paths are relative to this file's folder
    workers: 4
    executor: local                 # or dask (+ scheduler: tcp://host:8786)
    seed: 0
    ratios: [0.7, 0.1, 0.2]
    descriptors: [my_datasets/]     # extra YAML-only dataset descriptors
    allow_shrink: false             # true: a manifest may lose cases (--allow-shrink)
    settings:                       # run-wide; every key optional
      preset: null                  # a name from registry/presets.yaml, e.g. sat
      spacing: [1.5, 1.5, 3]        # or native (default), or one number for isotropic
      interpolation: linear         # or bspline
      ct_window: dataset            # or [-200, 300], foreground, or none (raw HU)
      ct_scaling: unit              # or zscore, dataset-zscore
      mr_percentiles: [0.5, 99.5]   # or none
      intensity: auto               # or raw
    datasets:
      my-dataset:
        root: /data/my-dataset
        ct_window: [-200, 300]      # per-dataset override of any settings key

Resolution for one dataset: the run-wide settings are the run-wide ``preset`` (or the defaults of
:class:`~harmonize.engine.normalize.Settings`) with the other run-wide keys replacing its fields; the
dataset's keys then replace fields of that, key by key. A dataset that names its own ``preset``
starts again from that preset with only its own keys: the run-wide keys (and settings flags given
with ``--config``) do not apply to it. Keys are strict: an unknown key is a :class:`ConfigError`
naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harmonize.engine.normalize import Settings, preset_settings
from harmonize.engine.run_schema import EXECUTORS, RUN_SCHEMA, SETTING_KEYS
from harmonize.errors import HarmonizeError
from harmonize.manifest.splits import check_ratios
from harmonize.schemacheck import describe_problems, json_view, schema_problems
from harmonize.yamlio import load_yaml

__all__ = ["EXECUTORS", "SCHEMA_FILE", "SETTING_KEYS", "ConfigError", "RunConfig", "Target",
           "apply_overrides", "build_settings", "load_config", "parse_config", "parse_setting",
           "is_number", "parse_settings"]

#: The published schema's file name under ``registry/schema/``.
SCHEMA_FILE = "run.schema.json"
_NONE_WORDS = ("none", "null", "")


class ConfigError(HarmonizeError):
    """A run file, flag or setting has an unknown key or a bad value."""

    kind = "config"


@dataclass(frozen=True)
class Target:
    """One dataset to process: its id, the folder it was released into, and setting overrides.

    ``overrides`` maps keys of :data:`SETTING_KEYS` to values (checked by :func:`parse_settings`).
    """

    dataset: str
    root: Path
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "overrides", parse_settings(dict(self.overrides),
                                                             where=f"dataset {self.dataset}"))

    def settings(self, base: Settings) -> Settings:
        """``base`` with this target's overrides (a preset override restarts from that preset)."""
        return apply_overrides(base, self.overrides)


@dataclass
class RunConfig:
    """A parsed run file. ``None`` means "not given here" (flags or defaults decide)."""

    targets: list[Target]
    settings: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None
    workers: int | None = None
    executor: str | None = None
    scheduler: str | None = None
    seed: int | None = None
    ratios: tuple[float, float, float] | None = None
    descriptors: list[Path] = field(default_factory=list)
    allow_shrink: bool | None = None
    source: Path | None = None


# -- settings values --------------------------------------------------------------------------

def _fail(message: str, key: str, where: str | None, file: Path | None) -> ConfigError:
    """``where`` is a run file's key path (``settings``, ``datasets.<id>``: no spaces), which the
    key extends as the schema's messages do, or a place such as ``command line``."""
    if where and " " not in where:
        key, where = f"{where}.{key}", None
    place = f"{where}: " if where else ""
    return ConfigError(
        f"{place}key {key!r}: {message}", file=file,
        hint="see the run file format in the README ('harmonize run')",
    )


def _numbers(value: Any, n: int, key: str, where: str | None, file: Path | None) -> tuple[float, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise _fail(f"expected {n} numbers, got {value!r}", key, where, file)
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise _fail(f"expected {n} numbers, got {value!r}", key, where, file) from None
    if not all(math.isfinite(v) for v in numbers):
        raise _fail(f"numbers must be finite, got {value!r}", key, where, file)
    return numbers


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)


def parse_setting(key: str, value: Any, *, where: str | None = None, file: Path | None = None) -> Any:
    """Check one settings value and return it in the form :class:`Settings` takes.

    Words (``native``, ``dataset``, ``none``) and numbers (lists, or strings such as ``"1.5 1.5 3"``
    or ``"-200,300"``) are parsed here; :class:`Settings` then checks the value itself.
    """
    if key not in SETTING_KEYS:
        raise _fail(f"unknown settings key; allowed: {list(SETTING_KEYS)}", key, where, file)
    if key == "preset":
        return _preset(value, where, file)
    if isinstance(value, str):
        word = value.strip().lower()
        if key == "spacing" and word == "native":
            return None
        if key in ("spacing", "ct_window", "mr_percentiles") and word in _NONE_WORDS:
            return None
        numbers = word.replace(",", " ").split()
        if not numbers or not all(is_number(v) for v in numbers):
            parsed: Any = word
        elif key == "spacing" and len(numbers) == 1:
            parsed = _numbers(numbers * 3, 3, key, where, file)
        else:
            parsed = _numbers(numbers, 3 if key == "spacing" else 2, key, where, file)
    elif key == "spacing" and isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = _numbers([value] * 3, 3, key, where, file)
    elif isinstance(value, (list, tuple)):
        parsed = _numbers(value, 3 if key == "spacing" else 2, key, where, file)
    else:
        parsed = value
    try:
        dataclasses.replace(Settings(), **{key: parsed})
    except HarmonizeError as exc:
        raise _fail(exc.message.removeprefix("invalid normalization settings: "), key, where,
                    file) from None
    except (TypeError, ValueError) as exc:
        raise _fail(f"bad value {value!r}: {exc}", key, where, file) from None
    return parsed


def is_number(token: str) -> bool:
    """True when ``token`` parses as a float."""
    try:
        float(token)
    except ValueError:
        return False
    return True


def _preset(value: Any, where: str | None, file: Path | None) -> str | None:
    if _is_none(value):
        return None
    if not isinstance(value, str):
        raise _fail(f"must be a preset name, got {value!r}", "preset", where, file)
    try:
        preset_settings(value.strip())
    except HarmonizeError as exc:
        raise _fail(exc.message + (f" ({exc.hint})" if exc.hint else ""), "preset", where,
                    file) from None
    except (KeyError, ValueError) as exc:
        raise _fail(f"unknown preset {value!r}: {exc}", "preset", where, file) from None
    return value.strip()


def parse_settings(raw: Mapping[str, Any], *, where: str | None = None,
                   file: Path | None = None) -> dict[str, Any]:
    """Check a mapping of settings keys (strict) and return the parsed values."""
    unknown = sorted(set(raw) - set(SETTING_KEYS))
    if unknown:
        raise _fail(f"unknown settings key; allowed: {list(SETTING_KEYS)}", unknown[0], where, file)
    return {key: parse_setting(key, value, where=where, file=file) for key, value in raw.items()}


def build_settings(keys: Mapping[str, Any]) -> Settings:
    """Settings from parsed keys: the named preset (or the defaults), then every other key."""
    preset = keys.get("preset")
    base = preset_settings(preset) if preset else Settings()
    return dataclasses.replace(base, **{k: v for k, v in keys.items() if k != "preset"})


def apply_overrides(base: Settings, overrides: Mapping[str, Any]) -> Settings:
    """``base`` with ``overrides`` (parsed keys); an overriding preset restarts from the preset."""
    if not overrides:
        return base
    if overrides.get("preset"):
        return build_settings(overrides)
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if k != "preset"})


# -- run files ----------------------------------------------------------------------------------

def _path(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value.strip()))
    return path if path.is_absolute() else base / path


def load_config(path: Path) -> RunConfig:
    """Read and check a run file (YAML). Relative paths are taken from the file's folder."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read run file: {exc}", file=path,
                          hint="fix the YAML syntax or the path") from exc
    return parse_config(data, source=path)


def parse_config(data: Any, *, source: Path) -> RunConfig:
    """Check a run-file mapping (as loaded from YAML) and return a :class:`RunConfig`.

    Structure, types, allowed words and unknown keys are checked by :data:`RUN_SCHEMA` (a
    :class:`ConfigError` naming the file and each key path); values are then converted and
    checked by :func:`parse_settings` and :func:`~harmonize.manifest.splits.check_ratios`.
    """
    problems = schema_problems(data, RUN_SCHEMA)
    if problems:
        raise ConfigError(describe_problems(problems), file=source,
                          hint="see the run file format in the README ('harmonize run') and its "
                          f"JSON Schema, registry/schema/{SCHEMA_FILE}")
    data = json_view(data)
    base = source.parent
    config = RunConfig(targets=[], source=source, workers=data.get("workers"),
                       executor=data.get("executor"), scheduler=data.get("scheduler"),
                       seed=data.get("seed"), allow_shrink=data.get("allow_shrink"))
    if data.get("out") is not None:
        config.out = _path(data["out"], base)
    if data.get("ratios") is not None:
        try:
            config.ratios = check_ratios(data["ratios"])
        except HarmonizeError as exc:
            raise _fail(exc.message, "ratios", None, source) from None
    descriptors = data.get("descriptors") or []
    config.descriptors = [_path(d, base)
                          for d in ([descriptors] if isinstance(descriptors, str) else descriptors)]
    config.settings = parse_settings(data.get("settings") or {}, where="settings", file=source)
    for dataset, entry in data["datasets"].items():
        entry = {"root": entry} if isinstance(entry, str) else entry
        overrides = parse_settings({k: v for k, v in entry.items() if k != "root"},
                                   where=f"datasets.{dataset}", file=source)
        config.targets.append(Target(str(dataset), _path(entry["root"], base), overrides))
    return config
