"""Analytic checks of the evaluation metrics, k-NN distances and the memorisation audit."""

import io

import numpy as np
import pytest
from PIL import Image

from ray_gan.data.demo import iter_demo_images
from ray_gan.evaluate import metrics
from ray_gan.evaluate.memorisation import audit_near_copies, pixel_vectors, worst_pairs_png
from ray_gan.evaluate.neighbours import kth_neighbour_distance, nearest


def _rng(seed=0):
    return np.random.default_rng(seed)


def _brute(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


# ---- neighbours ---------------------------------------------------------------------

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


# ---- FID ------------------------------------------------------------------------------

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


# ---- KID ------------------------------------------------------------------------------

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


# ---- precision / recall, density / coverage, diversity ---------------------------------

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


# ---- memorisation audit -----------------------------------------------------------------

def _demo_images(n_per_style: int, seed: int) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                     for _, _, png in iter_demo_images(per_style=n_per_style, size=16, seed=seed)])


@pytest.fixture(scope="module")
def demo_sets():
    train = _demo_images(60, seed=1)  # 240 images, 4 styles × 60
    held_out = _demo_images(60, seed=2)
    return train, held_out[0::2], held_out[1::2]  # two held-out sets, 30 of each style


def test_audit_flags_a_generator_that_copies_training_images(demo_sets):
    train, val, _ = demo_sets
    copies = train[::2].copy()
    copies[:, 0, 0, 0] ^= 1  # not even byte-identical: one pixel off by one level
    audit = audit_near_copies(pixel_vectors(copies), pixel_vectors(train), pixel_vectors(val))
    assert audit.share == 1.0 and audit.count == len(copies)
    assert audit.flagged
    assert np.array_equal(audit.index, np.arange(0, len(train), 2))
    assert audit.measure.startswith("relative") and audit.score.max() < audit.threshold


def test_audit_passes_noise_and_held_out_real_images(demo_sets):
    train, val, other = demo_sets
    noise = _rng(15).integers(0, 256, size=(120, 16, 16, 3), dtype=np.uint8)
    audit = audit_near_copies(pixel_vectors(noise), pixel_vectors(train), pixel_vectors(val))
    assert audit.share == 0.0 and not audit.flagged
    # New real images (like a model that generalises): about `quantile` of them are under the threshold.
    honest = audit_near_copies(pixel_vectors(other), pixel_vectors(train), pixel_vectors(val), quantile=0.05)
    assert honest.share < 0.1 and not honest.flagged


def test_audit_thresholds_per_style(demo_sets):
    train, val, other = demo_sets
    styles = np.repeat(np.arange(4), 30)  # the held-out sets hold 30 images of each style, in style order
    flat_and_outline = other[:60]
    audit = audit_near_copies(pixel_vectors(flat_and_outline), pixel_vectors(train), pixel_vectors(val),
                              generated_styles=styles[:60], reference_styles=styles)
    assert sorted(audit.style_thresholds) == [0, 1]
    for s in (0, 1):
        ref = audit.reference_scores[styles == s]
        assert audit.style_thresholds[s] == pytest.approx(np.quantile(ref, 0.05))
        assert np.all(audit.limit[styles[:60] == s] == audit.style_thresholds[s])
    assert audit.share <= 0.1 and not audit.flagged


def test_audit_without_val_uses_train_leave_one_out(demo_sets):
    train, _, _ = demo_sets
    audit = audit_near_copies(pixel_vectors(train[:40]), pixel_vectors(train))
    assert "leave" in audit.reference or "other train" in audit.reference
    assert audit.threshold > 0  # self-matches were excluded
    assert audit.flagged


def test_worst_pairs_png_shows_the_closest_pairs_side_by_side(demo_sets):
    train, val, _ = demo_sets
    gen = np.concatenate([val[:10], train[5:6]])  # one exact copy: the closest pair
    audit = audit_near_copies(pixel_vectors(gen), pixel_vectors(train), pixel_vectors(val[10:]))
    assert audit.closest(1)[0] == 10
    img = np.asarray(Image.open(io.BytesIO(worst_pairs_png(gen, train, audit, n=4))))
    scale, pad = 4, 4  # 16 px tiles are enlarged to 64
    assert img.shape == (4 * (16 * scale + pad) + pad, 2 * (16 * scale + pad) + pad, 3)
    first_gen = img[pad : pad + 64 : scale, pad : pad + 64 : scale]
    first_train = img[pad : pad + 64 : scale, 2 * pad + 64 : 2 * pad + 128 : scale]
    assert np.array_equal(first_gen, train[5]) and np.array_equal(first_train, train[5])


def _glyphs(rng, n, max_strokes):
    """White 16×16 images, each with 1..``max_strokes`` random black horizontal/vertical strokes."""
    img = np.full((n, 16, 16, 3), 255, np.uint8)
    for i in range(n):
        for _ in range(rng.integers(1, max_strokes + 1)):
            a, b = sorted(rng.integers(1, 15, size=2))
            c = rng.integers(1, 15)
            if rng.random() < 0.5:
                img[i, c, a : b + 2] = 0
            else:
                img[i, a : b + 2, c] = 0
    return img


def test_audit_relative_measure_does_not_call_generic_faint_images_copies():
    rng = _rng(7)
    train, val = _glyphs(rng, 400, 6), _glyphs(rng, 80, 6)  # from single strokes ("一") to six
    # A collapsed generator: faint grey blobs, no strokes; generic, close to the sparsest glyphs.
    faint = np.clip(255 - np.abs(rng.normal(0, 12, size=(80, 16, 16, 3))), 0, 255).astype(np.uint8)
    absolute = audit_near_copies(pixel_vectors(faint), pixel_vectors(train), pixel_vectors(val), relative_k=0)
    relative = audit_near_copies(pixel_vectors(faint), pixel_vectors(train), pixel_vectors(val))
    assert absolute.measure == "absolute" and absolute.flagged  # what the absolute distance alone concluded
    assert relative.measure == "relative (k=50)" and relative.share == 0.0 and not relative.flagged
    # while copies of those same sparse glyphs are still caught
    copies = train[np.argsort(pixel_vectors(train).sum(1))[-5:]].repeat(4, axis=0)  # the sparsest glyphs
    caught = audit_near_copies(pixel_vectors(copies), pixel_vectors(train), pixel_vectors(val))
    assert caught.share == 1.0 and caught.flagged
