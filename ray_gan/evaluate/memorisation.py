"""Memorisation audit: how many generated images are near-copies of training images?

For every generated image, its nearest TRAINING image and how close it is. What counts as
"near" is calibrated on real data: the threshold is a low quantile (default the 5th
percentile) of the same measure taken from each held-out VAL image to the training set,
i.e. "closer to a training image than all but 5% of genuinely new images are". A model
that generalises puts about that share (``quantile``) of its samples under the
threshold; one that replays its training set puts nearly all of them there.

The measure (default) is the **relative distance** of Carlini et al. (2023, "Extracting
Training Data from Diffusion Models", §4): the distance to the nearest training image
divided by the mean distance to the ``relative_k`` (50) nearest. A copy is much closer
to its source than to anything else in the training set (ratio near 0); an image that is
merely *generic* — a faint blob, a near-blank glyph — sits about as close to many
training images as to its nearest (ratio near 1), and is not a copy even when its
absolute distance is small. (The absolute distance alone flagged a collapsed
generator's faint blobs as "copies" of the training set's single-stroke glyph.) With
``relative_k`` 0 the measure is the absolute distance.

The audit runs in two spaces and reports both:

* **pixel space** (the verdict): RGB in [0, 1], flattened, at the model's resolution
  (area-downsampled to at most 32×32 to bound the cost). ``prepare`` aligns every image
  (same crop, same size) and a memorising GAN reproduces its training image aligned, so
  a small pixel distance *is* a copy — it is the literal definition, needs no learned
  notion of similarity, and does not change with the feature extractor, so verdicts are
  comparable across ``--extractor`` choices;
* **feature space** (of the chosen extractor): reported for information. Features are
  built to be invariant (to colour, texture, small shifts, …), so two different images
  can be close there, and a random-CNN space is not calibrated for "sameness" at all.

With style labels (a conditional model's generated images have them), the threshold is
calibrated per style — on the val images of that style — because how close new images
come to the training set differs between styles (a flat icon style has closer
neighbours than a textured one); a style without val images uses the overall threshold.

The flag is raised when the near-copy share is more than ``flag_ratio`` (default 2) times
the quantile *and* the excess count is beyond three binomial standard errors (so that
a handful of samples cannot raise it by chance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ray_gan.evaluate.neighbours import nearest_and_mean
from ray_gan.images import encode, make_grid

PIXEL_SIZE = 32
RELATIVE_K = 50  # Carlini et al. (2023) use the 50 nearest
MAX_LOO_QUERIES = 2000


def pixel_vectors(images: np.ndarray, max_size: int = PIXEL_SIZE) -> np.ndarray:
    """uint8 (N, H, W, 3) → float32 (N, h·w·3) in [0, 1]; area-downsampled to ``max_size`` if larger."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] > max_size:
        x = F.interpolate(x, size=(max_size, max_size), mode="area")
    return x.permute(0, 2, 3, 1).reshape(len(x), -1).numpy()


@dataclass(frozen=True)
class NearCopyAudit:
    space: str  # "pixel" or the feature extractor's name
    measure: str  # "relative (k=50)" or "absolute": what ``score`` and the thresholds are in
    quantile: float
    threshold: float  # overall threshold: generated images at or below their threshold are near-copies
    style_thresholds: dict[int, float]  # per style, where style labels were given
    reference: str  # what calibrated the thresholds
    reference_scores: np.ndarray  # real → train, in the measure, (n_ref,)
    reference_distances: np.ndarray  # real → nearest train, absolute, (n_ref,)
    score: np.ndarray  # generated → train, in the measure, (n_gen,)
    distance: np.ndarray  # generated → nearest train, absolute, (n_gen,)
    index: np.ndarray  # index of that nearest train image, (n_gen,)
    limit: np.ndarray  # the threshold that applies to each generated image, (n_gen,)
    flag_ratio: float

    @property
    def near_copy(self) -> np.ndarray:
        return self.score <= self.limit

    @property
    def count(self) -> int:
        return int(self.near_copy.sum())

    @property
    def share(self) -> float:
        return float(self.near_copy.mean()) if len(self.score) else 0.0

    @property
    def flagged(self) -> bool:
        n, q = len(self.score), self.quantile
        beyond_noise = self.count > n * q + 3.0 * math.sqrt(n * q * (1.0 - q))
        return bool(self.share > self.flag_ratio * q and beyond_noise)

    def closest(self, n: int) -> np.ndarray:
        """Indices of the ``n`` generated images most like copies (lowest score) first."""
        return np.argsort(self.score, kind="stable")[:n]


def near_copy_scores(query: np.ndarray, train: np.ndarray, k: int, dtype: type,
                     exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, absolute distance, nearest index) of each query against the training set:
    the audit's measure (relative over the ``k`` nearest; absolute for ``k`` ≤ 1), which the
    batch runner's training-copy gate applies too."""
    distance, index, mean_k = nearest_and_mean(query, train, max(k, 1), dtype, exclude)
    if k <= 1:
        return distance, distance, index
    # An exact duplicate of a training image whose k nearest are all duplicates too
    # (mean 0) is a copy: score 0.
    score = np.divide(distance, mean_k, out=np.zeros_like(distance), where=mean_k > 0)
    return score, distance, index


def _check(quantile: float, train: np.ndarray) -> bool:
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if len(train) < 2:
        raise ValueError("the memorisation audit needs at least two training images")
    return True


@dataclass(frozen=True)
class NearCopyThresholds:
    """What counts as a near-copy of the training set: a score (in the audit's measure) at
    or below ``threshold``, or below a style's own threshold where one was calibrated."""

    threshold: float
    style_thresholds: dict[int, float]  # style index → threshold (styles with reference images)
    reference: str  # what calibrated them
    reference_scores: np.ndarray
    reference_distances: np.ndarray

    def limits(self, styles: np.ndarray | None, n: int) -> np.ndarray:
        """The threshold that applies to each of ``n`` images of ``styles`` (None: overall)."""
        limit = np.full(n, self.threshold)
        if styles is not None:
            styles = np.asarray(styles)
            for s, t in self.style_thresholds.items():
                limit[styles == s] = t
        return limit


def near_copy_thresholds(train: np.ndarray, reference: np.ndarray | None = None,
                         reference_styles: np.ndarray | None = None, quantile: float = 0.05,
                         relative_k: int = RELATIVE_K, dtype: type = np.float32) -> NearCopyThresholds:
    """The audit's rule, calibrated: the ``quantile`` of held-out real images' scores
    against the training set (``reference``; without it, a leave-one-out sample of the
    training set), overall and per style of ``reference_styles``. Used by the audit and by
    the batch runner's training-copy gate alike."""
    _check(quantile, train)
    if reference is not None and len(reference):
        ref_score, ref_distance, _ = near_copy_scores(reference, train, relative_k, dtype)
        source = f"{len(ref_score)} val images → train"
    else:
        rows = (np.arange(min(MAX_LOO_QUERIES, len(train))) * len(train)) // min(MAX_LOO_QUERIES, len(train))
        ref_score, ref_distance, _ = near_copy_scores(np.asarray(train)[rows], train, relative_k, dtype, exclude=rows)
        source = f"{len(ref_score)} train images → the other train images (no val split)"
        reference_styles = None
    style_thresholds: dict[int, float] = {}
    if reference_styles is not None:
        reference_styles = np.asarray(reference_styles)
        for s in np.unique(reference_styles):
            style_thresholds[int(s)] = float(np.quantile(ref_score[reference_styles == s], quantile))
        source += ", per style"
    return NearCopyThresholds(float(np.quantile(ref_score, quantile)), style_thresholds, source, ref_score,
                              ref_distance)


def audit_near_copies(generated: np.ndarray, train: np.ndarray, reference: np.ndarray | None = None,
                      quantile: float = 0.05, flag_ratio: float = 2.0, space: str = "pixel",
                      dtype: type = np.float32, generated_styles: np.ndarray | None = None,
                      reference_styles: np.ndarray | None = None, relative_k: int = RELATIVE_K) -> NearCopyAudit:
    """Audit vectors (rows) of generated images against the training set's.

    ``reference``: vectors of held-out real images (the val split) that calibrate the
    threshold. Without them, a leave-one-out sample of the training set (each of up to
    2,000 evenly spaced training images against the *other* training images) does.
    ``generated_styles`` and ``reference_styles`` (both or neither) calibrate one
    threshold per style. ``relative_k``: the relative distance over that many nearest
    training images (0 or 1: the absolute distance). Distances are chosen in ``dtype``
    (float32 halves the cost of pixel vectors); nearest distances are reported exactly
    (see :func:`ray_gan.evaluate.neighbours.nearest_and_mean`).
    """
    _check(quantile, train)
    score, distance, index = near_copy_scores(generated, train, relative_k, dtype)
    per_style = generated_styles is not None and reference_styles is not None
    cal = near_copy_thresholds(train, reference, reference_styles if per_style else None, quantile, relative_k, dtype)
    limit = cal.limits(generated_styles if per_style else None, len(score))
    present = set(np.unique(np.asarray(generated_styles)).tolist()) if per_style else set()
    style_thresholds = {s: t for s, t in cal.style_thresholds.items() if s in present}
    source = cal.reference
    k_used = max(1, min(relative_k, len(train) - 1))
    measure = f"relative (k={k_used})" if relative_k > 1 else "absolute"
    return NearCopyAudit(space, measure, quantile, cal.threshold, style_thresholds, source, cal.reference_scores,
                         cal.reference_distances, score, distance, index, limit, flag_ratio)


def worst_pairs_png(generated: np.ndarray, train: np.ndarray, audit: NearCopyAudit, n: int = 16) -> bytes:
    """PNG of the ``n`` closest pairs, one per row: generated | its nearest training image
    (uint8 NHWC inputs; images under 64 px are enlarged to at least 64, nearest-neighbour)."""
    pick = audit.closest(n)
    if len(pick) == 0:
        raise ValueError("no generated images")
    tiles = np.stack([img for i in pick for img in (generated[i], train[audit.index[i]])])
    return encode(make_grid(tiles, cols=2, pad=4, min_tile=64))
