"""Normalization settings and the named presets that reproduce published conventions.

A :class:`Settings` value says everything :func:`harmonize.engine.normalize.normalize_case` does to a
case; ``Settings.to_dict()`` is stable (fixed key order, plain JSON types) and is part of the
resume key, so changing any field redoes the affected cases.

Presets (``--preset NAME``, a run file's ``preset:``, :func:`preset_settings`) are data: the
``normalization`` section of ``registry/presets.yaml`` names each one and gives its settings, a
summary, where the convention comes from, deliberate differences from the original and whether it
needs a statistics pass (:class:`PresetInfo`). :data:`PRESETS` holds them, loaded once at import;
a malformed entry is a :class:`~harmonize.errors.DescriptorError` naming the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from harmonize.engine.intensity import CT_SCALINGS
from harmonize.engine.resample import GRID_CONVENTIONS
from harmonize.errors import DescriptorError, HarmonizeError
from harmonize.yamlio import load_registry

CTWindow = tuple[float, float] | Literal["dataset", "foreground"] | None
#: ``Settings.pet_intensity`` values (the rules are in :mod:`harmonize.engine.pet`)
PET_INTENSITIES: tuple[str, ...] = ("suv-clip", "percentile-zscore")


@dataclass(frozen=True)
class Settings:
    """What normalization does to every case of a run.

    * ``spacing``: target spacing in mm (RAS axis order) or ``None`` for native (no resampling).
    * ``interpolation``: for images, ``"linear"`` or ``"bspline"`` (cubic); labels are always
      nearest neighbour.
    * ``ct_window``: ``(lo, hi)`` in HU; ``"dataset"`` = the series window a plugin supplies, else
      the descriptor's ``ct_window``; ``"foreground"`` = the dataset's pooled foreground 0.5/99.5
      percentiles (needs dataset statistics); ``None`` keeps raw HU (integer CT stays exact).
    * ``ct_scaling``: after clipping, ``"unit"`` maps the window to [0, 1], ``"zscore"`` uses the
      image's own mean/std (SAT-DS), ``"dataset-zscore"`` the dataset foreground mean/std
      (nnU-Net).
    * ``mr_percentiles``: MR/CBCT/PET clip percentiles before a per-image z-score; ``None`` = raw.
    * ``intensity``: ``"raw"`` disables every intensity change (all modalities).
    * ``preset``: the preset name these settings came from (recorded only).
    * ``irregular_dicom``: ``"refuse"`` (default) makes a DICOM series that is not one regular
      grid a read error; ``"resample"`` interpolates irregular slice gaps onto a regular grid and
      drops byte-identical duplicated slices (recorded in the operations; README "DICOM input").
      Left out of :meth:`to_dict` at its default, so earlier resume keys and manifests hold.
    * ``grid``: the output-grid convention when resampling (:mod:`harmonize.engine.resample`):
      ``"torchio"`` (default, TorchIO ``Resample``) or ``"monai"`` (MONAI ``Spacing``, the
      ``sat`` preset). Left out of :meth:`to_dict` at its default.
    * ``crop_foreground``: after resampling, cut image and label to the box of image voxels > 0
      (MONAI ``CropForeground``; the ``sat`` preset), before the intensity statistics. Left out
      of :meth:`to_dict` at its default.
    * ``pet_intensity``: PET channels ``"suv-clip"`` (default: SUV kept, clipped to 0..50) or
      ``"percentile-zscore"`` (the MR rule; the ``sat`` preset). See :mod:`harmonize.engine.pet`.
      Left out of :meth:`to_dict` at its default.
    """

    spacing: tuple[float, float, float] | None = None
    interpolation: Literal["linear", "bspline"] = "linear"
    ct_window: CTWindow = "dataset"
    ct_scaling: Literal["unit", "zscore", "dataset-zscore"] = "unit"
    mr_percentiles: tuple[float, float] | None = (0.5, 99.5)
    intensity: Literal["auto", "raw"] = "auto"
    preset: str | None = None
    irregular_dicom: Literal["refuse", "resample"] = "refuse"
    grid: Literal["torchio", "monai"] = "torchio"
    crop_foreground: bool = False
    pet_intensity: Literal["suv-clip", "percentile-zscore"] = "suv-clip"

    def __post_init__(self) -> None:
        def bad(message: str) -> HarmonizeError:
            return HarmonizeError(f"invalid normalization settings: {message}",
                                  hint="see `harmonize run --help` for the allowed values")

        if self.spacing is not None:
            spacing = tuple(float(v) for v in self.spacing)
            if len(spacing) != 3 or any(not (v > 0) for v in spacing):
                raise bad(f"spacing must be three positive numbers (mm), got {self.spacing}")
            object.__setattr__(self, "spacing", spacing)
        if self.interpolation not in ("linear", "bspline"):
            raise bad(f"interpolation must be 'linear' or 'bspline', got {self.interpolation!r}")
        if isinstance(self.ct_window, (tuple, list)):
            lo, hi = (float(v) for v in self.ct_window)
            if not lo < hi:
                raise bad(f"ct_window must be (low, high) with low < high, got {self.ct_window}")
            object.__setattr__(self, "ct_window", (lo, hi))
        elif self.ct_window not in ("dataset", "foreground", None):
            raise bad(f"ct_window must be (low, high), 'dataset', 'foreground' or None, "
                      f"got {self.ct_window!r}")
        if self.ct_scaling not in CT_SCALINGS:
            raise bad(f"ct_scaling must be one of {CT_SCALINGS}, got {self.ct_scaling!r}")
        if self.mr_percentiles is not None:
            lo, hi = (float(v) for v in self.mr_percentiles)
            if not 0 <= lo < hi <= 100:
                raise bad(f"mr_percentiles must satisfy 0 <= low < high <= 100, "
                          f"got {self.mr_percentiles}")
            object.__setattr__(self, "mr_percentiles", (lo, hi))
        if self.intensity not in ("auto", "raw"):
            raise bad(f"intensity must be 'auto' or 'raw', got {self.intensity!r}")
        if self.grid not in GRID_CONVENTIONS:
            raise bad(f"grid must be one of {GRID_CONVENTIONS}, got {self.grid!r}")
        if not isinstance(self.crop_foreground, bool):
            raise bad(f"crop_foreground must be true or false, got {self.crop_foreground!r}")
        if self.pet_intensity not in PET_INTENSITIES:
            raise bad(f"pet_intensity must be one of {PET_INTENSITIES}, got "
                      f"{self.pet_intensity!r}")
        if self.irregular_dicom not in ("refuse", "resample"):
            raise bad(f"irregular_dicom must be 'refuse' or 'resample', "
                      f"got {self.irregular_dicom!r}")

    @property
    def needs_dataset_stats(self) -> bool:
        """True when normalizing a CT case needs :func:`dataset_statistics` first."""
        return self.intensity == "auto" and (
            self.ct_window == "foreground" or self.ct_scaling == "dataset-zscore"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types in field order (tuples become lists); stable, used as resume key."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OMITTED_AT_DEFAULT and value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Inverse of :meth:`to_dict`; unknown keys are an error (typos must not pass)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HarmonizeError(f"unknown normalization setting(s) {unknown}",
                                 hint=f"allowed: {sorted(known)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (validated)."""
        values = asdict(self)
        values.update(changes)
        return Settings(**values)


#: Fields added after manifests v1: left out of :meth:`Settings.to_dict` at their default value.
_OMITTED_AT_DEFAULT = ("irregular_dicom", "grid", "crop_foreground", "pet_intensity")


@dataclass(frozen=True)
class PresetInfo:
    """A named preset: its settings, a one-line summary and where the convention comes from."""

    name: str
    settings: Settings
    summary: str
    source: str
    notes: str = ""
    requires: tuple[str, ...] = field(default_factory=tuple)


PRESETS_FILE = "presets.yaml"
_PRESET_KEYS = {"settings", "summary", "source", "notes", "requires"}


def parse_presets(data: Any, source: str = f"registry/{PRESETS_FILE}") -> dict[str, PresetInfo]:
    """Name -> :class:`PresetInfo` from a ``normalization`` mapping (see ``registry/presets.yaml``).

    Every entry needs ``settings`` (keys of :class:`Settings` but ``preset``), ``summary`` and
    ``source``; the name is recorded as the settings' ``preset``. Anything else is an error.
    """

    def bad(message: str) -> DescriptorError:
        return DescriptorError(f"presets: {message}", file=source)

    if not isinstance(data, dict):
        raise bad("'normalization' must map preset names to entries")
    presets: dict[str, PresetInfo] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("settings"), dict):
            raise bad(f"{name!r} needs a 'settings' mapping")
        unknown = sorted(set(entry) - _PRESET_KEYS)
        missing = [k for k in ("summary", "source") if not isinstance(entry.get(k), str)]
        if unknown or missing or "preset" in entry["settings"]:
            raise bad(f"{name!r}: unknown key(s) {unknown}, missing text {missing}, or a "
                      "'preset' setting (the name is recorded automatically)")
        try:
            settings = Settings.from_dict({**entry["settings"], "preset": str(name)})
        except HarmonizeError as exc:
            raise bad(f"{name!r}: {exc.message}") from None
        except (TypeError, ValueError) as exc:
            raise bad(f"{name!r}: bad settings value ({exc})") from None
        presets[str(name)] = PresetInfo(
            name=str(name), settings=settings, summary=entry["summary"], source=entry["source"],
            notes=str(entry.get("notes", "")),
            requires=tuple(str(r) for r in entry.get("requires", ())))
    return presets


PRESETS: dict[str, PresetInfo] = parse_presets(load_registry(PRESETS_FILE).get("normalization"))


def preset_settings(name: str) -> Settings:
    """The :class:`Settings` of preset ``name``; unknown names list the known ones."""
    try:
        return PRESETS[name].settings
    except KeyError:
        raise HarmonizeError(
            f"unknown preset {name!r}",
            hint=f"choose one of: {', '.join(sorted(PRESETS))}",
        ) from None
