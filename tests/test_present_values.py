"""present_values: the distinct values of a label map, checked against np.unique."""

from __future__ import annotations

import numpy as np
import pytest

from harmonize.read.case import present_values


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.bool_])
@pytest.mark.parametrize("order", ["C", "F"])
def test_present_values_equal_numpy_unique_on_views(dtype, order) -> None:
    rng = np.random.default_rng(3)
    data = np.asarray((rng.integers(0, 6, (37, 41, 29)) * 3).astype(dtype), order=order)
    data[0, 0, 0] = np.iinfo(dtype).max if dtype not in (np.bool_,) else True
    for view in (data, data[::-1, ::2], data.transpose(2, 0, 1), data[:, :, 5:6]):
        assert present_values(view) == [int(v) for v in np.unique(view)]


def test_present_values_of_a_large_uint8_map_without_a_full_copy() -> None:
    data = np.zeros((256, 256, 120), dtype=np.uint8, order="F")
    data[10:20, 10:20, 10:20] = 2
    data[-1, -1, -1] = 255
    assert present_values(data[::-1, ::-1]) == [0, 2, 255]
