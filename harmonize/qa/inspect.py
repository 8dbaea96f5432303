"""One case measured for ``harmonize qa``: geometry, intensities, label numbers, flags, panels.

:func:`inspect_case` reads the case through the one reading layer
(:func:`harmonize.read.case.read_case`; source and normalized records alike) and returns a
:class:`CaseQA` (and montage :class:`~harmonize.qa.montage.Panels` when asked). :mod:`harmonize.qa.summary` collects
cases into a report.

Flags (codes in :data:`FLAG_CODES`, thresholds in :data:`THRESHOLDS`):

* ``unreadable``: the image or mask cannot be read (the error is the message);
* ``empty_mask``: a mask with no foreground voxel;
* ``unexpected_values``: mask values that no class of the record maps to;
* ``grid_mismatch``: the mask is not on the image's grid by the one rule every reader applies
  (:mod:`harmonize.read.grid`: shape, or affine beyond its tolerance);
* ``spacing_outlier``: a spacing more than ``spacing_outlier_factor`` times above or below the
  dataset's median on that axis (datasets of ``min_cases_for_outliers`` cases or more);
* ``anisotropic``: largest / smallest spacing above ``anisotropy``;
* ``tiny_volume``: an axis shorter than ``min_axis_voxels`` voxels;
* ``non_ras``: a normalized record (``stage`` normalized) whose file is not RAS;
* ``record_mismatch``: the record's shape, spacing or orientation disagrees with the file;
* ``constant_image``: every voxel of a channel has the same value.

Intensity statistics are in HU for CT and source units otherwise where the record allows it
(:mod:`harmonize.qa.fingerprint`): over the whole image (:mod:`harmonize.qa.stats`), the
foreground and each class; components per class: :mod:`harmonize.qa.components`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.errors import GridMismatchError, HarmonizeError
from harmonize.manifest.records import ManifestRecord
from harmonize.qa.fingerprint import LabelMeasures, Units, measure_labels, physical_channels
from harmonize.qa.montage import Panels, case_slices
from harmonize.qa.stats import ChannelStats, _pick, channel_stats, value_counts
from harmonize.read.case import read_case, unknown_label_values
from harmonize.read.volume import Volume

THRESHOLDS: dict[str, float] = {
    "anisotropy": 5.0,
    "spacing_outlier_factor": 2.0,
    "min_axis_voxels": 8,
    "min_cases_for_outliers": 3,
}
FLAG_CODES = ("unreadable", "empty_mask", "unexpected_values", "grid_mismatch", "spacing_outlier",
              "anisotropic", "tiny_volume", "non_ras", "record_mismatch", "constant_image")
#: Montage grey levels: CT in HU gets the soft-tissue window W400/L40; everything else (MR,
#: CT in normalized units) its own 1st-99th percentiles.
CT_DISPLAY_WINDOW = (-160.0, 240.0)
AXES = ("x", "y", "z")


@dataclass(frozen=True)
class Flag:
    """Something odd about one case."""

    code: str
    message: str


@dataclass
class CaseQA:
    """Everything QA measured on one case. ``shape`` and ``spacing`` follow the RAS axes
    (x: left->right, y: posterior->anterior, z: inferior->superior) whatever the file's axis order;
    ``orientation`` is the file's."""

    dataset: str
    case_id: str
    patient_id: str
    manifest: str
    modality: str
    normalized: bool
    image: list[str]
    mask: str | None
    annotated: list[str]
    split: str | None = None
    shape: list[int] | None = None
    spacing: list[float] | None = None
    orientation: str | None = None
    channels: list[str] = field(default_factory=list)
    intensity: dict[str, ChannelStats] = field(default_factory=dict)
    label_voxels: dict[str, int] = field(default_factory=dict)
    value_voxels: dict[int, int] = field(default_factory=dict)
    foreground_voxels: int | None = None
    units: dict[str, Units] = field(default_factory=dict)
    labels: LabelMeasures | None = None
    montage_slices: dict[str, list[int]] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        return not any(f.code == "unreadable" for f in self.flags)

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0 if self.spacing else 0.0

    def flag(self, code: str, message: str) -> None:
        assert code in FLAG_CODES, code
        self.flags.append(Flag(code, message))

    def to_dict(self) -> dict[str, Any]:
        skip = ("intensity", "flags", "value_voxels", "units", "labels")
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip}
        data["units"] = {c: u.to_dict() for c, u in self.units.items()}
        data["intensity"] = {c: s.to_dict() for c, s in self.intensity.items()}
        measures = self.labels or LabelMeasures()
        data["foreground_intensity"] = measures.foreground
        data["class_intensity"] = measures.classes
        data["components"] = measures.components
        data["value_voxels"] = {str(k): v for k, v in sorted(self.value_voxels.items())}
        data["label_present"] = {n: v > 0 for n, v in self.label_voxels.items()}
        data["flags"] = [asdict(f) for f in self.flags]
        return data


# ------------------------------------------------------------------------------ per-case numbers


def is_normalized(record: ManifestRecord) -> bool:
    """True for records written by ``harmonize run`` (its ``stage`` is ``normalized``)."""
    return record.stage == "normalized"


def read_for_qa(case: CaseQA, record: ManifestRecord, manifest: Path
                ) -> tuple[Volume, Volume | None] | None:
    """The record's image and mask through the one reading layer; a mask off the image grid is
    a ``grid_mismatch`` flag (the image is still measured), any other read problem an
    ``unreadable`` flag and ``None``. Unknown mask values are counted by the caller."""
    base = manifest.parent
    try:
        data = read_case(record, base=base)
        return data.image, data.label
    except GridMismatchError as exc:
        case.flag("grid_mismatch", exc.message)
    except HarmonizeError as exc:
        case.flag("unreadable", str(exc))
        return None
    try:
        return read_case(record, base=base, label=False).image, None
    except HarmonizeError as exc:
        case.flag("unreadable", str(exc))
        return None


def _geometry_flags(case: CaseQA, record: ManifestRecord, image: Volume) -> None:
    spacing = np.asarray(image.spacing)
    ratio = float(spacing.max() / spacing.min())
    if ratio > THRESHOLDS["anisotropy"]:
        ras = np.round(case.spacing if case.spacing else spacing, 3).tolist()
        case.flag("anisotropic", f"spacing {ras} mm (x, y, z): largest/smallest "
                                 f"= {ratio:.1f} > {THRESHOLDS['anisotropy']:g}")
    short = [f"{a}={n}" for a, n in zip(AXES, image.shape) if n < THRESHOLDS["min_axis_voxels"]]
    if short:
        case.flag("tiny_volume", f"shape {list(image.shape)}: {', '.join(short)} voxels "
                                 f"(< {THRESHOLDS['min_axis_voxels']:g})")
    if case.normalized and image.orientation != "RAS":
        case.flag("non_ras", f"normalized file is {image.orientation}, not RAS")
    problems = []
    if list(record.shape[:3]) != list(image.shape):
        problems.append(f"shape {record.shape} vs file {list(image.data.shape)}")
    if not np.allclose(record.spacing, spacing, rtol=1e-3, atol=1e-4):
        problems.append(f"spacing {record.spacing} vs file {np.round(spacing, 4).tolist()}")
    if record.orientation != image.orientation:
        problems.append(f"orientation {record.orientation} vs file {image.orientation}")
    if problems:
        case.flag("record_mismatch", "record disagrees with its file: " + "; ".join(problems))


def _label_numbers(case: CaseQA, record: ManifestRecord, mask: Volume) -> None:
    counts = value_counts(mask.data)
    case.value_voxels = counts
    case.foreground_voxels = sum(n for v, n in counts.items() if v != 0)
    case.label_voxels = {name: sum(counts.get(v, 0) for v in values)
                         for name, values in record.labels.items()}
    if case.foreground_voxels == 0:
        case.flag("empty_mask", "mask has no foreground voxel")
    unexpected = unknown_label_values(record, counts)
    if unexpected:
        case.flag("unexpected_values", f"mask values {unexpected} belong to no class of the record "
                                       f"({sum(counts[v] for v in unexpected)} voxels)")


def inspect_case(record: ManifestRecord, manifest: Path, *, want_panels: bool = False,
                 max_classes: int = 32) -> tuple[CaseQA, Panels | None]:
    """Measure one case; a read problem becomes an ``unreadable`` flag, never an exception."""
    files = [record.image] if isinstance(record.image, str) else list(record.image)
    case = CaseQA(record.dataset, record.case_id, record.patient_id, str(manifest), record.modality,
                  is_normalized(record), files, record.mask, list(record.annotated), record.split)
    volumes = read_for_qa(case, record, manifest)
    if volumes is None:
        return case, None
    image, mask = volumes
    from harmonize.engine.resample import ras_transform

    source, _ = ras_transform(image.affine)  # report geometry along RAS axes, whatever the file
    case.shape = [image.shape[a] for a in source]
    case.spacing = [round(image.spacing[a], 6) for a in source]
    case.orientation = image.orientation
    names = record.channels if record.channels and len(record.channels) == image.channels \
        else [f"channel {c}" for c in range(image.channels)]
    case.channels = list(names)
    channels, units = physical_channels(record, manifest, image, names)
    for name, data, unit in zip(names, channels, units):
        stats = channel_stats(data)
        case.intensity[name] = stats
        case.units[name] = unit
        if stats.min == stats.max:
            case.flag("constant_image", f"channel {name!r} is constant ({stats.min:g})")
    _geometry_flags(case, record, image)
    if mask is not None:
        _label_numbers(case, record, mask)
        case.labels = measure_labels(channels, names, mask.data, record.labels,
                                     float(np.prod(image.spacing)))
    panels = None
    if want_panels:
        first = next(iter(case.intensity.values()))
        unit = next(iter(case.units.values()))
        window = (_pick(first.quantiles, 0.01), _pick(first.quantiles, 0.99))
        if unit.units == "HU":
            window = CT_DISPLAY_WINDOW
        shown = Volume(channels[0], image.affine)
        panels = case_slices(record, shown, mask, window, units=unit.units,
                             max_classes=max_classes)
        case.montage_slices = {c.name: list(c.index) for c in panels.classes}
    return case, panels
