"""Deterministic rendering, with the style controls.

An image is a pure function of (weights, style, seed, truncation, mixing, edits):

* the latent of seed ``s`` is ``randn(z_dim)`` from a ``torch.Generator`` seeded with
  ``s``, on the CPU, whatever device renders it, so the same seed gives the same latent
  in every style (a seed is a "content" shared across styles);
* truncation ``psi`` trades diversity for typicality (``psi = 1``: none). With a mapping
  network (``stylegan``) it acts in W, towards *the image's style's* mean latent:
  ``w' = w_avg[style] + psi·(w − w_avg[style])``, so it never pulls an image out of its
  style; without one (``dcgan``, ``vanilla``) it scales z towards the prior's mean, 0.
  It can differ per image (per style, in a batch job);
* style mixing (``stylegan``): the style inputs of the layers in ``mix.layers``
  (``coarse``, ``fine`` or ``A:B``) come from another latent — another seed and/or
  another style — the rest from the image's own;
* edits: named directions in W found by PCA (:mod:`ray_gan.generate.directions`),
  added with strengths in standard deviations;
* the generator always runs in micro-batches of exactly :data:`RENDER_BATCH` rows
  (the last padded), so an image's bytes do not depend on how many images were asked
  for together — a batch job, a ``generate`` call and an HTTP request give the same
  bytes for the same (model, style, seed, truncation) on the same kind of device (all
  of them encode with :func:`ray_gan.images.encode`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ray_gan.checkpoint import ModelInfo, load_generator
from ray_gan.config import MixSpec
from ray_gan.images import to_uint8

RENDER_BATCH = 16


def latents_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    out = torch.empty(len(seeds), z_dim)
    for i, s in enumerate(seeds):
        g = torch.Generator().manual_seed(int(s))
        out[i] = torch.randn(z_dim, generator=g)
    return out


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
        self._directions = None

    @property
    def model_info(self) -> ModelInfo:
        return self.info

    @property
    def styled(self) -> bool:
        """Whether the model has a mapping network (mixing, W truncation, edits)."""
        return hasattr(self.G, "mapping")

    def directions(self):
        """The model's edit directions (:class:`~ray_gan.generate.directions.Directions`)."""
        if self._directions is None:
            from ray_gan.generate.directions import load_directions

            self._directions = load_directions(self.info)
        return self._directions

    @torch.no_grad()
    def render(self, styles: Sequence[int], seeds: Sequence[int], truncation: float | Sequence[float] = 1.0,
               mix: MixSpec | None = None, edits: dict[str, float] | None = None) -> np.ndarray:
        """Styles and seeds pairwise → uint8 (N, H, W, 3). ``truncation``: one value or
        one per image. ``mix.style`` is a style *name*."""
        if len(styles) != len(seeds):
            raise ValueError("styles and seeds must have the same length")
        n = len(seeds)
        if n == 0:
            r = self.info.config.resolution
            return np.zeros((0, r, r, 3), np.uint8)
        psi = torch.full((n,), float(truncation)) if isinstance(truncation, (int, float)) else \
            torch.tensor([float(t) for t in truncation])
        if len(psi) != n:
            raise ValueError("truncation must be one value or one per image")
        if (mix is not None or edits) and not self.styled:
            raise ValueError(f"style mixing and edit directions need a mapping network (arch stylegan); "
                             f"this model is {self.info.config.arch!r}")
        z = latents_from_seeds(seeds, self.info.config.z_dim)
        s = torch.as_tensor(list(styles), dtype=torch.long)
        rows = [z, s, psi]
        if mix is not None:
            mix_style = self.info.style_indices([mix.style])[0] if mix.style else None
            mix_seeds = [mix.seed if mix.seed is not None else int(k) + mix.seed_offset for k in seeds]
            rows += [latents_from_seeds(mix_seeds, self.info.config.z_dim),
                     s.clone() if mix_style is None else torch.full((n,), mix_style, dtype=torch.long)]
        edit_w = self.directions().offset(edits) if edits else None
        return self._render_rows(rows, mix, edit_w)

    @torch.no_grad()
    def render_z(self, z: torch.Tensor, styles: Sequence[int], truncation: float = 1.0) -> np.ndarray:
        """Explicit latents (N, z_dim) → uint8 images (interpolation, projection)."""
        n = len(z)
        return self._render_rows([z.float().cpu(), torch.as_tensor(list(styles), dtype=torch.long),
                                  torch.full((n,), float(truncation))], None, None)

    def _render_rows(self, rows: list[torch.Tensor], mix: MixSpec | None, edit_w: torch.Tensor | None) -> np.ndarray:
        n = len(rows[0])
        pad = (-n) % RENDER_BATCH
        if pad:
            rows = [torch.cat([r, r[:1].expand(pad, *r.shape[1:])]) for r in rows]
        out = []
        for i in range(0, n + pad, RENDER_BATCH):
            part = [r[i : i + RENDER_BATCH].to(self.device) for r in rows]
            out.append(to_uint8(self._forward(part, mix, edit_w)))
        return np.concatenate(out)[:n]

    def _forward(self, part: list[torch.Tensor], mix: MixSpec | None, edit_w: torch.Tensor | None) -> torch.Tensor:
        z, s, psi = part[:3]
        if not self.styled:
            return self.G(z * psi[:, None], s)
        G = self.G
        w = self._w(z, s, psi, edit_w)
        ws = w[:, None].repeat(1, G.num_ws, 1)
        if mix is not None:
            idx = G.layer_range(mix.layers)
            ws[:, idx] = self._w(part[3], part[4], psi, edit_w)[:, None]
        return G.synthesis(ws, noise="const")

    def w(self, styles: Sequence[int], seeds: Sequence[int], truncation: float = 1.0) -> torch.Tensor:
        """W latents (stylegan), truncated; for interpolation and projection."""
        z = latents_from_seeds(seeds, self.info.config.z_dim).to(self.device)
        s = torch.as_tensor(list(styles), dtype=torch.long, device=self.device)
        with torch.no_grad():
            return self._w(z, s, torch.full((len(seeds),), float(truncation), device=self.device), None)

    def _w(self, z, s, psi, edit_w):
        w = self.G.truncate(self.G.mapping(z, s), s, psi[:, None])
        return w if edit_w is None else w + edit_w.to(w)

    @torch.no_grad()
    def synthesize(self, w: torch.Tensor) -> np.ndarray:
        """W latents (N, w_dim) → uint8 images, in fixed micro-batches."""
        n = len(w)
        pad = (-n) % RENDER_BATCH
        w = torch.cat([w, w[:1].expand(pad, -1)]) if pad else w
        out = [to_uint8(self.G.synthesis(w[i : i + RENDER_BATCH, None].to(self.device).repeat(1, self.G.num_ws, 1),
                                         noise="const")) for i in range(0, len(w), RENDER_BATCH)]
        return np.concatenate(out)[:n]
