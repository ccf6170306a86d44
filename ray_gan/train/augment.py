"""DiffAugment (Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"), written from the paper.

The same family of random, differentiable transforms is applied to every image D sees,
real or fake, in both D's and G's steps, so D cannot overfit a small training set while
G still gets gradients through the transform. Policies:

* ``color``: per image, brightness + U(−0.5, 0.5), saturation × U(0, 2), contrast ×
  U(0.5, 1.5);
* ``translation``: shift by up to 1/8 of the image in x and y, zero padding;
* ``cutout``: zero one square of half the image side at a random position.

Images are in [-1, 1] (the paper's transforms are stated for [-1, 1] too).
"""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")


def diff_augment(x: torch.Tensor, policy: str, generator: torch.Generator | None = None) -> torch.Tensor:
    for name in [p for p in policy.split(",") if p]:
        if name == "color":
            x = _color(x, generator)
        elif name == "translation":
            x = _translation(x, 0.125, generator)
        elif name == "cutout":
            x = _cutout(x, 0.5, generator)
        else:
            raise ValueError(f"unknown DiffAugment policy {name!r}; known: {', '.join(POLICIES)}")
    return x


def _rand(n: int, x: torch.Tensor, generator) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype, generator=generator)


def _color(x: torch.Tensor, generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand(n, x, generator) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(n, x, generator) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(n, x, generator) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float, generator) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sy == 0 and sx == 0:
        return x
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device, generator=generator)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device, generator=generator)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    yy = (gy[None] + ty + sy)  # index into the zero-padded image
    xx = (gx[None] + tx + sx)
    padded = torch.nn.functional.pad(x, (sx, sx, sy, sy))
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, yy, xx].permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor, ratio: float, generator) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device, generator=generator)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    oy, ox = gy[None] - cy + ch // 2, gx[None] - cx + cw // 2  # position inside the square
    inside = (oy >= 0) & (oy < ch) & (ox >= 0) & (ox < cw)
    return x * (~inside)[:, None].to(x.dtype)
