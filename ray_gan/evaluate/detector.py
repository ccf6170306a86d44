"""Detectability: how often a classifier trained to tell this model's images from real ones
does so on images it has not seen — a classifier two-sample test (Lopez-Paz & Oquab, ICLR
2017, "Revisiting classifier two-sample tests").

Why it sits beside FID. Feature metrics are only as good as the features. The evaluation's
default features come from a small style classifier trained on the dataset; with two or
three styles that differ in rendering (say Google's and Twitter's emoji) the classifier
needs only colour and texture statistics, and its features rate colourful blobs close to
emoji. Measured on a 2-style emoji set (docs/benchmarks.md): blob-like samples of a 4-minute
stylegan scored FID position 0.66 and coverage 0.71 — and were told apart from real images
99.8 % of the time here. A style classifier with a rotation-prediction task, or with
spatial pooling, did no better on the FID side. A detector asks the question directly and
does not depend on how many styles there are.

The test. Training: real *train* images (≤ ``per_style`` per style, evenly spaced) labelled
real, and as many freshly rendered images per style (seeds disjoint from those being scored)
labelled generated; the same small net and recipe as the style classifier
(:func:`ray_gan.evaluate.classifier.train_style_classifier`: class-balanced loss, seeded,
fixed steps). Test: the real *val* images against the scored generated images, which the
detector never saw. The result is the balanced accuracy on the test: **0.5 = chance** (the
model's images cannot be told apart by this detector), **1.0 = always told apart**. Its ends
are fixed — a generator that draws from the data distribution scores 0.5 in expectation,
since train and val are random splits of the same images — so its position needs no measured
calibration row: ``position = 2 · (1 − accuracy)`` (1 at chance, 0 when always told apart).
Per style: the balanced accuracy on that style's real and generated test images.

A small detector trained for a few hundred steps is a weak judge of a good model (it misses
subtle artefacts a larger one would find), and a strong judge of a bad one: blobs, fringes,
noise and collapsed styles are told apart at ≈ 1.0. Read it as "is anything obviously
wrong", beside FID and coverage for "how close".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ray_gan.evaluate.classifier import train_style_classifier

REAL, GENERATED = 0, 1
CHANCE = 0.5


@dataclass(frozen=True)
class Detectability:
    accuracy: float  # balanced accuracy on the held-out test (0.5 chance, 1.0 always told apart)
    real_as_real: float  # share of real test images called real
    generated_detected: float  # share of generated test images called generated
    per_style: dict[int, float]  # balanced accuracy per style
    generated_detected_per_style: dict[int, float]
    train_real: int
    train_generated: int
    test_real: int
    test_generated: int
    steps: int
    seconds: float

    @property
    def position(self) -> float:
        return position(self.accuracy)

    def style_position(self, style: int) -> float | None:
        return position(self.per_style[style]) if style in self.per_style else None


def position(accuracy: float) -> float:
    """1 at chance (0.5), 0 when always told apart (1.0); below 0 when the detector errs more
    than chance would."""
    return 2.0 * (1.0 - accuracy)


def spread(styles: np.ndarray, per_style: int) -> np.ndarray:
    """Indices of at most ``per_style`` images of each style, evenly spaced, grouped by style."""
    picks = []
    for k in np.unique(styles):
        pool = np.flatnonzero(styles == k)
        n = min(per_style, len(pool))
        picks.append(pool[(np.arange(n) * len(pool)) // n])
    return np.concatenate(picks) if picks else np.zeros(0, np.int64)


def _balanced(real_hit: np.ndarray, gen_hit: np.ndarray) -> float:
    return 0.5 * (float(real_hit.mean()) + float(gen_hit.mean()))


def detectability(real_train: np.ndarray, generated_train: np.ndarray, real_test: np.ndarray,
                  real_test_styles: np.ndarray, generated_test: np.ndarray, generated_test_styles: np.ndarray, *,
                  steps: int, seed: int = 0, device: str | torch.device = "cpu") -> Detectability:
    """Train a real-vs-generated detector on the train sets, score it on the test sets
    (uint8 NHWC images; the test sets' style indices give the per-style numbers)."""
    if not len(real_train) or not len(generated_train) or not len(real_test) or not len(generated_test):
        raise ValueError("detectability needs real and generated images for both training and test")
    t0 = time.perf_counter()
    images = np.concatenate([real_train, generated_train])
    labels = np.r_[np.full(len(real_train), REAL), np.full(len(generated_train), GENERATED)].astype(np.int64)
    fitted = train_style_classifier(images, labels, 2, steps=steps, seed=seed, device=device)
    real_hit = fitted.classifier.predict(real_test) == REAL
    gen_hit = fitted.classifier.predict(generated_test) == GENERATED
    real_test_styles, generated_test_styles = np.asarray(real_test_styles), np.asarray(generated_test_styles)
    per_style, detected = {}, {}
    for k in np.unique(np.r_[real_test_styles, generated_test_styles]):
        r, g = real_hit[real_test_styles == k], gen_hit[generated_test_styles == k]
        if len(g):
            detected[int(k)] = float(g.mean())
        if len(r) and len(g):
            per_style[int(k)] = _balanced(r, g)
    return Detectability(
        accuracy=_balanced(real_hit, gen_hit), real_as_real=float(real_hit.mean()),
        generated_detected=float(gen_hit.mean()), per_style=per_style, generated_detected_per_style=detected,
        train_real=len(real_train), train_generated=len(generated_train), test_real=len(real_test),
        test_generated=len(generated_test), steps=steps, seconds=time.perf_counter() - t0)
