"""Images of an nnU-Net export in the units nnU-Net normalizes from.

nnU-Net picks its normalization by channel name: ``CT`` gets ``CTNormalization`` (clip to the
dataset's pooled foreground 0.5/99.5 percentiles, z-score with their mean/std: it expects HU),
every other name a per-image z-score (over the nonzero region when cropping to nonzero shrinks
the images). A ``harmonize run`` output is already mapped (CT window to [0, 1], MR/PET
percentile clip + z-score), so the export undoes the recorded mapping per channel
(:func:`harmonize.export.source_intensity`, exact inside the clip range): CT becomes HU again,
other channels their source units with zero background zero again. Undoing rather than
relabelling MR as ``noNorm`` keeps nnU-Net's own per-image z-score and its crop to nonzero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harmonize.export import Entry, source_intensity

_SLAB = 1 << 22  # voxels per slab when undoing a mapping (no full-size float64 copy)


def mapped(entry: Entry) -> bool:
    """Whether the record's image carries an intensity mapping the export must undo."""
    return entry.record.stage != "source" and entry.intensity.get("method", "none") != "none"


def channel_clip(params: dict[str, Any], channel: int | None) -> list[float] | None:
    """The recorded clip ``[low, high]`` of one channel, or None: a 4D record has one entry per
    channel (``None`` for a channel left raw, as the CT of a PET/CT run with ``--ct-window
    none``), a 3D record one clip."""
    clip = params.get("clip")
    if not clip:
        return None
    if isinstance(clip[0], list) or clip[0] is None:
        clip = clip[channel or 0]
    return None if clip is None else [float(clip[0]), float(clip[1])]


def in_source_units(data: np.ndarray, entry: Entry, channel: int | None) -> np.ndarray:
    """One 3D channel of the record's stored image in source units (HU for CT), as nnU-Net
    expects: the recorded mapping undone (``channel`` selects per-channel parameters), values
    within float32 round-off (1e-6 of the clip range) of a clip bound set to the bound, so a
    zero background clipped at 0 is exactly 0 again (nnU-Net crops to ``data != 0``). int16
    when every value is then an integer within 1e-3 and fits, else float32; ``data`` itself
    when nothing was mapped."""
    if not mapped(entry):
        return data
    clip = channel_clip(entry.intensity, channel)
    out = np.empty(data.shape, dtype=np.float32)
    step = max(1, _SLAB // max(1, data.shape[0] * data.shape[1]))
    integral = True
    for k in range(0, data.shape[2], step):
        part = source_intensity(data[:, :, k:k + step], entry, channel=channel)
        if clip:  # clipped voxels decode to the bound itself, not a float32 round-off of it
            lo, hi = float(clip[0]), float(clip[1])
            tolerance = 1e-6 * max(hi - lo, 1.0)
            part[np.abs(part - lo) <= tolerance] = lo
            part[np.abs(part - hi) <= tolerance] = hi
        if integral and part.size:
            integral = float(np.max(np.abs(part - np.rint(part)))) <= 1e-3
        out[:, :, k:k + step] = part
    info = np.iinfo(np.int16)
    if integral and out.size and info.min <= out.min() and out.max() <= info.max:
        return np.rint(out).astype(np.int16)
    return out


def intensity_notes(entries: Sequence[Entry], names: Sequence[str],
                    orders: Sequence[Sequence[int]]) -> tuple[dict[str, Any], list[str]]:
    """Per dataset and exported channel, what the export undid (for dataset.json), and one
    warning per dataset whose CT the run clipped to a window (those HU are lost: nnU-Net's
    fingerprint then sees the clipped range)."""
    notes: dict[str, dict[str, dict[str, Any]]] = {}
    windows: dict[str, set[tuple[float, float]]] = {}
    for entry, own in zip(entries, orders):
        params = entry.intensity if mapped(entry) else {"method": "none"}
        method = str(params.get("method", "none"))
        for name, index in zip(names, own):
            note = notes.setdefault(entry.dataset, {}).setdefault(
                name, {"units": "HU" if name == "CT" else "source", "undone": []})
            if method != "none" and method not in note["undone"]:
                note["undone"] = sorted([*note["undone"], method])
            clip = channel_clip(params, index)
            if name == "CT" and method in ("ct_window", "pet") and clip:  # PET/CT: its CT
                windows.setdefault(entry.dataset, set()).add((clip[0], clip[1]))
    warnings = []
    for dataset, found in sorted(windows.items()):
        shown = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in sorted(found)[:3])
        notes[dataset]["CT"]["clipped_to"] = [list(w) for w in sorted(found)]
        warnings.append(
            f"{dataset}: CT is exported in HU, clipped to the run's window(s) {shown}; values "
            "outside were lost in `harmonize run` (export the `harmonize manifest` source "
            "manifest for unclipped HU)")
    return notes, warnings
