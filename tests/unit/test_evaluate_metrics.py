"""ray_gan.evaluate.metrics: analytic checks of FID, KID, precision/recall,
density/coverage and diversity."""

import numpy as np
import pytest
from helpers import rng as _rng

from ray_gan.evaluate import metrics


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    x, y = _rng(3).normal(size=(500, 16)), _rng(4).normal(1.0, 2.0, size=(400, 16))
    assert metrics.fid(x, x) == pytest.approx(0.0, abs=1e-8)
    assert metrics.fid(x, y) == pytest.approx(metrics.fid(y, x), rel=1e-9)
    assert metrics.fid(x, y) > 10


def test_frechet_distance_closed_forms():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    # Commuting (diagonal) covariances: |Δμ|² + Σ (√a − √b)².
    expected = 5.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    # Non-commuting 2×2: tr √(S1½ S2 S1½) = √(tr(S1 S2) + 2 √(det S1 det S2)).
    s1, s2 = np.array([[2.0, 0.8], [0.8, 1.0]]), np.array([[1.0, -0.5], [-0.5, 3.0]])
    tr_sqrt = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = 1.0 + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    got = metrics.frechet_distance(np.zeros(2), s1, np.array([1.0, 0.0]), s2)
    assert got == pytest.approx(expected, rel=1e-10)


def test_fid_of_gaussian_samples_approaches_the_closed_form():
    rng = _rng(5)
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[1.0, -0.5], [-0.5, 3.0]])
    x = rng.multivariate_normal([0, 0], s1, size=40_000)
    y = rng.multivariate_normal([1, 0], s2, size=40_000)
    exact = metrics.frechet_distance(np.zeros(2), s1, np.array([1.0, 0.0]), s2)
    assert metrics.fid(x, y) == pytest.approx(exact, rel=0.03)


def test_fid_with_fewer_samples_than_dimensions_is_finite_and_real():
    x, y = _rng(6).normal(size=(20, 64)), _rng(7).normal(size=(20, 64))
    v = metrics.fid(x, y)
    assert np.isfinite(v) and v > 0
    assert metrics.fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_mmd2_unbiased_matches_the_definition():
    x, y = _rng(8).normal(size=(6, 3)), _rng(9).normal(size=(5, 3))
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / 30
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x[i], y[j]) for i in range(6) for j in range(5)) / 30
    assert metrics.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_near_zero_for_one_distribution_positive_for_a_shift_and_seeded():
    rng = _rng(10)
    a, b = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    same = metrics.kid(a, b, subsets=20, subset_size=200, seed=0)
    shifted = metrics.kid(a, b + 0.5, subsets=20, subset_size=200, seed=0)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert shifted.mean > 10 * max(abs(same.mean), same.std)
    assert metrics.kid(a, b, subsets=20, subset_size=200, seed=0) == same
    assert metrics.kid(a, b, subsets=20, subset_size=200, seed=1) != same
    capped = metrics.kid(a[:50], b, subsets=3, subset_size=1000, seed=0)
    assert capped.subset_size == 50


def test_precision_recall_identical_far_and_collapsed():
    real = _rng(11).normal(size=(300, 4))
    assert metrics.precision_recall(real, real.copy()) == (1.0, 1.0)
    assert metrics.precision_recall(real, real + 100.0) == (0.0, 0.0)
    # Mode collapse: every fake near one real point → faithful but not diverse.
    collapsed = real[0] + 0.001 * _rng(12).normal(size=(300, 4))
    p, r = metrics.precision_recall(real, collapsed)
    assert p == 1.0 and r < 0.05


def test_density_and_coverage_analytic_cases():
    real = _rng(13).normal(size=(200, 3))
    d, c = metrics.density_coverage(real, real.copy(), k=5)
    assert c == 1.0
    assert d == pytest.approx(6 / 5)  # each point: its own ball + the k balls that reach it, on average
    assert metrics.density_coverage(real, real + 50.0, k=5) == (0.0, 0.0)
    half = real[np.argsort(real[:, 0])[:100]]  # fakes only in one half of the real support
    d_half, c_half = metrics.density_coverage(real, half, k=5)
    assert 0.3 < c_half < 0.8


def test_diversity_is_the_mean_pairwise_distance():
    assert metrics.diversity(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    pts = np.array([[0.0], [1.0], [3.0]])
    assert metrics.diversity(pts) == pytest.approx((1 + 3 + 2) / 3)
    x = _rng(14).normal(size=(50, 4))
    assert metrics.diversity(0.5 * x) == pytest.approx(0.5 * metrics.diversity(x))


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        metrics.fid(np.array([[0.0], [np.nan]]), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="dimension"):
        metrics.fid(np.zeros((3, 2)), np.zeros((3, 3)))



def test_colour_sees_channels_clipped_on_their_own_and_fringes_along_edges():
    """Dark grey shapes on white: no cast, no chroma on edges. Issue #20's two symptoms:
    a white background whose channels overshoot by different amounts (clipped channel by
    channel when rendered) is tinted; channels shifted against each other fringe every edge."""
    rng = np.random.default_rng(0)
    real = np.full((20, 32, 32, 3), 255, np.uint8)
    for img in real:
        y, x = rng.integers(4, 20, 2)
        img[y : y + 10, x : x + 10] = rng.integers(0, 120)
    clean = metrics.colour(real)
    assert clean.cast < 0.01 and clean.edges < 0.01
    overshoot = rng.normal(0, 0.4, (20, 32, 32, 3))  # G's values in [-1, 1] units, beyond +1 on the background
    model = np.clip(real.astype(np.float64) / 127.5 - 1 + overshoot * (real == 255), -1, 1)
    tinted = metrics.colour(((model + 1) * 127.5).round().astype(np.uint8))
    assert tinted.cast > 5 * clean.cast + 0.02
    fringed = real.copy()
    fringed[..., 0] = np.roll(real[..., 0], 1, axis=2)  # red one pixel right, blue one left
    fringed[..., 2] = np.roll(real[..., 2], -1, axis=2)
    assert metrics.colour(fringed).edges > 0.2
    assert metrics.colour(np.zeros((2, 8, 8, 3), np.uint8)) == (None, None)  # no light flat areas, no edges
