"""One case measured for ``harmonize qa``: geometry, intensities, label numbers, flags, panels.

:func:`inspect_case` reads the case through the one reading layer
(:func:`harmonize.read.case.read_case`; source and normalized records alike) and returns a
:class:`CaseQA` (and montage :class:`Panels` when asked). :mod:`harmonize.qa.summary` collects
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

Intensity statistics: :mod:`harmonize.qa.stats`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.errors import GridMismatchError, HarmonizeError
from harmonize.manifest.records import ManifestRecord
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
#: Montage grey levels: CT in Hounsfield units (1st percentile below -500) gets the soft-tissue
#: window W400/L40; everything else (MR, normalized CT) its own 1st-99th percentiles.
CT_DISPLAY_WINDOW = (-160.0, 240.0)
HU_DATA_BELOW = -500.0
AXES = ("x", "y", "z")


@dataclass(frozen=True)
class Flag:
    """Something odd about one case."""

    code: str
    message: str


@dataclass
class Panels:
    """Axial/coronal/sagittal slices of a case in RAS (see :func:`case_slices`), ready to display.

    Each view maps to (image 2D, mask 2D or None, pixel aspect = row spacing / column spacing).
    Rows run superior->inferior (axial: anterior->posterior); columns run from the patient's
    right to left (sagittal: anterior->posterior), the radiological convention.
    """

    dataset: str
    case_id: str
    views: dict[str, tuple[np.ndarray, np.ndarray | None, float]]
    display_range: tuple[float, float]
    value_names: dict[int, str]
    note: str | None = None


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
    shape: list[int] | None = None
    spacing: list[float] | None = None
    orientation: str | None = None
    channels: list[str] = field(default_factory=list)
    intensity: dict[str, ChannelStats] = field(default_factory=dict)
    label_voxels: dict[str, int] = field(default_factory=dict)
    value_voxels: dict[int, int] = field(default_factory=dict)
    foreground_voxels: int | None = None
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
        data = {k: v for k, v in asdict(self).items() if k not in ("intensity", "flags",
                                                                 "value_voxels")}
        data["intensity"] = {c: s.to_dict() for c, s in self.intensity.items()}
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


def case_slices(record: ManifestRecord, image: Volume, mask: Volume | None,
               display_range: tuple[float, float]) -> Panels:
    """Axial, coronal and sagittal slices in RAS through the centre of the mask's foreground
    bounding box (the volume's centre when there is no foreground); first channel only."""
    from harmonize.engine.resample import reorient_to_ras

    data = image.data[..., 0] if image.data.ndim == 4 else image.data
    ras_image, _ = reorient_to_ras(Volume(data, image.affine))
    ras_mask, note = None, None
    if mask is not None:
        ras_mask, _ = reorient_to_ras(mask)
        if ras_mask.shape != ras_image.shape:
            ras_mask, note = None, "mask not shown: its grid differs from the image's"
    sx, sy, sz = ras_image.spacing
    cx, cy, cz = (n // 2 for n in ras_image.shape)
    if ras_mask is not None and ras_mask.data.any():  # cut through the labelled region's centre
        boxes = [np.flatnonzero(ras_mask.data.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1))]
        cx, cy, cz = ((int(b[0]) + int(b[-1])) // 2 for b in boxes)
    planes: dict[str, tuple[tuple[slice | int, ...], float]] = {
        "axial": (np.s_[:, :, cz], sy / sx),
        "coronal": (np.s_[:, cy, :], sz / sx),
        "sagittal": (np.s_[cx, :, :], sz / sy),
    }
    views = {}
    for view, (index, aspect) in planes.items():
        img = np.asarray(ras_image.data[index], dtype=np.float32)[::-1, ::-1].T
        msk = None if ras_mask is None else np.asarray(ras_mask.data[index])[::-1, ::-1].T
        views[view] = (img, msk, float(aspect))
    names: dict[int, list[str]] = {}
    for name, values in record.labels.items():
        for v in values:
            names.setdefault(int(v), []).append(name)
    return Panels(record.dataset, record.case_id, views, display_range,
                  {v: ", ".join(n) for v, n in sorted(names.items())}, note)


def inspect_case(record: ManifestRecord, manifest: Path, *, want_panels: bool = False
                 ) -> tuple[CaseQA, Panels | None]:
    """Measure one case; a read problem becomes an ``unreadable`` flag, never an exception."""
    files = [record.image] if isinstance(record.image, str) else list(record.image)
    case = CaseQA(record.dataset, record.case_id, record.patient_id, str(manifest), record.modality,
                  is_normalized(record), files, record.mask, list(record.annotated))
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
    for c, name in enumerate(names):
        data = image.data[..., c] if image.data.ndim == 4 else image.data
        stats = channel_stats(data)
        case.intensity[name] = stats
        if stats.min == stats.max:
            case.flag("constant_image", f"channel {name!r} is constant ({stats.min:g})")
    _geometry_flags(case, record, image)
    if mask is not None:
        _label_numbers(case, record, mask)
    panels = None
    if want_panels:
        first = next(iter(case.intensity.values()))
        window = (_pick(first.quantiles, 0.01), _pick(first.quantiles, 0.99))
        if record.modality == "CT" and window[0] < HU_DATA_BELOW:
            window = CT_DISPLAY_WINDOW
        panels = case_slices(record, image, mask, window)
    return case, panels


# ------------------------------------------------------------------------------------ summaries


