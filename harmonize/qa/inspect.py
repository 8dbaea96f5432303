"""Quality numbers for one or more manifests: what ``harmonize qa`` reports.

:func:`collect_qa` reads every case of the manifests once (image and mask, paths relative to the
manifest's folder; source-level manifests from ``harmonize manifest`` and normalized ones from
``harmonize run`` alike) and returns a :class:`QAReport`: per case geometry, intensity statistics,
label voxel counts per class (from the record's ``labels`` name -> values map) and flags; per
dataset and overall summaries and histograms. :mod:`harmonize.qa.report` turns it into
``qa.json``, PNG charts, montages and ``index.html``.

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

Intensity min/max/mean/std are exact; percentiles and histograms come from at most
:data:`MAX_SAMPLE` voxels per channel on a regular sub-grid, summarized by :data:`QUANTILES`
quantiles per case (each weighted by the case's voxel count), so one pass and little memory suffice.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.errors import GridMismatchError, HarmonizeError
from harmonize.manifest.build import read_manifest
from harmonize.manifest.records import ManifestRecord
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
HIST_BINS = 20
INTENSITY_BINS = 50
#: Montage grey levels: CT in Hounsfield units (1st percentile below -500) gets the soft-tissue
#: window W400/L40; everything else (MR, normalized CT) its own 1st-99th percentiles.
CT_DISPLAY_WINDOW = (-160.0, 240.0)
HU_DATA_BELOW = -500.0
QUANTILES = 101
MAX_SAMPLE = 1_000_000
AXES = ("x", "y", "z")
_SLAB_BYTES = 1 << 24


@dataclass(frozen=True)
class Flag:
    """Something odd about one case."""

    code: str
    message: str


@dataclass
class ChannelStats:
    """Exact min/max/mean/std of one channel, percentiles and quantiles from a sub-grid sample."""

    voxels: int
    min: float
    max: float
    mean: float
    std: float
    quantiles: list[float] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        q = self.quantiles
        return {"voxels": self.voxels, "min": self.min, "max": self.max, "mean": self.mean,
                "std": self.std, "p01": _pick(q, 0.01), "p50": _pick(q, 0.5),
                "p99": _pick(q, 0.99)}


def _pick(quantiles: Sequence[float], q: float) -> float:
    return float(quantiles[round(q * (len(quantiles) - 1))])


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


@dataclass
class QAReport:
    """Cases, per-dataset and overall summaries, and the montage panels."""

    manifests: list[Path]
    cases: list[CaseQA]
    datasets: dict[str, dict[str, Any]]
    overall: dict[str, Any]
    panels: dict[str, list[Panels]]

    @property
    def flags(self) -> list[dict[str, str]]:
        return [{"dataset": c.dataset, "case_id": c.case_id, "code": f.code, "message": f.message}
                for c in self.cases for f in c.flags]

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "manifests": [str(m) for m in self.manifests],
                "thresholds": THRESHOLDS, "overall": self.overall, "datasets": self.datasets,
                "flags": self.flags, "cases": [c.to_dict() for c in self.cases]}


# ------------------------------------------------------------------------------ per-case numbers


def _slabs(array: np.ndarray) -> Iterator[np.ndarray]:
    """``array`` in blocks of whole z slices (~16 MiB each), so no full-size temporary is made."""
    per_slice = max(1, array.shape[0] * array.shape[1] * array.itemsize)
    step = max(1, _SLAB_BYTES // per_slice)
    for k in range(0, array.shape[2], step):
        yield array[:, :, k : k + step]


def channel_stats(data: np.ndarray) -> ChannelStats:
    """Statistics of one 3D channel (see :class:`ChannelStats`)."""
    total, total_sq, lo, hi = 0.0, 0.0, math.inf, -math.inf
    for slab in _slabs(data):
        s = slab.astype(np.float64)
        total += float(s.sum())
        total_sq += float(np.square(s).sum())
        lo, hi = min(lo, float(s.min())), max(hi, float(s.max()))
    n = int(data.size)
    mean = total / n
    var = max(0.0, total_sq / n - mean * mean)
    step = max(1, math.ceil((n / MAX_SAMPLE) ** (1 / 3)))
    sample = np.asarray(data[::step, ::step, ::step], dtype=np.float64).ravel()
    quantiles = np.quantile(sample, np.linspace(0.0, 1.0, QUANTILES))
    quantiles[0], quantiles[-1] = lo, hi
    return ChannelStats(n, lo, hi, mean, math.sqrt(var), [float(v) for v in quantiles])


def value_counts(mask: np.ndarray) -> dict[int, int]:
    """Voxels per label value (float masks rounded to the nearest integer)."""
    counts: Counter[int] = Counter()
    for slab in _slabs(mask):
        if slab.dtype.kind == "f":
            slab = np.rint(slab).astype(np.int64)
        if slab.dtype.kind == "b":
            slab = slab.astype(np.uint8)
        if slab.size and slab.min() < 0:
            values, n = np.unique(slab, return_counts=True)
            counts.update(dict(zip(values.tolist(), n.tolist())))
            continue
        binned = np.bincount(slab.ravel(order="K"))
        nonzero = np.flatnonzero(binned)
        counts.update(dict(zip(nonzero.tolist(), binned[nonzero].tolist())))
    return {int(k): int(v) for k, v in sorted(counts.items())}


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


def histogram(values: Sequence[float] | np.ndarray,
              weights: Sequence[float] | np.ndarray | None = None,
              bins: int = HIST_BINS) -> dict[str, list[float]]:
    """``{"edges": [...], "counts": [...]}``: ``bins`` equal bins over the values' range (a
    constant value gets one bin of width 1 centred on it)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {"edges": [], "counts": []}
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        edges = np.array([lo - 0.5, lo + 0.5])
    else:
        edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(arr, bins=edges, weights=weights)
    rounded: list[float] = [round(float(c)) for c in counts]
    return {"edges": [float(e) for e in edges], "counts": rounded}


def _axis_summary(rows: list[list[float]] | list[list[int]]) -> dict[str, Any]:
    out = {}
    for i, axis in enumerate(AXES):
        values = [r[i] for r in rows]
        out[axis] = ({"min": min(values), "median": float(np.median(values)), "max": max(values),
                      "histogram": histogram(values)} if values else {})
    return out


def _intensity_summary(groups: dict[str, list[ChannelStats]]) -> dict[str, Any]:
    out = {}
    for name, stats in groups.items():
        voxels = sum(s.voxels for s in stats)
        points = np.concatenate([s.quantiles for s in stats])
        weights = np.concatenate([np.full(QUANTILES, s.voxels / QUANTILES) for s in stats])
        out[name] = {"cases": len(stats), "voxels": voxels,
                     "min": min(s.min for s in stats), "max": max(s.max for s in stats),
                     "mean": sum(s.mean * s.voxels for s in stats) / voxels,
                     "histogram": histogram(points, weights, bins=INTENSITY_BINS)}
    return out


def _label_summary(cases: list[CaseQA]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        for name in case.annotated:
            row = out.setdefault(name, {"annotated_cases": 0, "present_cases": 0, "voxels": 0,
                                        "volume_ml": 0.0})
            row["annotated_cases"] += 1
            voxels = case.label_voxels.get(name, 0)
            row["voxels"] += voxels
            row["volume_ml"] += voxels * case.voxel_ml
            row["present_cases"] += voxels > 0
    for row in out.values():
        row["absent_cases"] = row["annotated_cases"] - row["present_cases"]
        row["volume_ml"] = round(row["volume_ml"], 3)
    return dict(sorted(out.items()))


def summarize(cases: list[CaseQA], *, intensity_key: Callable[[CaseQA, str], str]) -> dict[str, Any]:
    """Counts, geometry and intensity histograms, label numbers and flag counts of ``cases``."""
    readable = [c for c in cases if c.readable]
    groups: dict[str, list[ChannelStats]] = {}
    for case in readable:
        for name, stats in case.intensity.items():
            groups.setdefault(intensity_key(case, name), []).append(stats)
    flags = Counter(f.code for c in cases for f in c.flags)
    return {
        "cases": len(cases),
        "patients": len({(c.dataset, c.patient_id) for c in cases}),
        "labelled_cases": sum(c.mask is not None for c in cases),
        "readable_cases": len(readable),
        "flagged_cases": sum(bool(c.flags) for c in cases),
        "flags": {code: flags[code] for code in FLAG_CODES if flags[code]},
        "spacing": _axis_summary([c.spacing for c in readable if c.spacing]),
        "shape": _axis_summary([c.shape for c in readable if c.shape]),
        "intensity": _intensity_summary(groups),
        "labels": _label_summary(readable),
    }


def _spacing_outliers(cases: list[CaseQA]) -> None:
    readable = [c for c in cases if c.readable and c.spacing]
    if len(readable) < THRESHOLDS["min_cases_for_outliers"]:
        return
    medians = np.median(np.array([c.spacing for c in readable]), axis=0)
    factor = THRESHOLDS["spacing_outlier_factor"]
    for case in readable:
        odd = [f"{axis} {s:g} mm vs median {m:g} mm"
               for axis, s, m in zip(AXES, case.spacing or [], medians)
               if s > m * factor or s * factor < m]
        if odd:
            case.flag("spacing_outlier", f"spacing more than {factor:g}x off the dataset median: "
                                         + "; ".join(odd))


def _montage_choice(records: list[ManifestRecord], n: int) -> set[str]:
    ordered = sorted(records, key=lambda r: (r.mask is None, r.case_id))
    return {r.case_id for r in ordered[:n]}


def collect_qa(manifests: Sequence[Path], *, montage_cases: int = 4,
               progress: Callable[[], None] | None = None,
               on_total: Callable[[int], None] | None = None) -> QAReport:
    """Measure every case of ``manifests`` and summarize per dataset and overall.

    ``on_total`` gets the number of cases before the work starts and ``progress`` is called after
    each case. Unreadable manifests raise :class:`~harmonize.errors.ManifestError`; unreadable cases
    are flagged and counted.
    """
    loaded = [(Path(m), read_manifest(Path(m))) for m in manifests]
    by_dataset: dict[str, list[tuple[Path, ManifestRecord]]] = {}
    for path, records in loaded:
        for record in records:
            by_dataset.setdefault(record.dataset, []).append((path, record))
    if on_total is not None:
        on_total(sum(len(v) for v in by_dataset.values()))
    cases: list[CaseQA] = []
    panels: dict[str, list[Panels]] = {}
    datasets: dict[str, dict[str, Any]] = {}
    for dataset in sorted(by_dataset):
        items = sorted(by_dataset[dataset], key=lambda item: item[1].case_id)
        chosen = _montage_choice([r for _, r in items], montage_cases)
        dataset_cases = []
        for path, record in items:
            case, case_panels = inspect_case(record, path, want_panels=record.case_id in chosen)
            dataset_cases.append(case)
            if case_panels is not None:
                panels.setdefault(dataset, []).append(case_panels)
            if progress is not None:
                progress()
        _spacing_outliers(dataset_cases)
        seen = Counter(c.case_id for c in dataset_cases)
        datasets[dataset] = summarize(dataset_cases, intensity_key=lambda c, name: name)
        datasets[dataset]["duplicate_case_ids"] = sorted(k for k, n in seen.items() if n > 1)
        datasets[dataset]["normalized"] = any(c.normalized for c in dataset_cases)
        datasets[dataset]["modality"] = sorted({c.modality for c in dataset_cases})
        cases.extend(dataset_cases)
    overall = summarize(cases, intensity_key=lambda c, name: c.modality)
    overall["datasets"] = len(datasets)
    return QAReport([p for p, _ in loaded], cases, datasets, overall, panels)
