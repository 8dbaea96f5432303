"""Intensity mappings (CT window, percentile clip + z-score, dataset z-score) and their undo.

Every mapping here is ``y = (clip(x, lo, hi) - offset) / scale`` per channel, recorded as a dict
``{"method", "clip": [lo, hi] | None, "offset", "scale"}`` (lists per channel for multi-channel
images). :func:`undo_intensity` inverts it exactly for voxels that were inside the clip range:
``x = y * scale + offset``.

Statistics are computed in float64 slab by slab, so no float64 copy of a volume is ever made.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from harmonize.errors import HarmonizeError

_SLAB = 1 << 22  # voxels per slab for float64 reductions
#: How a CT window is scaled (see :func:`ct_window`).
CT_SCALINGS = ("unit", "zscore", "dataset-zscore")


def _slabs(data: np.ndarray) -> Iterable[np.ndarray]:
    """Views over the last spatial axis with about ``_SLAB`` voxels each."""
    plane = max(1, data.shape[0] * data.shape[1])
    step = max(1, _SLAB // plane)
    for k in range(0, data.shape[2], step):
        yield data[:, :, k : k + step]


def mean_std(data: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0, as numpy/SAT-DS/nnU-Net) in float64."""
    n = data.size
    if n == 0:
        return 0.0, 0.0
    total = sum(float(s.sum(dtype=np.float64)) for s in _slabs(data))
    mean = total / n
    sq = 0.0
    for s in _slabs(data):
        d = s.astype(np.float64, order="K")  # one float64 slab, in memory order
        d -= mean
        flat = d.ravel(order="K")  # a view: no copy of a column-ordered slab
        sq += float(np.dot(flat, flat))
    return mean, float(np.sqrt(sq / n))


def clip_scale(
    data: np.ndarray, clip: tuple[float, float] | None, offset: float, scale: float,
    *, inplace: bool = False,
) -> np.ndarray:
    """float32 ``(clip(data, *clip) - offset) / scale`` with at most one full-size allocation.

    ``inplace=True`` lets a float32 ``data`` that the caller owns be overwritten.
    """
    out = np.asarray(data, dtype=np.float32, order="K")
    if not inplace and (out is data or np.shares_memory(out, data)):
        out = out.copy(order="K")
    if clip is not None:
        np.clip(out, np.float32(clip[0]), np.float32(clip[1]), out=out)
    if offset != 0.0:
        out -= np.float32(offset)
    if scale != 1.0:
        out /= np.float32(scale)
    return out


def ct_window(
    data: np.ndarray,
    window: tuple[float, float],
    scaling: str = "unit",
    *,
    stats: dict[str, float] | None = None,
    inplace: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Clip CT ``data`` (HU) to ``window`` and scale (``inplace``: see :func:`clip_scale`).

    ``scaling``: ``"unit"`` maps the window to [0, 1]; ``"zscore"`` uses the clipped image's own
    mean/std (SAT-DS); ``"dataset-zscore"`` uses ``stats["mean"]``/``stats["std"]`` (nnU-Net
    CTNormalization, std floored at 1e-8).
    """
    lo, hi = float(window[0]), float(window[1])
    if scaling == "unit":
        out = clip_scale(data, (lo, hi), lo, hi - lo, inplace=inplace)
        return out, {"method": "ct_window", "scaling": "unit", "clip": [lo, hi],
                     "offset": lo, "scale": hi - lo}
    if scaling == "zscore":
        out = clip_scale(data, (lo, hi), 0.0, 1.0, inplace=inplace)
        mean, std = mean_std(out)
        std = std if std > 0 else 1.0
        out -= np.float32(mean)
        out /= np.float32(std)
        return out, {"method": "ct_window", "scaling": "zscore", "clip": [lo, hi],
                     "offset": mean, "scale": std}
    if scaling == "dataset-zscore":
        if stats is None:
            raise HarmonizeError(
                "dataset-level CT z-score needs dataset statistics",
                hint="run the statistics pass first (harmonize.engine.normalize.dataset_statistics) "
                "and pass dataset_stats",
            )
        mean, std = float(stats["mean"]), max(float(stats["std"]), 1e-8)
        out = clip_scale(data, (lo, hi), mean, std, inplace=inplace)
        return out, {"method": "ct_window", "scaling": "dataset-zscore", "clip": [lo, hi],
                     "offset": mean, "scale": std}
    raise ValueError(f"unknown CT scaling {scaling!r}")


def ct_window_integer(
    data: np.ndarray,
    window: tuple[float, float],
    scaling: str = "unit",
    *,
    stats: dict[str, float] | None = None,
) -> tuple[np.ndarray, float, float, dict[str, Any]] | None:
    """:func:`ct_window` for integer HU with an integer window, without a float copy.

    Returns ``(stored, slope, inter, params)`` with ``stored = clip(data, lo, hi) - lo`` as int16
    and real values ``stored * slope + inter`` (NIfTI scl_slope/scl_inter), so ``lo`` maps to
    exactly 0. Returns ``None`` when the data or window is not integer or the window does not fit
    int16 (the caller then uses :func:`ct_window`).
    """
    lo, hi = float(window[0]), float(window[1])
    if data.dtype.kind not in "iu" or not (lo.is_integer() and hi.is_integer()):
        return None
    int16 = np.iinfo(np.int16)
    if hi - lo > int16.max or lo < int16.min or hi > int16.max or scaling not in CT_SCALINGS:
        return None
    work = data if data.dtype.itemsize <= 2 and data.dtype.kind == "i" else data.astype(np.int32)
    if work.dtype.kind == "i" and work.dtype.itemsize < 2:
        work = work.astype(np.int16)
    stored = np.clip(work, np.array(lo, dtype=work.dtype), np.array(hi, dtype=work.dtype))
    if lo != 0:
        stored -= np.array(lo, dtype=stored.dtype)
    stored = stored.astype(np.int16, copy=False)
    params: dict[str, Any]
    if scaling == "unit":
        params = {"method": "ct_window", "scaling": "unit", "clip": [lo, hi],
                  "offset": lo, "scale": hi - lo}
    elif scaling == "zscore":
        shifted_mean, std = mean_std(stored)
        std = std if std > 0 else 1.0
        params = {"method": "ct_window", "scaling": "zscore", "clip": [lo, hi],
                  "offset": shifted_mean + lo, "scale": std}
    else:
        if stats is None:
            return None
        params = {"method": "ct_window", "scaling": "dataset-zscore", "clip": [lo, hi],
                  "offset": float(stats["mean"]), "scale": max(float(stats["std"]), 1e-8)}
    # real = (stored + lo - offset) / scale
    slope = 1.0 / params["scale"]
    inter = (lo - params["offset"]) / params["scale"]
    return stored, slope, inter, params


def percentile_zscore(
    data: np.ndarray, percentiles: tuple[float, float]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per channel: clip to the image's ``percentiles`` (numpy linear), then z-score.

    The mean/std are those of the clipped channel (SAT-DS convention, all voxels).
    """
    channels = [data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])]
    outs, clips, offsets, scales = [], [], [], []
    for channel in channels:
        lo, hi = (float(v) for v in np.percentile(channel, percentiles))
        out = clip_scale(channel, (lo, hi), 0.0, 1.0)
        mean, std = mean_std(out)
        std = std if std > 0 else 1.0
        out -= np.float32(mean)
        out /= np.float32(std)
        outs.append(out)
        clips.append([lo, hi])
        offsets.append(mean)
        scales.append(std)
    params: dict[str, Any] = {"method": "percentile_zscore", "percentiles": list(percentiles)}
    if data.ndim == 3:
        params.update(clip=clips[0], offset=offsets[0], scale=scales[0])
        return outs[0], params
    params.update(clip=clips, offset=offsets, scale=scales)
    return np.stack(outs, axis=-1), params


def undo_intensity(data: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Invert a recorded mapping: ``x = y * scale + offset`` (exact inside the clip range).

    ``{"method": "none"}`` returns ``data`` unchanged.
    """
    if params.get("method", "none") == "none":
        return data
    scale, offset = params["scale"], params["offset"]
    if isinstance(scale, list):
        return np.stack(
            [data[..., c].astype(np.float64) * s + o for c, (s, o) in enumerate(zip(scale, offset))],
            axis=-1,
        )
    return data.astype(np.float64) * float(scale) + float(offset)


def foreground_sample(
    image: np.ndarray, label: np.ndarray, *, max_voxels: int = 10000, seed: int = 0
) -> np.ndarray:
    """``max_voxels`` intensities drawn with replacement from voxels where ``label > 0``.

    nnU-Net's ``collect_foreground_intensities``: ``RandomState(seed).choice(fg, n,
    replace=True)``, so a case with few foreground voxels is not under-represented; an empty
    foreground gives an empty sample. ``image`` must be single-channel (CT).
    """
    if image.ndim != 3:
        raise HarmonizeError(
            f"foreground statistics need a single-channel 3D image, got shape {image.shape}",
            hint="use the nnunet-ct preset only for single-channel CT datasets",
        )
    if image.shape != label.shape:
        raise HarmonizeError(
            f"image shape {image.shape} and label shape {label.shape} differ",
            hint="image and label must share one voxel grid",
        )
    foreground = image[label > 0]
    if foreground.size == 0:
        return np.empty(0, dtype=np.float32)
    rs = np.random.RandomState(seed)
    return rs.choice(foreground, max_voxels, replace=True).astype(np.float32)


def dataset_statistics(samples: Iterable[np.ndarray]) -> dict[str, float]:
    """Pooled foreground statistics (nnU-Net ``foreground_intensity_properties_per_channel``).

    Keys: ``mean``, ``std`` (ddof=0), ``median``, ``min``, ``max``, ``percentile_00_5``,
    ``percentile_99_5`` and ``n`` (number of pooled samples). Raises if every sample is empty.
    """
    parts = [np.asarray(s, dtype=np.float64).ravel() for s in samples]
    pooled = np.concatenate(parts) if parts else np.empty(0)
    if pooled.size == 0:
        raise HarmonizeError(
            "no foreground voxels in any case: dataset statistics cannot be computed",
            hint="check the label maps are not empty, or use a fixed CT window instead",
        )
    p005, median, p995 = np.percentile(pooled, (0.5, 50.0, 99.5))
    return {
        "mean": float(np.mean(pooled)),
        "std": float(np.std(pooled)),
        "median": float(median),
        "min": float(np.min(pooled)),
        "max": float(np.max(pooled)),
        "percentile_00_5": float(p005),
        "percentile_99_5": float(p995),
        "n": int(pooled.size),
    }
