"""Separable resampling on axis-aligned grids, one output plane at a time.

Every grid :mod:`harmonize.engine.resample` samples is separable: output index ``j`` maps to the
input position ``origin + direction @ (step * j)`` with ``direction`` a signed permutation, so
output axis ``k`` reads only input axis ``source[k]``. Linear interpolation on such a grid is the
product of three 1-D linear interpolations, and nearest neighbour three 1-D index gathers, so both
run axis by axis. They run plane by plane along the input axis that is slowest in memory: each
output plane is interpolated from two input planes (views), then along the two other axes in
buffers the size of a plane, and copied into the output. No full-size temporary is made: the
output is the only allocation the size of a volume.

Sampling rules (per axis, at input position ``p`` of an axis of ``n`` voxels):

* ``border=False`` (SimpleITK's ``ResampleImageFilter`` with ``sitkLinear`` /
  ``sitkNearestNeighbor``, default value 0): ``p`` in ``[-0.5, n - 0.5)`` is inside, where linear
  interpolation clamps its neighbours to the edge and nearest rounds half up; outside is 0.
* ``border=True`` (MONAI/PyTorch ``grid_sample`` with ``padding_mode="border"``): ``p`` is clamped
  to ``[0, n - 1]``; nearest neighbour rounds half to even where ``positions_even`` says so
  (the caller computes MONAI's rounding in the output's index space).

Linear results are float32 computed in float32 (SimpleITK computes in float64 and casts: the two
agree within a few float32 ulps of the input's magnitude); nearest keeps values and dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AxisPlan:
    """How one input axis is read: output sample ``j`` is ``w0[j] * x[i0[j]] + w1[j] * x[i1[j]]``
    (nearest: ``w1`` all 0, ``w0`` 1 inside and 0 outside)."""

    i0: np.ndarray
    i1: np.ndarray
    w0: np.ndarray
    w1: np.ndarray

    @property
    def trivial_second(self) -> bool:
        return not self.w1.any()


def linear_plan(positions: np.ndarray, n: int, border: bool) -> AxisPlan:
    """Linear interpolation along an axis of ``n`` voxels at ``positions`` (see module doc)."""
    p = np.asarray(positions, dtype=np.float64)
    if border:
        p = np.clip(p, 0.0, n - 1.0)
        inside = np.ones(p.shape, dtype=bool)
    else:
        inside = (p >= -0.5) & (p < n - 0.5)
    base = np.floor(p)
    i0 = np.clip(base, 0, n - 1).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    w1 = np.where((base < 0) | (i1 == i0) | ~inside, 0.0, p - base)
    w0 = np.where(inside, 1.0 - w1, 0.0)
    return AxisPlan(i0, i1, w0.astype(np.float32), w1.astype(np.float32))


def nearest_plan(index: np.ndarray, inside: np.ndarray) -> AxisPlan:
    """Nearest neighbour: read ``index`` (already rounded and clipped) where ``inside``, else 0."""
    index = np.asarray(index, dtype=np.intp)
    weights = np.asarray(inside, dtype=np.float32)
    return AxisPlan(index, index, weights, np.zeros_like(weights))


def sitk_nearest_plan(positions: np.ndarray, n: int) -> AxisPlan:
    """SimpleITK's nearest neighbour (round half up, ``[-0.5, n - 0.5)`` inside, else 0)."""
    p = np.asarray(positions, dtype=np.float64)
    inside = (p >= -0.5) & (p < n - 0.5)
    return nearest_plan(np.clip(np.floor(p + 0.5), 0, n - 1), inside)


def resample_separable(data: np.ndarray, plans: list[AxisPlan], source: list[int],
                       *, linear: bool) -> np.ndarray:
    """Sample the 3-D ``data`` with one :class:`AxisPlan` per *input* axis; output axis ``k``
    comes from input axis ``source[k]``. Linear: float32; nearest: ``data``'s dtype. The result
    is Fortran-ordered in the output's axis order."""
    sizes = [len(plan.i0) for plan in plans]
    dtype = np.dtype(np.float32) if linear else data.dtype
    order = sorted(range(3), key=lambda a: -abs(data.strides[a]))  # slowest in memory first
    slow, middle, fast = order
    out_shape = tuple(sizes[source[k]] for k in range(3))
    out = np.zeros(out_shape, dtype=dtype, order="F")
    # ``out`` seen in input axis order, so the plane loop writes out[..., j along slow, ...]
    out_in_input_order = out.transpose([source.index(a) for a in range(3)])
    plane_out = np.moveaxis(out_in_input_order, slow, 0)  # (slow, rest in input order)
    rest = [a for a in range(3) if a != slow]  # the two plane axes, in input order
    mid_pos, fast_pos = rest.index(middle), rest.index(fast)
    if linear:
        _linear_planes(data, plans, slow, rest, mid_pos, fast_pos, plane_out)
    else:
        _nearest_planes(data, plans, slow, rest, mid_pos, fast_pos, plane_out)
    return out


def _plane(data: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2-D view ``data[..., index, ...]`` along ``axis`` (no copy, unlike ``np.take``)."""
    key: list[slice | int] = [slice(None)] * data.ndim
    key[axis] = int(index)
    return data[tuple(key)]


def _oriented(plane: np.ndarray, mid_pos: int) -> np.ndarray:
    """``plane`` (axes in input order) as (middle, fast): C-ordered when the input is."""
    return plane if mid_pos == 0 else plane.T


def _linear_planes(data, plans, slow, rest, mid_pos, fast_pos, plane_out) -> None:
    p_slow = plans[slow]
    plan_mid, plan_fast = plans[rest[mid_pos]], plans[rest[fast_pos]]
    n_mid, n_fast = data.shape[rest[mid_pos]], data.shape[rest[fast_pos]]
    m_mid, m_fast = len(plan_mid.i0), len(plan_fast.i0)
    buf, other = np.empty((n_mid, n_fast), np.float32), np.empty((n_mid, n_fast), np.float32)
    mid0, mid1 = np.empty((m_mid, n_fast), np.float32), np.empty((m_mid, n_fast), np.float32)
    fast0, fast1 = np.empty((m_mid, m_fast), np.float32), np.empty((m_mid, m_fast), np.float32)
    wm0, wm1 = plan_mid.w0[:, None], plan_mid.w1[:, None]
    wf0, wf1 = plan_fast.w0[None, :], plan_fast.w1[None, :]
    for j in range(len(p_slow.i0)):
        w0, w1 = p_slow.w0[j], p_slow.w1[j]
        if w0 == 0 and w1 == 0:
            continue  # outside: the output plane stays 0
        plane = _oriented(_plane(data, slow, p_slow.i0[j]), mid_pos)
        np.multiply(plane, w0, out=buf, casting="unsafe")
        if w1 != 0:
            plane = _oriented(_plane(data, slow, p_slow.i1[j]), mid_pos)
            np.multiply(plane, w1, out=other, casting="unsafe")
            buf += other
        np.take(buf, plan_mid.i0, axis=0, out=mid0, mode="clip")
        mid0 *= wm0
        if not plan_mid.trivial_second:
            np.take(buf, plan_mid.i1, axis=0, out=mid1, mode="clip")
            mid1 *= wm1
            mid0 += mid1
        np.take(mid0, plan_fast.i0, axis=1, out=fast0, mode="clip")
        fast0 *= wf0
        if not plan_fast.trivial_second:
            np.take(mid0, plan_fast.i1, axis=1, out=fast1, mode="clip")
            fast1 *= wf1
            fast0 += fast1
        plane_out[j] = _oriented(fast0, mid_pos)


def _nearest_planes(data, plans, slow, rest, mid_pos, fast_pos, plane_out) -> None:
    p_slow = plans[slow]
    plan_mid, plan_fast = plans[rest[mid_pos]], plans[rest[fast_pos]]
    keep = (plan_mid.w0[:, None] != 0) & (plan_fast.w0[None, :] != 0)
    mask = None if keep.all() else keep
    for j in range(len(p_slow.i0)):
        if p_slow.w0[j] == 0:
            continue
        plane = _oriented(_plane(data, slow, p_slow.i0[j]), mid_pos)
        gathered = np.take(np.take(plane, plan_mid.i0, axis=0, mode="clip"), plan_fast.i0,
                           axis=1, mode="clip")
        if mask is not None:
            gathered = np.where(mask, gathered, np.zeros((), dtype=gathered.dtype))
        plane_out[j] = _oriented(gathered, mid_pos)
