"""Styles of unequal size: how much each style counts in the game, and how D fares on each.

A brand's own data is never balanced: one style may have 7× the images of another. The
minimax game is an expectation over the training data, so by default a style counts in
proportion to its size, and a small style gets few of D's and G's gradient signals. With
``style_balance``, the game is played over a *target* style distribution instead,

* ``none``: the data's, p(s) = n_s / N (every image counts once);
* ``sqrt``: p(s) ∝ √n_s (the square-root sampling of long-tailed recognition,
  Mahajan et al. 2018 §3.2: a middle way between the data and uniform);
* ``uniform``: p(s) = 1 / S, every style as much as any other,

by importance weighting: every term of a sample of style s — D's real and fake terms,
G's term, the style head's cross-entropy — is multiplied by ``w_s = p(s) / (n_s / N)``.
Fakes take the labels of the step's reals, so their styles follow the same rule. The
expectation of ``w`` over the data is 1: the losses keep their scale, and ``none`` is the
unweighted game exactly. Weighting rather than resampling keeps Ray Data's streaming
shards and the in-memory epochs as they are, and sees every image.

:class:`StyleTally` counts D's per-style accuracy (reals above 0, fakes below 0) during
training, so that a starving style shows in the training log, not only in evaluation:
D telling one style's fakes apart far more easily than the others' is what a style the
generator has not learnt looks like.
"""

from __future__ import annotations

import math
from typing import Sequence, get_args

import torch

from ray_gan.config import StyleBalance

BALANCES = get_args(StyleBalance)


def style_weights(counts: Sequence[int], balance: StyleBalance) -> list[float]:
    """Per-style loss weights ``p_target(s) / p_data(s)`` for the training images per style."""
    if balance not in BALANCES:
        raise ValueError(f"unknown style balance {balance!r}; use one of {', '.join(BALANCES)}")
    n = [int(c) for c in counts]
    if balance == "none":
        return [1.0] * len(n)
    total = sum(n)
    if total <= 0:
        raise ValueError("the dataset records no per-style training counts to balance styles by")
    mass = [math.sqrt(c) if balance == "sqrt" else 1.0 for c in n]
    mass = [m if c > 0 else 0.0 for m, c in zip(mass, n)]  # a style without images has no target mass
    z = sum(mass)
    return [(m / z) / (c / total) if c > 0 else 0.0 for m, c in zip(mass, n)]


class StyleTally:
    """D's right calls per style since the last :meth:`take`, kept on the device (no host
    sync per step): rows real-correct, fake-correct and D outputs, one column per style."""

    def __init__(self, num_styles: int, device: torch.device | str) -> None:
        self.counts = torch.zeros(3, max(num_styles, 1), dtype=torch.float64, device=device)

    @torch.no_grad()
    def add(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, styles: torch.Tensor) -> None:
        """One step's logits (one per D output; the fakes take the reals' styles) and each output's style."""
        self.counts[0].index_add_(0, styles, (real_logits > 0).to(self.counts.dtype))
        self.counts[1].index_add_(0, styles, (fake_logits < 0).to(self.counts.dtype))
        self.counts[2].index_add_(0, styles, torch.ones_like(styles, dtype=self.counts.dtype))

    def take(self) -> torch.Tensor:
        """The counts so far (then reset); all-reduce them to sum over workers."""
        out = self.counts.clone()
        self.counts.zero_()
        return out


def accuracy_by_style(counts: torch.Tensor, styles: Sequence[str]) -> dict[str, float]:
    """``{style: D's accuracy on its reals and fakes}`` from summed tallies; styles D
    never saw in the period are left out."""
    real, fake, n = counts.double().cpu().tolist()
    return {s: (real[i] + fake[i]) / (2 * n[i]) for i, s in enumerate(styles) if i < len(n) and n[i] > 0}


def format_accuracy(acc: dict[str, float], limit: int = 12) -> str:
    """``D acc by style: flat 0.62, stripes 0.97`` (the first ``limit`` styles)."""
    items = list(acc.items())
    text = ", ".join(f"{s} {a:.2f}" for s, a in items[:limit])
    return "D acc by style: " + text + (f", … ({len(items) - limit} more)" if len(items) > limit else "")
