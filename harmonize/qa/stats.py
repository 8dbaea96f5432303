"""Per-channel intensity statistics and mask value counts, in one pass and little memory.

Intensity min/max/mean/std are exact; percentiles and histograms come from at most
:data:`MAX_SAMPLE` voxels per channel on a regular sub-grid, summarized by :data:`QUANTILES`
quantiles per case (each weighted by the case's voxel count).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HIST_BINS = 20


INTENSITY_BINS = 50


QUANTILES = 101


MAX_SAMPLE = 1_000_000


_SLAB_BYTES = 1 << 24


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
