"""Deterministic rendering.

An image is a pure function of (weights, style, seed, truncation):

* the latent of seed ``s`` is ``randn(z_dim)`` from a ``torch.Generator`` seeded with
  ``s``, on the CPU, whatever device renders it, so the same seed gives the same latent
  in every style (a seed is a "content" shared across styles);
* truncation ``psi`` moves the latent towards the mean latent (zero for a Gaussian
  prior): ``z' = psi * z``; ``psi = 1`` is no truncation, smaller values trade
  diversity for typicality;
* the generator always runs in micro-batches of exactly :data:`RENDER_BATCH` rows
  (the last padded), so an image's bytes do not depend on how many images were asked
  for together — a batch job, a ``generate`` call and an HTTP request give the same
  bytes for the same (model, style, seed, truncation) on the same kind of device.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ray_gan.checkpoint import ModelInfo, load_generator

RENDER_BATCH = 16


def latents_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    out = torch.empty(len(seeds), z_dim)
    for i, s in enumerate(seeds):
        g = torch.Generator().manual_seed(int(s))
        out[i] = torch.randn(z_dim, generator=g)
    return out


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] → uint8 (N, H, W, 3)."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def encode_image(img: np.ndarray, fmt: str = "png") -> bytes:
    """uint8 (H, W, 3) → encoded bytes, with fixed encoder settings (deterministic)."""
    pil = Image.fromarray(img, "RGB")
    buf = io.BytesIO()
    if fmt == "png":
        pil.save(buf, format="PNG", compress_level=6)
    elif fmt == "webp":
        pil.save(buf, format="WEBP", lossless=True, quality=100, method=4)
    elif fmt == "jpeg":
        pil.save(buf, format="JPEG", quality=95, subsampling=0)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


def make_grid(images: np.ndarray, cols: int, pad: int = 2) -> Image.Image:
    """uint8 (N, H, W, 3) → one PIL image, row-major, white padding."""
    n, h, w, _ = images.shape
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return Image.fromarray(grid, "RGB")


class Renderer:
    """A loaded EMA generator plus the deterministic rendering rules above."""

    def __init__(self, model_uri: str, device: str | None = None) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        self.G, self.info = load_generator(model_uri, self.device)

    @property
    def model_info(self) -> ModelInfo:
        return self.info

    @torch.no_grad()
    def render(self, styles: Sequence[int], seeds: Sequence[int], truncation: float = 1.0) -> np.ndarray:
        """Styles and seeds pairwise → uint8 (N, H, W, 3)."""
        if len(styles) != len(seeds):
            raise ValueError("styles and seeds must have the same length")
        n = len(seeds)
        if n == 0:
            r = self.info.config.resolution
            return np.zeros((0, r, r, 3), np.uint8)
        z = latents_from_seeds(seeds, self.info.config.z_dim) * float(truncation)
        s = torch.as_tensor(list(styles), dtype=torch.long)
        pad = (-n) % RENDER_BATCH
        if pad:
            z = torch.cat([z, z[:1].expand(pad, -1)])
            s = torch.cat([s, s[:1].expand(pad)])
        out = []
        for i in range(0, len(z), RENDER_BATCH):
            x = self.G(z[i : i + RENDER_BATCH].to(self.device), s[i : i + RENDER_BATCH].to(self.device))
            out.append(to_uint8(x))
        return np.concatenate(out)[:n]
