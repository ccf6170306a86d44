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
* the generator runs on row counts that are multiples of :data:`RENDER_ALIGN` (16; the
  last micro-batch padded with copies of a row), in micro-batches of at most
  ``render_batch`` rows (:data:`RENDER_BATCH` unless a caller such as a Serve replica
  asks for larger). A row's output does not depend on the other rows of its
  micro-batch, nor on the micro-batch's size among 16, 32, …, ``render_batch`` (a
  single row would take other kernels: hence the padding) — tests/unit/test_generate_render.py
  proves it on the CPU at every size used, tests/gpu on a GPU. So an image's bytes do not
  depend on how many images were asked for together: a batch job, a ``generate`` call
  and an HTTP request give the same bytes for the same (model, style, seed, truncation,
  mixing, edits) on the same :func:`device_fingerprint` (all encode with
  :func:`ray_gan.images.encode`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ray_gan.checkpoint import ModelInfo, load_generator
from ray_gan.config import MixSpec
from ray_gan.generate.forward import Forward
from ray_gan.images import to_uint8

RENDER_ALIGN = 16  # rows of a forward pass are a multiple of this
RENDER_BATCH = 16  # default micro-batch (rows)


def device_fingerprint(device: torch.device | str) -> dict:
    """What an image's bytes may depend on besides its inputs: the device kind and model,
    the CPU's kernel ISA (AVX2, AVX-512, …), and the torch and cuDNN versions."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_model()
    return {"kind": device.type, "name": name, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__,
            "cudnn": str(torch.backends.cudnn.version()) if device.type == "cuda" else None}


def _cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def latents_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    out = torch.empty(len(seeds), z_dim)
    for i, s in enumerate(seeds):
        g = torch.Generator().manual_seed(int(s))
        out[i] = torch.randn(z_dim, generator=g)
    return out


class Renderer:
    """A loaded EMA generator plus the deterministic rendering rules above."""

    def __init__(self, model_uri: str, device: str | None = None, step: int | None = None,
                 weights_sha256: str | None = None, render_batch: int = RENDER_BATCH, traced: bool = False) -> None:
        """``step`` and ``weights_sha256`` pin the checkpoint (default: the latest);
        ``render_batch``: rows per forward pass, a multiple of :data:`RENDER_ALIGN`;
        ``traced``: run the forward passes traced, without the GIL (same bytes; for
        workers that render beside other Python threads, see :mod:`ray_gan.generate.forward`)."""
        if render_batch < RENDER_ALIGN or render_batch % RENDER_ALIGN:
            raise ValueError(f"render_batch must be a positive multiple of {RENDER_ALIGN}, not {render_batch}")
        self.render_batch = render_batch
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        self.G, self.info = load_generator(model_uri, self.device, step, weights_sha256)
        self.forward = Forward(self.G, self.device, traced=traced)
        self._directions = None
        self.fingerprint = device_fingerprint(self.device)

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
        pad = (-n) % RENDER_ALIGN
        if pad:
            rows = [torch.cat([r, r[:1].expand(pad, *r.shape[1:])]) for r in rows]
        out = []
        for i in range(0, n + pad, self.render_batch):
            part = [r[i : i + self.render_batch].to(self.device) for r in rows]
            out.append(to_uint8(self._forward(part, mix, edit_w)))
        return np.concatenate(out)[:n]

    def _forward(self, part: list[torch.Tensor], mix: MixSpec | None, edit_w: torch.Tensor | None) -> torch.Tensor:
        z, s, psi = part[:3]
        if not self.styled:
            return self.forward.direct(z * psi[:, None], s)
        ws = self._w(z, s, psi, edit_w)[:, None].repeat(1, self.G.num_ws, 1)
        if mix is not None:
            ws[:, self.G.layer_range(mix.layers)] = self._w(part[3], part[4], psi, edit_w)[:, None]
        return self.forward.synthesis(ws)

    def w(self, styles: Sequence[int], seeds: Sequence[int], truncation: float = 1.0) -> torch.Tensor:
        """W latents (stylegan), truncated; for interpolation and projection."""
        z = latents_from_seeds(seeds, self.info.config.z_dim).to(self.device)
        s = torch.as_tensor(list(styles), dtype=torch.long, device=self.device)
        with torch.no_grad():
            return self._w(z, s, torch.full((len(seeds),), float(truncation), device=self.device), None)

    def _w(self, z, s, psi, edit_w):
        w = self.forward.styles(z, s, psi)
        return w if edit_w is None else w + edit_w.to(w)

    @torch.no_grad()
    def synthesize(self, w: torch.Tensor) -> np.ndarray:
        """W latents (N, w_dim) → uint8 images, in fixed micro-batches."""
        n, b = len(w), self.render_batch
        pad = (-n) % RENDER_ALIGN
        w = torch.cat([w, w[:1].expand(pad, -1)]) if pad else w
        out = [to_uint8(self.forward.synthesis(w[i : i + b, None].to(self.device).repeat(1, self.G.num_ws, 1)))
               for i in range(0, len(w), b)]
        return np.concatenate(out)[:n]
