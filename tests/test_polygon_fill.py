"""harmonize's row-wise polygon fill gives exactly scikit-image's pixels (the oracle).

scikit-image's ``skimage.draw.polygon`` tests every pixel of the bounding box against every edge
(O'Rourke's crossing test, vertices within 1e-12 and edges included); harmonize applies the same
test to the edges each row meets. Random polygons cover vertices on pixel centres, on half
pixels, a hair off them, outside the image, self-intersecting and star-shaped outlines.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import polygon

from harmonize.read.polygon import fill_polygon

SHAPE = (45, 40)


def skimage_mask(r: np.ndarray, c: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    rr, cc = polygon(r, c, shape)
    mask[rr, cc] = True
    return mask


def random_polygon(rng: np.random.Generator, kind: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(3, 40))
    if kind == 0:  # anywhere, partly outside the image
        return rng.uniform(-5, 60, n), rng.uniform(-5, 50, n)
    if kind == 1:  # half-pixel vertices: many edges through pixel centres
        return rng.integers(-2, 90, n) / 2.0, rng.integers(-2, 80, n) / 2.0
    if kind == 2:  # star-shaped, like an organ outline
        angle = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(3, 20, n)
        return 22 + radius * np.cos(angle), 20 + radius * np.sin(angle)
    if kind == 3:  # vertices on pixel centres
        return rng.integers(0, 45, n).astype(float), rng.integers(0, 40, n).astype(float)
    r = rng.integers(0, 45, n) + rng.choice([0.0, 0.5, 1e-13, -1e-13, 0.3], n)
    return r, rng.integers(0, 40, n).astype(float)


@pytest.mark.parametrize("kind", range(5))
def test_same_pixels_as_scikit_image(kind):
    rng = np.random.default_rng(kind)
    for _ in range(600):
        r, c = random_polygon(rng, kind)
        np.testing.assert_array_equal(fill_polygon(r, c, SHAPE), skimage_mask(r, c, SHAPE),
                                      err_msg=f"r={r.tolist()} c={c.tolist()}")


def test_degenerate_and_outside_polygons():
    for r, c in (([5.0], [5.0]), ([1.0, 4.0], [1.0, 4.0]), ([100.0, 120.0, 110.0], [1.0, 2.0, 9.0]),
                 ([-9.0, -3.0, -5.0], [1.0, 2.0, 9.0]), ([2.0, 2.0, 2.0], [1.0, 5.0, 9.0])):
        np.testing.assert_array_equal(fill_polygon(np.array(r), np.array(c), SHAPE),
                                      skimage_mask(np.array(r), np.array(c), SHAPE))
