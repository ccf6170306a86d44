"""Interpolation between two (style, seed) points: a strip PNG and an animated GIF/WebP.

With a mapping network (``stylegan``) the path is a straight line in W between the two
(truncated) latents, so it can cross styles: ``(flat, 3) → (outline, 3)`` morphs one
content from one style to another, ``(flat, 3) → (flat, 9)`` one content into another.
Without one (``dcgan``, ``vanilla``) styles are discrete labels: the path is a
spherical interpolation (slerp) of z between two seeds of one style.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ray_gan import storage
from ray_gan.generate.render import Renderer, latents_from_seeds
from ray_gan.images import encode, make_grid


@dataclass(frozen=True)
class Endpoint:
    style: str
    seed: int

    @classmethod
    def parse(cls, text: str) -> "Endpoint":
        """``STYLE:SEED``."""
        style, sep, seed = text.rpartition(":")
        if not sep or not style or not seed.isdigit():
            raise ValueError(f"expected STYLE:SEED, got {text!r}")
        return cls(style, int(seed))


def interpolate(renderer: Renderer, a: Endpoint, b: Endpoint, steps: int = 8, truncation: float = 1.0) -> np.ndarray:
    """``steps`` frames from ``a`` to ``b`` inclusive → uint8 (steps, H, W, 3)."""
    if steps < 2:
        raise ValueError("steps must be at least 2")
    sa, sb = renderer.info.style_indices([a.style, b.style])
    t = torch.linspace(0, 1, steps)[:, None]
    if renderer.styled:
        wa, wb = renderer.w([sa, sb], [a.seed, b.seed], truncation).cpu()
        return renderer.synthesize(torch.lerp(wa[None], wb[None], t))
    if sa != sb:
        raise ValueError(f"interpolating between styles needs a mapping network (arch stylegan); "
                         f"this {renderer.info.config.arch!r} model can interpolate seeds within one style")
    za, zb = latents_from_seeds([a.seed, b.seed], renderer.info.config.z_dim)
    return renderer.render_z(_slerp(za, zb, t), [sa] * steps, truncation)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def write_interpolation(frames: np.ndarray, out: str, frame_ms: int = 120) -> dict[str, str]:
    """``OUT/strip.png`` (frames left to right), ``OUT/animation.gif`` and
    ``OUT/animation.webp`` (forth and back, looping)."""
    strip = storage.join(out, "strip.png")
    storage.write_bytes(strip, encode(make_grid(frames, cols=len(frames))))
    seq = [Image.fromarray(f, "RGB") for f in list(frames) + list(frames[-2:0:-1])]
    uris = {"strip": strip}
    for fmt, ext, kw in (("GIF", "gif", {}), ("WEBP", "webp", {"lossless": True})):
        buf = io.BytesIO()
        seq[0].save(buf, format=fmt, save_all=True, append_images=seq[1:], duration=frame_ms, loop=0, **kw)
        uris[ext] = storage.join(out, f"animation.{ext}")
        storage.write_bytes(uris[ext], buf.getvalue())
    return uris
