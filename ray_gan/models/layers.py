"""Layers shared by more than one architecture."""

from __future__ import annotations

import torch
from torch import nn


class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation (Karras et al., 2018, "Progressive Growing of GANs"):
    appends, per group of ``group_size`` samples, the mean feature standard deviation
    as one more channel, so D can see a batch that lacks variety (e.g. every fake in
    one colour) and G is pushed to cover the data's modes. Call D on reals and fakes
    separately so a group never mixes the two."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = next(k for k in range(min(self.group_size, n), 0, -1) if n % k == 0)
        y = x.float().reshape(g, n // g, c * h * w)  # one contiguous copy: var over dim 0 is then fast
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=1)  # (n // g,)
        y = y.to(x.dtype).view(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)
