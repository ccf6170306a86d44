"""Sample-quality metrics on feature vectors (pure numpy; rows are samples).

Written from the papers:

Pure functions of numpy arrays (torch does the eigen-decompositions and KID's kernel
products, on one thread).

* FID — Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a
  Local Nash Equilibrium": the Fréchet distance between Gaussians fitted to the two
  feature sets, ``|μ1 - μ2|² + tr(Σ1 + Σ2 - 2 (Σ1^½ Σ2 Σ1^½)^½)``. Biased upwards at small
  sample sizes: compare FIDs only at equal sample counts.
* KID — Bińkowski et al. 2018, "Demystifying MMD GANs": the unbiased estimate of the
  squared MMD with the cubic polynomial kernel ``k(x, y) = (x·y / d + 1)³``, averaged
  over random equal-size subsets.
* Precision / recall — Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric
  for Assessing Generative Models": each set's manifold is the union of balls around its
  points with radius = distance to the k-th nearest neighbour in the same set;
  precision = share of fakes inside the real manifold, recall = share of reals inside
  the fake manifold.
* Density / coverage — Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
  Generative Models": density = how many real k-NN balls contain a fake, on average,
  divided by k (≈ 1 when fakes are distributed like reals; > 1 when they crowd dense
  real regions); coverage = share of real balls that contain at least one fake.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ray_gan.evaluate.neighbours import distance_blocks, kth_neighbour_distance, nearest
from ray_gan.evaluate.threads import one_torch_thread


def _feats(x: np.ndarray, name: str, min_rows: int = 2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected (samples, dims), got shape {x.shape}")
    if len(x) < min_rows:
        raise ValueError(f"{name}: need at least {min_rows} samples, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: features contain NaN or inf")
    return x


def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, ddof=1) covariance of a feature set, in float64."""
    x = _feats(feats, "feats")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _eigh(m: np.ndarray, vectors: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigen-decomposition of the symmetric part of ``m`` (float64, torch's LAPACK, on one
    thread: see :mod:`ray_gan.evaluate.threads`)."""
    t = torch.from_numpy(np.ascontiguousarray((m + m.T) / 2.0, dtype=np.float64))
    with one_torch_thread():
        if vectors:
            w, v = torch.linalg.eigh(t)
            return w.numpy(), v.numpy()
        return torch.linalg.eigvalsh(t).numpy(), None


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via its eigen-decomposition
    (eigenvalues that rounding made slightly negative are clipped to 0)."""
    w, v = _eigh(m, vectors=True)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein²) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``tr((Σ1^½ Σ2 Σ1^½)^½)`` is the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix ``Σ1^½ Σ2 Σ1^½``; computing it with ``eigh`` on that symmetric
    product (instead of a general ``sqrtm(Σ1 Σ2)``) never produces complex values, also
    for the rank-deficient covariances of fewer samples than dimensions.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eig = _eigh(middle, vectors=False)[0]
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(value, 0.0)  # a true distance; tiny negatives are rounding


def fid(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Fréchet Inception Distance between two feature sets (whatever the extractor)."""
    mu_a, s_a = gaussian_stats(_feats(feat_a, "feat_a"))
    mu_b, s_b = gaussian_stats(_feats(feat_b, "feat_b"))
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"dimension mismatch: {mu_a.shape[0]} vs {mu_b.shape[0]}")
    return frechet_distance(mu_a, s_a, mu_b, s_b)


class KID(NamedTuple):
    mean: float  # mean unbiased MMD² over subsets
    std: float  # standard deviation of the per-subset estimates
    subsets: int
    subset_size: int


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``k(x, y) = (x·y / d + 1)³`` for all pairs of rows (float64; many small products,
    so on one thread: see :mod:`ray_gan.evaluate.threads`)."""
    tx = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    ty = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))
    with one_torch_thread():
        return (tx @ ty.T).div_(x.shape[1]).add_(1.0).pow_(3).numpy()


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of MMD² with the cubic polynomial kernel (diagonal terms excluded)."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.sum() / (m * n))


def kid(feat_a: np.ndarray, feat_b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> KID:
    """Kernel Inception Distance: MMD² over ``subsets`` random subsets of ``subset_size``
    rows of each set (without replacement; ``subset_size`` is capped at the smaller set).
    Deterministic for a given ``seed``. Unbiased: ≈ 0 (can be slightly negative) when both
    sets come from the same distribution."""
    a, b = _feats(feat_a, "feat_a"), _feats(feat_b, "feat_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimension mismatch: {a.shape[1]} vs {b.shape[1]}")
    if subsets < 1:
        raise ValueError("subsets must be >= 1")
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError("subset_size must be >= 2")
    rng = np.random.default_rng(seed)
    values = np.array([
        mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
        for _ in range(subsets)
    ])
    return KID(float(values.mean()), float(values.std()), subsets, size)


# A point on a ball's boundary is inside it; the relative slack keeps that true when the
# two distances being compared were rounded differently (e.g. d(a, b) vs d(b, a)).
_BOUNDARY_RTOL = 1e-9


def _ball_hits(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each point: how many balls B(centre_i, radius_i) contain it (boundary included)."""
    hits = np.zeros(len(points), dtype=np.int64)
    limit = radii[None, :] * (1.0 + _BOUNDARY_RTOL)
    for start, d in distance_blocks(points, centres):
        hits[start : start + len(d)] = (d <= limit).sum(axis=1)
    return hits


class PrecisionRecall(NamedTuple):
    precision: float
    recall: float


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019), k-NN radius ``k`` (paper: 3)."""
    real, fake = _feats(real, "real", k + 1), _feats(fake, "fake", k + 1)
    precision = float((_ball_hits(fake, real, kth_neighbour_distance(real, k)) > 0).mean())
    recall = float((_ball_hits(real, fake, kth_neighbour_distance(fake, k)) > 0).mean())
    return PrecisionRecall(precision, recall)


class DensityCoverage(NamedTuple):
    density: float
    coverage: float


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> DensityCoverage:
    """Density and coverage (Naeem et al. 2020), k-NN radius ``k`` on the real set (paper: 5).

    For a set compared with itself (no duplicates), coverage is 1 and density is
    ``(k + 1) / k``: each point lies in its own ball and in the balls of the k points
    whose k-NN radius reaches it, on average.
    """
    real, fake = _feats(real, "real", k + 1), _feats(fake, "fake", 1)
    radii = kth_neighbour_distance(real, k)
    density = float(_ball_hits(fake, real, radii).sum() / (k * len(fake)))
    coverage = float((nearest(real, fake)[0] <= radii * (1.0 + _BOUNDARY_RTOL)).mean())
    return DensityCoverage(density, coverage)


def diversity(feats: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of distinct rows."""
    x = _feats(feats, "feats")
    total = 0.0
    for start, d in distance_blocks(x, x):
        rows = np.arange(len(d))
        d[rows, start + rows] = 0.0
        total += float(d.sum())
    n = len(x)
    return total / (n * (n - 1))


class Colour(NamedTuple):
    """Pixel colour where it gives a generator away (issue #20's fringes): ``cast``, the
    mean chroma (max − min of R, G, B, in [0, 1]) of flat, light areas (white
    backgrounds: near 0 in real artwork on white); ``edges``, the mean chroma on edges
    (0 for grey glyphs; cyan, magenta and yellow fringes raise it). None where an image
    set has no such pixels. Compare a generated set with the real one."""

    cast: float | None
    edges: float | None


def colour(images: np.ndarray, bright: float = 0.8, flat: float = 0.02, edge: float = 0.08) -> Colour:
    """``images`` uint8 (N, H, W, 3). Flat light pixels: luminance above ``bright`` and
    luminance gradient below ``flat``; edges: gradient above ``edge``. A generator whose
    values leave [-1, 1] by different amounts per channel draws flat light areas tinted
    (a rendered image clips each channel on its own); one whose channels disagree along
    edges draws fringes."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    if x.ndim != 4 or x.shape[-1] != 3:
        return Colour(None, None)
    lum = x.mean(axis=-1)
    gy, gx = np.gradient(lum, axis=(1, 2))
    grad = np.hypot(gx, gy)
    chroma = x.max(axis=-1) - x.min(axis=-1)
    light = (lum > bright) & (grad < flat)
    edges = grad > edge
    return Colour(float(chroma[light].mean()) if light.any() else None,
                  float(chroma[edges].mean()) if edges.any() else None)
