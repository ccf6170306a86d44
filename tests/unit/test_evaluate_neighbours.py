"""ray_gan.evaluate.neighbours: exact blocked nearest-neighbour distances."""

import numpy as np
import pytest
from helpers import rng as _rng

from ray_gan.evaluate.neighbours import kth_neighbour_distance, nearest


def _brute(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def test_nearest_and_kth_neighbour_match_brute_force_across_blocks():
    a, b = _rng(1).normal(size=(37, 5)), _rng(2).normal(size=(23, 5))
    d = _brute(a, b)
    dist, idx = nearest(a, b, block_rows=8)
    assert np.array_equal(idx, d.argmin(1))
    np.testing.assert_allclose(dist, d.min(1), rtol=1e-12)
    dist32, idx32 = nearest(a, b, dtype=np.float32, block_rows=8)
    assert np.array_equal(idx32, idx)
    np.testing.assert_allclose(dist32, dist, rtol=1e-12)  # reported distances are exact float64
    self_d = _brute(a, a)
    np.fill_diagonal(self_d, np.inf)
    for k in (1, 3):
        np.testing.assert_allclose(kth_neighbour_distance(a, k, block_rows=8), np.sort(self_d, 1)[:, k - 1],
                                   rtol=1e-9)
    excl_d, excl_i = nearest(a, a, exclude=np.arange(len(a)), block_rows=8)
    assert np.array_equal(excl_i, self_d.argmin(1))
    with pytest.raises(ValueError):
        kth_neighbour_distance(a[:3], 3)
