"""Patch geometry: where to cut a patch out of a volume, and cutting it (with padding).

Coordinates are voxel indices of the RAS-canonical grid, spatial axes last (``(..., X, Y, Z)``).
A patch start may be negative, or the patch may run past the end, when the volume is smaller than
the patch along an axis; the part outside the volume is filled with a pad value.

:class:`ForegroundIndex` keeps, per label value, up to :data:`MAX_LOCATIONS` voxel locations
(as nnU-Net's ``class_locations``) so that foreground-biased patches cost no scan of the label map.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PatchSize = tuple[int, int, int]

#: Locations kept per label value (sampled without replacement, seeded) by :class:`ForegroundIndex`.
MAX_LOCATIONS = 10_000
#: A foreground-centred patch is shifted by up to this fraction of its size so the chosen voxel
#: is not always in the middle (it always stays inside the patch).
JITTER = 0.25


def as_patch_size(value: int | Sequence[int] | None) -> PatchSize | None:
    """``None`` (whole volume), an int (cube) or three positive ints, as a tuple; ValueError otherwise."""
    if value is None:
        return None
    try:
        size = (int(value),) * 3 if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
    except TypeError:
        size = ()
    if len(size) != 3 or any(v < 1 for v in size):
        raise ValueError(f"patch_size must be None, a positive int or 3 positive ints, got {value!r}")
    return size


def start_bounds(shape: Sequence[int], patch: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive lowest and highest patch start per axis.

    Where the volume is at least as large as the patch the patch stays inside it
    (``0 .. shape - patch``); where it is smaller the volume stays inside the patch
    (``shape - patch .. 0``, negative starts mean padding before the volume).
    """
    diff = np.asarray(shape, dtype=np.int64) - np.asarray(patch, dtype=np.int64)
    return np.minimum(diff, 0), np.maximum(diff, 0)


def random_start(shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """A uniformly random patch start within :func:`start_bounds`."""
    lo, hi = start_bounds(shape, patch)
    return rng.integers(lo, hi + 1)


def start_around(
    location: Sequence[int] | np.ndarray, shape: Sequence[int], patch: Sequence[int],
    rng: np.random.Generator,
) -> np.ndarray:
    """A patch start that puts ``location`` inside the patch, near its centre (jittered)."""
    patch_arr = np.asarray(patch, dtype=np.int64)
    reach = (patch_arr * JITTER).astype(np.int64)
    jitter = rng.integers(-reach, reach + 1)
    lo, hi = start_bounds(shape, patch)
    return np.clip(np.asarray(location, dtype=np.int64) - patch_arr // 2 + jitter, lo, hi)


def _output(shape: tuple[int, ...], dtype: np.dtype, inside: bool, pad_value: float,
            out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype) if inside else np.full(shape, pad_value, dtype=dtype)
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if not inside:
        out[...] = pad_value
    return out


def crop(
    array: np.ndarray, start: Sequence[int] | np.ndarray, size: Sequence[int], pad_value: float = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Copy of ``array[..., start:start+size]`` over the last three axes, padded where outside.

    Works on memory-mapped arrays: only the patch region is read. ``out`` (the patch's shape)
    receives the result instead of a new array (its dtype may differ: values are cast).
    """
    spatial = array.shape[-3:]
    src = tuple(slice(max(int(s), 0), min(int(s) + int(p), n)) for s, p, n in zip(start, size, spatial))
    src_index: tuple[Any, ...] = (..., *src)
    region = array[src_index]
    inside = region.shape[-3:] == tuple(size)
    if inside and out is None:
        return np.array(region)
    result = _output(array.shape[:-3] + tuple(int(p) for p in size), array.dtype, inside, pad_value, out)
    dst = tuple(slice(sl.start - int(s), sl.stop - int(s)) for sl, s in zip(src, start))
    dst_index: tuple[Any, ...] = (..., *dst)
    result[dst_index] = region
    return result


@dataclass(frozen=True)
class ForegroundIndex:
    """Sampled voxel locations per non-zero label value.

    ``values`` (V,) sorted label values, ``counts`` (V,) their full voxel counts, ``offsets`` (V+1,)
    into ``locations`` (N, 3) int32 voxel indices (at most :data:`MAX_LOCATIONS` per value).
    """

    values: np.ndarray
    counts: np.ndarray
    offsets: np.ndarray
    locations: np.ndarray

    @classmethod
    def from_label(
        cls, label: np.ndarray, *, seed: int = 0, max_per_value: int = MAX_LOCATIONS
    ) -> ForegroundIndex:
        """Index a label map (X, Y, Z) of non-negative integers; deterministic for a given seed."""
        rng = np.random.default_rng(seed)
        flat = np.asarray(label).reshape(-1)
        nonzero = np.flatnonzero(flat)
        found = flat[nonzero]
        order = np.argsort(found, kind="stable")
        values, first, counts = np.unique(found[order], return_index=True, return_counts=True)
        chunks = []
        offsets = [0]
        for start, count in zip(first, counts):
            picked = nonzero[order[start:start + count]]
            if count > max_per_value:
                picked = np.sort(rng.choice(picked, size=max_per_value, replace=False))
            chunks.append(picked)
            offsets.append(offsets[-1] + len(picked))
        flat_locations = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
        locations = np.stack(np.unravel_index(flat_locations, label.shape), axis=1).astype(np.int32)
        return cls(
            values=values.astype(np.int64),
            counts=counts.astype(np.int64),
            offsets=np.asarray(offsets, dtype=np.int64),
            locations=locations.reshape(-1, 3),
        )

    def _rows(self, values: Iterable[int]) -> list[int]:
        wanted = np.asarray(sorted(set(int(v) for v in values)), dtype=np.int64)
        rows = np.searchsorted(self.values, wanted)
        return [int(r) for r, v in zip(rows, wanted) if r < len(self.values) and self.values[r] == v]

    def has_any(self, values: Iterable[int]) -> bool:
        """True if at least one voxel holds one of ``values``."""
        return bool(self._rows(values))

    def voxels(self, values: Iterable[int]) -> int:
        """Number of voxels holding one of ``values``."""
        return int(sum(self.counts[r] for r in self._rows(values)))

    def locations_for(self, values: Iterable[int]) -> np.ndarray:
        """Stored locations (N, 3) of voxels holding one of ``values`` (empty if none)."""
        parts = [self.locations[self.offsets[r]:self.offsets[r + 1]] for r in self._rows(values)]
        return np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int32)

    def sample(self, values: Iterable[int], rng: np.random.Generator) -> np.ndarray | None:
        """One voxel location (3,) holding one of ``values``, about uniform over those voxels (a
        value is drawn in proportion to its full voxel count, then one of its stored locations);
        None if no voxel holds any of them."""
        rows = self._rows(values)
        if not rows:
            return None
        counts = self.counts[rows].astype(np.float64)
        row = rows[int(rng.choice(len(rows), p=counts / counts.sum()))] if len(rows) > 1 else rows[0]
        lo, hi = int(self.offsets[row]), int(self.offsets[row + 1])
        return self.locations[lo + int(rng.integers(hi - lo))]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"values": self.values, "counts": self.counts, "offsets": self.offsets,
                "locations": self.locations}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray] | np.lib.npyio.NpzFile) -> ForegroundIndex:
        index = cls(*(np.asarray(arrays[k]) for k in ("values", "counts", "offsets", "locations")))
        if (index.offsets.shape != (len(index.values) + 1,) or index.locations.ndim != 2
                or index.locations.shape[1] != 3 or int(index.offsets[-1]) != len(index.locations)):
            raise ValueError("inconsistent foreground index arrays")
        return index


class NpyFile:
    """Box reads from an uncompressed C-order ``.npy`` file with ``pread`` (no memory map).

    A patch costs one ``pread`` per (leading index, x) plane into a small buffer, so reads touch
    only page cache and no page of the process is faulted in: cheaper than a memory map on first
    touch, and nothing stays mapped (resident memory does not grow with the cache). Safe to share
    between threads and forked processes (``pread`` has no file position). The descriptor opened
    with the object is kept, so a cache entry rebuilt meanwhile by another process (the path
    replaced or removed) is still read whole; it is reopened by path after unpickling.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            with open(fd, "rb", closefd=False) as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
                self.offset = fh.tell()
            if fortran or dtype.hasobject or len(shape) < 3:
                raise ValueError(f"{self.path}: not a C-order numeric array of 3 or more dimensions")
            self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
            expected = self.offset + int(np.prod(self.shape)) * self.dtype.itemsize
            if os.fstat(fd).st_size != expected:
                raise ValueError(f"{self.path}: file size does not match its header (truncated?)")
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd  # kept open: reads still see this file if the path is replaced or removed

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def crop(
        self, start: Sequence[int] | np.ndarray, size: Sequence[int], pad_value: float = 0,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Same result as :func:`crop` on the whole array (``out`` likewise)."""
        lead, spatial = self.shape[:-3], self.shape[-3:]
        size = tuple(int(p) for p in size)
        src = [(max(int(s), 0), min(int(s) + p, n)) for s, p, n in zip(start, size, spatial)]
        inside = all(hi - lo == p for (lo, hi), p in zip(src, size))
        out = _output(lead + size, self.dtype, inside, pad_value, out)
        (x0, x1), (y0, y1), (z0, z1) = src
        dx, dy, dz = (lo - int(s) for (lo, _), s in zip(src, start))
        _, sy, sz = spatial
        item = self.dtype.itemsize
        slab = _scratch((x1 - x0, y1 - y0, sz), self.dtype)  # whole rows: one read per x plane
        fd = self._descriptor()
        target = (slice(dx, dx + x1 - x0), slice(dy, dy + y1 - y0), slice(dz, dz + z1 - z0))
        for flat, index in enumerate(np.ndindex(*lead)):
            base = self.offset + (flat * int(np.prod(spatial)) + y0 * sz) * item
            for i in range(x1 - x0):
                plane = slab[i]
                if os.preadv(fd, [plane], base + (x0 + i) * sy * sz * item) != plane.nbytes:
                    raise OSError(f"{self.path}: short read at plane {x0 + i}")
            out[(*index, *target)] = slab[:, :, z0:z1]
        return out


_local = threading.local()


def _scratch(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A per-thread reusable buffer (fresh large allocations cost a page fault per 4 KiB)."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buffer = getattr(_local, "buffer", None)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = _local.buffer = np.empty(nbytes, dtype=np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)
