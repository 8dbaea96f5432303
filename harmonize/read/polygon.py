"""Filled polygons on a pixel grid: the pixels ``skimage.draw.polygon`` gives, row by row.

A pixel (its centre) belongs to a polygon when O'Rourke's crossing test says inside, on an edge
or on a vertex (within 1e-12), exactly as scikit-image's ``point_in_polygon`` decides for every
pixel of the polygon's bounding box. scikit-image tests each pixel against every edge
(bounding box x vertices: ~0.1-0.5 s for one 300-1000 point lung contour on a 512 x 512 slice);
:func:`fill_polygon` applies the same arithmetic only to the edges each row meets, so a
structure set of hundreds of contours rasterizes in seconds. Tested equal to scikit-image on
thousands of random polygons, with vertices on, beside and between pixel centres.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fill_polygon", "polygon_box"]

#: scikit-image's tolerance for a pixel centre on a vertex
VERTEX_TOLERANCE = 1e-12


def fill_polygon(r: np.ndarray, c: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` mask of the polygon with vertex rows ``r`` and columns ``c`` (any
    floats; the polygon closes itself): ``skimage.draw.polygon(r, c, shape)`` as a mask."""
    out = np.zeros(shape, dtype=bool)
    box = polygon_box(r, c, shape)
    if box is not None:
        (r0, c0), inside = box
        out[r0:r0 + inside.shape[0], c0:c0 + inside.shape[1]] = inside
    return out


def polygon_box(r: np.ndarray, c: np.ndarray, shape: tuple[int, int]
                ) -> tuple[tuple[int, int], np.ndarray] | None:
    """The polygon's pixels within its bounding box clipped to ``shape``: ``((row, col) of the
    box's first pixel, boolean box mask)``, or ``None`` when the box is empty."""
    r = np.asarray(r, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    if r.size == 0:
        return None
    minr, maxr = int(max(0.0, r.min())), min(shape[0] - 1, int(np.ceil(r.max())))
    minc, maxc = int(max(0.0, c.min())), min(shape[1] - 1, int(np.ceil(c.max())))
    if maxr < minr or maxc < minc:
        return None
    rows = np.arange(minr, maxr + 1, dtype=np.float64)
    cols = np.arange(minc, maxc + 1, dtype=np.float64)
    inside = np.zeros((rows.size, cols.size), dtype=bool)
    r_prev, c_prev = np.roll(r, 1), np.roll(c, 1)  # edge (i - 1, i), the order skimage walks
    y0 = r[None, :] - rows[:, None]  # (rows, vertices), shifted so the pixel is the origin
    y1 = r_prev[None, :] - rows[:, None]
    right = (y0 > 0) != (y1 > 0)  # the edge straddles the row (bias up / bias down)
    left = (y0 < 0) != (y1 < 0)
    row_of, edge = np.nonzero(right | left)  # the few edges each row meets; rows ascending
    if row_of.size:
        x0 = c[edge][:, None] - cols[None, :]
        x1 = c_prev[edge][:, None] - cols[None, :]
        a, b = y0[row_of, edge][:, None], y1[row_of, edge][:, None]
        cross = (x0 * b - x1 * a) / (b - a)  # where the edge meets the row, right of the pixel > 0
        hit_rows, start = np.unique(row_of, return_index=True)
        r_odd = np.bitwise_xor.reduceat(
            (right[row_of, edge][:, None] & (cross > 0)).view(np.uint8), start, axis=0)
        l_odd = np.bitwise_xor.reduceat(
            (left[row_of, edge][:, None] & (cross < 0)).view(np.uint8), start, axis=0)
        inside[hit_rows] = (r_odd != l_odd) | (r_odd == 1)  # on an edge, or inside
    near_r, near_c = np.rint(r), np.rint(c)
    vertex = ((np.abs(c - near_c) < VERTEX_TOLERANCE) & (np.abs(r - near_r) < VERTEX_TOLERANCE)
              & (near_r >= minr) & (near_r <= maxr) & (near_c >= minc) & (near_c <= maxc))
    inside[near_r[vertex].astype(np.intp) - minr, near_c[vertex].astype(np.intp) - minc] = True
    return (minr, minc), inside
