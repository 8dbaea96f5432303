"""Intensities in physical units, over the foreground and per class, as nnU-Net's fingerprint.

Units: a CT channel is measured in HU, any other channel in its source units. A ``harmonize
run`` record's stored image is mapped (CT window to [0, 1], MR z-score), so the recorded mapping
is undone first by the one inverse the nnU-Net export uses
(:func:`harmonize.export.nnunet_units.in_source_units`); a CT the run clipped to a window keeps
only the HU inside it (``clipped``). A normalized record without a recorded mapping is measured
as stored and says ``normalized units``.

Per case (:func:`measure_labels`), exactly over every voxel: the foreground (mask > 0) and each
class present, per channel: voxels, mean, std, min, max and the 0.5/50/99.5 percentiles
(``np.percentile``, linear, as nnU-Net's ``collect_foreground_intensities``); and per class its
face-connected components (count, largest/smallest volume in mm^3). Per dataset
(:func:`pooled`), nnU-Net's ``foreground_intensity_properties_per_channel``: statistics of
:data:`FOREGROUND_SAMPLE` voxels drawn with replacement per case
(:func:`harmonize.engine.intensity.foreground_sample`); per class :data:`CLASS_SAMPLE` per case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.engine.intensity import dataset_statistics, foreground_sample
from harmonize.errors import HarmonizeError
from harmonize.manifest.records import ManifestRecord
from harmonize.qa.components import class_region, components, value_boxes
from harmonize.read.volume import Volume

PERCENTILES = (0.5, 50.0, 99.5)
#: voxels drawn per case and channel for the pooled foreground statistics (nnU-Net's default)
FOREGROUND_SAMPLE = 10000
#: voxels drawn per case, class and channel for the pooled per-class statistics
CLASS_SAMPLE = 200


def intensity_stats(values: np.ndarray) -> dict[str, float | int]:
    """nnU-Net's per-case statistics of ``values`` (plus ``std`` and ``voxels``); ``{"voxels":
    0}`` when empty."""
    if values.size == 0:
        return {"voxels": 0}
    v = np.asarray(values, dtype=np.float64)
    p005, median, p995 = np.percentile(v, PERCENTILES)
    return {"voxels": int(v.size), "mean": float(v.mean()), "std": float(v.std()),
            "min": float(v.min()), "max": float(v.max()), "percentile_00_5": float(p005),
            "median": float(median), "percentile_99_5": float(p995)}


@dataclass
class Units:
    """What a channel's numbers are: ``HU``, ``source units`` or ``normalized units``; ``clipped``
    is the window a run clipped CT to (HU outside it are lost), else ``None``."""

    units: str
    clipped: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"units": self.units, "clipped": self.clipped}


def physical_channels(record: ManifestRecord, manifest: Path, image: Volume,
                      names: Sequence[str]) -> tuple[list[np.ndarray], list[Units]]:
    """Each channel of ``image`` (the record's stored image) in HU / source units where the
    record allows it (see the module doc), and what its units are."""
    from harmonize.export import Entry
    from harmonize.export.nnunet_units import channel_clip, in_source_units, mapped

    entry = Entry(record=record, base=manifest.resolve().parent, key=record.case_id,
                  manifest=manifest.resolve())
    params = entry.intensity
    known = record.stage == "source" or "intensity" in record.extra
    out, units = [], []
    for c, name in enumerate(names):
        data = image.data if image.data.ndim == 3 else image.data[..., c]
        is_ct = name == "CT" or (record.modality == "CT" and len(names) == 1)
        if not known:
            out.append(data)
            units.append(Units("normalized units"))
            continue
        clipped = None
        if mapped(entry):
            data = in_source_units(data, entry, c)
            clip = channel_clip(params, c)
            if is_ct and params.get("method") in ("ct_window", "pet") and clip:
                clipped = clip
        out.append(data)
        units.append(Units("HU" if is_ct else "source units", clipped))
    return out, units


@dataclass
class LabelMeasures:
    """Foreground and per-class intensity statistics, components, and the pooling samples."""

    foreground: dict[str, dict[str, Any]] = field(default_factory=dict)
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)


def measure_labels(channels: Sequence[np.ndarray], names: Sequence[str], mask: np.ndarray,
                   labels: dict[str, list[int]], voxel_mm3: float, *, seed: int = 0
                   ) -> LabelMeasures:
    """Per channel foreground and per class statistics and samples; components per class
    present (see the module doc). ``mask`` is on the channels' grid."""
    out = LabelMeasures()
    foreground = mask > 0
    for name, data in zip(names, channels):
        out.foreground[name] = intensity_stats(data[foreground])
        out.samples.setdefault("(foreground)", {})[name] = foreground_sample(
            np.asarray(data), foreground, max_voxels=FOREGROUND_SAMPLE, seed=seed)
    del foreground
    boxes = value_boxes(mask)
    for cls, values in labels.items():
        region = class_region(mask, values, boxes)
        if region is None:
            continue
        out.components[cls] = components(region).to_dict(voxel_mm3)
        per_channel = {}
        for name, data in zip(names, channels):
            inside = np.asarray(data[region.box])
            per_channel[name] = intensity_stats(inside[region.voxels])
            out.samples.setdefault(cls, {})[name] = foreground_sample(
                inside, region.voxels, max_voxels=CLASS_SAMPLE, seed=seed)
        out.classes[cls] = per_channel
    return out


def pooled(samples: Sequence[dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Per channel, nnU-Net's pooled statistics of the cases' samples (channels without any
    sampled voxel are left out)."""
    by_channel: dict[str, list[np.ndarray]] = {}
    for case in samples:
        for name, sample in case.items():
            by_channel.setdefault(name, []).append(sample)
    out = {}
    for name, parts in by_channel.items():
        try:
            out[name] = dataset_statistics(parts)
        except HarmonizeError:  # every sample empty
            continue
    return out
