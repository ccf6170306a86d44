"""Calibration rows: where a model sits between what real images score (the ceiling) and what
known failures score (the floors), in the same feature space, against the same real images,
at the same sample sizes — so that "FID 27" means something.

* **ceiling** — real *train* images, as many per style as the generated set: the best a
  model can do (a perfect generator draws from the data distribution);
* **floor: noise** — uniform random pixels;
* **floor: blurred** — the same train images area-downsampled to 4×4 and back: colours
  kept, every shape gone (a model that learnt the palette and nothing else).

Every headline metric then gets a **position**: 0 at the more flattering floor, 1 at the
ceiling (it can leave [0, 1]). Precision, recall, coverage and style accuracy are shares,
placed linearly; FID spans orders of magnitude (the ceiling's is near 0, a floor's in the
tens), so it is placed on a log scale — halving FID is the same step anywhere; on a linear
scale a model 400 times the ceiling's FID sat at 0.64. KID (an unbiased estimate that can
be negative) is reported beside them without a position. FID and KID are biased by sample
size; all rows here use the same sizes, so their positions compare — numbers from reports
at other sizes do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ray_gan.evaluate import metrics

BLUR_SIZE = 4
# headline metric → how it is placed: "share" (higher is better, linear) or "distance"
# (lower is better, log scale)
HEADLINE = {"fid": "distance", "precision": "share", "recall": "share", "coverage": "share",
            "intra_fid_mean": "distance", "style_accuracy": "share"}


@dataclass
class Scores:
    """The headline metrics of one image set against the real images."""

    fid: float
    kid: float
    kid_std: float
    precision: float | None
    recall: float | None
    density: float | None
    coverage: float | None
    intra_fid: dict[int, float | None]  # per style
    style_accuracy: float | None
    style_accuracy_per_style: dict[int, float | None] = field(default_factory=dict)
    kid_detail: metrics.KID | None = None
    coverage_per_style: dict[int, float | None] = field(default_factory=dict)
    recall_per_style: dict[int, float | None] = field(default_factory=dict)

    @property
    def intra_fid_mean(self) -> float | None:
        v = [x for x in self.intra_fid.values() if x is not None]
        return float(np.mean(v)) if v else None

    def get(self, name: str) -> float | None:
        return self.intra_fid_mean if name == "intra_fid_mean" else getattr(self, name)


def score(f_real: np.ndarray, real_styles: np.ndarray, f_set: np.ndarray, set_styles: np.ndarray,
          predicted: np.ndarray | None, *, kid_subsets: int, kid_subset_size: int, pr_k: int, dc_k: int,
          seed: int) -> Scores:
    """The one place the headline metrics are computed: for the model and for every
    calibration row alike (and so for ``bench/quality.py``, which calls the evaluation)."""
    kid = metrics.kid(f_real, f_set, kid_subsets, kid_subset_size, seed)
    pr = metrics.precision_recall(f_real, f_set, pr_k) if len(f_real) > pr_k else None
    dc = metrics.density_coverage(f_real, f_set, dc_k) if len(f_real) > dc_k else None
    intra: dict[int, float | None] = {}
    acc: dict[int, float | None] = {}
    cov: dict[int, float | None] = {}
    rec: dict[int, float | None] = {}
    for k in np.unique(real_styles):
        r, g = f_real[real_styles == k], f_set[set_styles == k]
        intra[int(k)] = metrics.fid(r, g) if len(r) >= 2 and len(g) >= 2 else None
        cov[int(k)] = metrics.density_coverage(r, g, dc_k).coverage if len(r) > dc_k and len(g) else None
        # a style's recall: its real images inside its own generated images' manifold (a
        # collapsed style scores ≈ 0 however good the other styles are)
        rec[int(k)] = metrics.precision_recall(r, g, pr_k).recall if len(r) > pr_k and len(g) > pr_k else None
        if predicted is not None:
            hit = predicted[set_styles == k] == k
            acc[int(k)] = float(hit.mean()) if len(hit) else None
    overall = float((predicted == set_styles).mean()) if predicted is not None and len(set_styles) else None
    return Scores(metrics.fid(f_real, f_set), kid.mean, kid.std, pr.precision if pr else None,
                  pr.recall if pr else None, dc.density if dc else None, dc.coverage if dc else None, intra,
                  overall, acc, kid, cov, rec)


def matched(images: np.ndarray, styles: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As many images of each style as ``want`` holds (evenly spaced over the style's
    images; repeated if there are fewer), grouped like ``want``."""
    picks: list[int] = []
    for k in np.unique(want):
        pool = np.flatnonzero(styles == k)
        n = int((want == k).sum())
        if len(pool) == 0:
            raise ValueError(f"no real images of style {k} to calibrate with")
        picks += pool[(np.arange(n) * len(pool)) // n if n <= len(pool) else np.arange(n) % len(pool)].tolist()
    idx = np.asarray(picks, np.int64)
    return images[idx], styles[idx]


def noise(like: np.ndarray, seed: int) -> np.ndarray:
    """Uniform random pixels, shaped like ``like``."""
    return np.random.default_rng(seed).integers(0, 256, like.shape, dtype=np.uint8)


def blurred(images: np.ndarray, size: int = BLUR_SIZE) -> np.ndarray:
    """Area-downsampled to ``size``×``size`` and bilinearly back: colours, no shapes."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    small = F.interpolate(x, size=(size, size), mode="area")
    back = F.interpolate(small, size=images.shape[1:3], mode="bilinear", align_corners=False)
    return back.round().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def position(value: float | None, ceiling: float | None, floors: list[float | None], kind: str) -> float | None:
    """0 at the more flattering floor, 1 at the ceiling (None where undefined). ``kind``:
    "share" (higher is better, linear) or "distance" (lower is better, log scale)."""
    floors = [f for f in floors if f is not None]
    if value is None or ceiling is None or not floors:
        return None
    if kind == "distance":
        floor = min(floors)
        if min(value, ceiling, floor) <= 0:
            return None
        value, ceiling, floor = np.log(value), np.log(ceiling), np.log(floor)
    else:
        floor = max(floors)
    if abs(ceiling - floor) < 1e-12:
        return None
    return float((value - floor) / (ceiling - floor))
