"""Layers shared by more than one architecture."""

from __future__ import annotations

import torch
from torch import nn


class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation (Karras et al., 2018, "Progressive Growing of GANs"):
    appends, per group of ``group_size`` consecutive samples, the mean feature standard
    deviation as one more channel, so D can see a batch that lacks variety (e.g. every
    fake in one colour) and G is pushed to cover the data's modes. Groups are runs of
    consecutive samples, so a batch ``cat([reals, fakes])`` whose halves are multiples of
    the group size never mixes the two in a group."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = next(k for k in range(min(self.group_size, n), 0, -1) if n % k == 0)
        y = x.float().reshape(n // g, g, c * h * w)
        # Variance spelled out: torch's var over a short dimension is ~40× slower on CPU.
        y = (y - y.mean(dim=1, keepdim=True)).square().mean(dim=1)
        y = (y + 1e-8).sqrt().mean(dim=1)  # (n // g,)
        y = y.to(x.dtype).view(n // g, 1, 1, 1, 1).expand(-1, g, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)
