"""Memorisation audit: how many generated images are near-copies of training images?

For every generated image, the distance to its nearest TRAINING image. What counts as
"near" is calibrated on real data: the threshold is a low quantile (default the 5th
percentile) of the distances from each held-out VAL image to its nearest TRAIN image,
i.e. "closer to a training image than all but 5% of genuinely new images are". A model
that generalises puts about that share (``quantile``) of its samples under the
threshold; one that replays its training set puts nearly all of them there.

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

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ray_gan.evaluate.neighbours import nearest

PIXEL_SIZE = 32
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
    quantile: float
    threshold: float  # overall threshold: generated images at or below their threshold are near-copies
    style_thresholds: dict[int, float]  # per style, where style labels were given
    reference: str  # what calibrated the thresholds
    reference_distances: np.ndarray  # real → nearest train, (n_ref,)
    distance: np.ndarray  # generated → nearest train, (n_gen,)
    index: np.ndarray  # index of that nearest train image, (n_gen,)
    limit: np.ndarray  # the threshold that applies to each generated image, (n_gen,)
    flag_ratio: float

    @property
    def near_copy(self) -> np.ndarray:
        return self.distance <= self.limit

    @property
    def count(self) -> int:
        return int(self.near_copy.sum())

    @property
    def share(self) -> float:
        return float(self.near_copy.mean()) if len(self.distance) else 0.0

    @property
    def flagged(self) -> bool:
        n, q = len(self.distance), self.quantile
        beyond_noise = self.count > n * q + 3.0 * math.sqrt(n * q * (1.0 - q))
        return bool(self.share > self.flag_ratio * q and beyond_noise)

    def closest(self, n: int) -> np.ndarray:
        """Indices of the ``n`` generated images closest to the training set, closest first."""
        return np.argsort(self.distance, kind="stable")[:n]


def audit_near_copies(generated: np.ndarray, train: np.ndarray, reference: np.ndarray | None = None,
                      quantile: float = 0.05, flag_ratio: float = 2.0, space: str = "pixel",
                      dtype: type = np.float32, generated_styles: np.ndarray | None = None,
                      reference_styles: np.ndarray | None = None) -> NearCopyAudit:
    """Audit vectors (rows) of generated images against the training set's.

    ``reference``: vectors of held-out real images (the val split) that calibrate the
    threshold. Without them, a leave-one-out sample of the training set (each of up to
    2,000 evenly spaced training images to its nearest *other* training image) does.
    ``generated_styles`` and ``reference_styles`` (both or neither) calibrate one
    threshold per style. Distances are chosen in ``dtype`` (float32 halves the cost of
    pixel vectors) and reported exactly (see :func:`ray_gan.evaluate.neighbours.nearest`).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if len(train) < 2:
        raise ValueError("the memorisation audit needs at least two training images")
    distance, index = nearest(generated, train, dtype)
    if reference is not None and len(reference):
        ref = nearest(reference, train, dtype)[0]
        source = f"{len(ref)} val images → nearest train image"
    else:
        rows = (np.arange(min(MAX_LOO_QUERIES, len(train))) * len(train)) // min(MAX_LOO_QUERIES, len(train))
        ref = nearest(np.asarray(train)[rows], train, dtype, exclude=rows)[0]
        source = f"{len(ref)} train images → nearest other train image (no val split)"
        reference_styles = None
    threshold = float(np.quantile(ref, quantile))
    limit = np.full(len(distance), threshold)
    style_thresholds: dict[int, float] = {}
    if generated_styles is not None and reference_styles is not None:
        generated_styles, reference_styles = np.asarray(generated_styles), np.asarray(reference_styles)
        for s in np.unique(generated_styles):
            mine = ref[reference_styles == s]
            if len(mine):
                style_thresholds[int(s)] = float(np.quantile(mine, quantile))
                limit[generated_styles == s] = style_thresholds[int(s)]
        source += ", per style"
    return NearCopyAudit(space, quantile, threshold, style_thresholds, source, ref, distance, index, limit,
                         flag_ratio)


def worst_pairs_png(generated: np.ndarray, train: np.ndarray, audit: NearCopyAudit, n: int = 16) -> bytes:
    """PNG of the ``n`` closest pairs, one per row: generated | its nearest training image
    (uint8 NHWC inputs; small images are enlarged ×2 or more, nearest-neighbour)."""
    from ray_gan.generate.render import make_grid

    pick = audit.closest(n)
    if len(pick) == 0:
        raise ValueError("no generated images")
    tiles = np.stack([img for i in pick for img in (generated[i], train[audit.index[i]])])
    scale = max(1, 64 // tiles.shape[1])
    tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    buf = io.BytesIO()
    make_grid(tiles, cols=2, pad=4).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
