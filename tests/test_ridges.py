"""The line-pixel statistics every box takes (the priors read hundreds of boxes per frame)."""

from __future__ import annotations

import numpy as np
import pytest

from cs_features.ridges import linear_quantile, median


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantile_and_median_equal_numpys_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    for _ in range(3000):
        height, width = rng.integers(1, 60, 2)
        values = (rng.random((height, width)) * rng.choice([1e-3, 1.0, 50.0])).astype(dtype)
        if rng.random() < 0.3:  # ties, as in maps with flat areas
            values = np.round(values * 4) / 4
        quantile = float(rng.choice([0.5, 0.9, 0.97, rng.random()]))
        expected = np.quantile(values, quantile)
        got = linear_quantile(values, quantile)
        assert got == expected and got.dtype == expected.dtype
        strong = values[values >= expected]
        assert median(strong) == np.median(strong) and median(values) == np.median(values)
    assert linear_quantile(np.array([3.0, 1.0]), 1.0) == 3.0 and linear_quantile(np.array([2.0]), 0.97) == 2.0
