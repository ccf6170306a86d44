"""``ray-gan project MODEL IMAGE``: invert a real image into the latent space and re-render
it in every style.

The search is in z (the space a seed's latent lives in, and which every architecture
shares): for each style, ``restarts`` random starting latents are optimised together
with Adam to minimise the pixel error at full and half resolution (the half-resolution
term favours the right overall shape over pixel detail), plus a small prior term that
keeps ``‖z‖²/dim`` near 1 (where the generator was trained). The style whose best
candidate fits best is the image's inferred style — unless the caller names it.
Re-rendering the found z in the other styles transfers the content across styles, as a
shared seed does.

``stylegan`` then refines the fit in W (StyleGAN2, Karras et al. 2020, §5, projects into
W rather than z for this reason: W reaches images z does not): an offset ``d`` is added to
``w = mapping(z, style)`` and optimised on the same error, in units of the style's
spread of w (per coordinate) and held near 0 by a small penalty. Every style is rendered from its
own ``mapping(z, other) + d`` — the offset moves W the way an edit direction does, in
every style alike. The offset is kept only where it lowers the reconstruction error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ray_gan import storage
from ray_gan.generate.render import Renderer
from ray_gan.images import encode, from_uint8, make_grid, square_resize, to_rgb


@dataclass(frozen=True)
class Projection:
    style: str
    z: list[float]
    w_offset: list[float] | None  # stylegan: the W refinement added in every style (None: not refined)
    mse: float
    psnr_db: float
    per_style_mse: dict[str, float]  # best fit per candidate style (lower = more likely)
    reconstruction: np.ndarray  # uint8 (H, W, 3)
    restyled: dict[str, np.ndarray]  # style → uint8 (H, W, 3)


def load_target(data: bytes, resolution: int) -> np.ndarray:
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    return np.asarray(square_resize(to_rgb(img), resolution), dtype=np.uint8)


def project(renderer: Renderer, target: np.ndarray, style: str | None = None, steps: int = 300,
            restarts: int = 8, lr: float = 0.05, seed: int = 0, refine_steps: int = 100) -> Projection:
    """``target``: uint8 (R, R, 3) at the model's resolution. ``refine_steps``: the W
    refinement's steps (stylegan; 0 = z only)."""
    info, G, device = renderer.info, renderer.G, renderer.device
    r = info.config.resolution
    if target.shape != (r, r, 3):
        raise ValueError(f"target must be {r}×{r} RGB, got {target.shape}")
    candidates = info.style_indices([style] if style else None)
    x = from_uint8(np.asarray(target)[None], device, info.config.channels)
    s = torch.tensor(candidates, device=device).repeat_interleave(restarts)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(len(s), info.config.z_dim, generator=gen).to(device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    G.requires_grad_(False)
    x_half = F.avg_pool2d(x, 2)
    for i in range(steps):
        _cosine_lr(opt, lr, i, steps)
        err = _errors(G(z, s), x, x_half)
        prior = (z.square().mean(dim=1) - 1).square()
        opt.zero_grad(set_to_none=True)
        (err + 1e-3 * prior).sum().backward()
        opt.step()
    with torch.no_grad():
        err = _errors(G(z, s), x, x_half).view(len(candidates), restarts)
    best_per_style, arg = err.min(dim=1)
    k = int(best_per_style.argmin())
    z_best = z.detach()[k * restarts + int(arg[k])].cpu()
    style_idx = candidates[k]
    everyone = list(range(len(info.styles)))
    images = renderer.render_z(z_best[None].expand(len(everyone), -1), everyone)
    mse = _mse(images[style_idx], target)
    offset = None
    if renderer.styled and refine_steps > 0:
        d = _refine_in_w(G, z_best.to(device), style_idx, x, x_half, refine_steps, lr, seed)
        with torch.no_grad():
            ws = G.mapping(z_best[None].expand(len(everyone), -1).to(device),
                           torch.tensor(everyone, device=device)) + d
        refined = renderer.synthesize(ws)
        refined_mse = _mse(refined[style_idx], target)
        if refined_mse < mse:
            images, mse, offset = refined, refined_mse, d[0].cpu().tolist()
    recon = images[style_idx]
    return Projection(
        style=info.styles[style_idx], z=z_best.tolist(), w_offset=offset, mse=mse,
        psnr_db=float(10 * np.log10(255.0**2 / max(mse, 1e-10))),
        per_style_mse={info.styles[c]: float(v) for c, v in zip(candidates, best_per_style.tolist())},
        reconstruction=recon, restyled={info.styles[i]: images[i] for i in everyone},
    )


def _refine_in_w(G, z: torch.Tensor, style: int, x: torch.Tensor, x_half: torch.Tensor, steps: int, lr: float,
                 seed: int) -> torch.Tensor:
    """The W offset (1, w_dim) that best fits ``x`` from ``mapping(z, style)``."""
    s = torch.tensor([style], device=x.device)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        w0 = G.mapping(z[None], s)
        spread = G.mapping(torch.randn(256, z.shape[0], generator=gen).to(x.device), s.expand(256))
        sigma = float((spread - spread.mean(dim=0)).square().mean().sqrt())  # per coordinate
    u = torch.zeros_like(w0, requires_grad=True)  # the offset in units of sigma
    opt = torch.optim.Adam([u], lr=lr)
    for i in range(steps):
        _cosine_lr(opt, lr, i, steps)
        w = w0 + sigma * u
        err = _errors(G.synthesis(w[:, None].expand(-1, G.num_ws, -1), noise="const"), x, x_half)
        opt.zero_grad(set_to_none=True)
        (err + 1e-3 * u.square().mean()).sum().backward()
        opt.step()
    return (sigma * u).detach()


def _cosine_lr(opt: torch.optim.Optimizer, lr: float, i: int, steps: int) -> None:
    """Cosine decay from ``lr`` to 0: big moves first, fine fit last."""
    for group in opt.param_groups:
        group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * i / steps))


def _mse(image: np.ndarray, target: np.ndarray) -> float:
    return float(((image.astype(np.float64) - target) ** 2).mean())


def _errors(fake: torch.Tensor, x: torch.Tensor, x_half: torch.Tensor) -> torch.Tensor:
    full = (fake - x).square().flatten(1).mean(dim=1)
    half = (F.avg_pool2d(fake, 2) - x_half).square().flatten(1).mean(dim=1)
    return full + half


def write_projection(p: Projection, target: np.ndarray, out: str) -> dict[str, str]:
    """``OUT/projection.json``, ``OUT/reconstruction.png`` and ``OUT/styles.png``
    (target | reconstruction | the content in every style, in the model's style order)."""
    rec = storage.join(out, "reconstruction.png")
    storage.write_bytes(rec, encode(p.reconstruction))
    grid = storage.join(out, "styles.png")
    row = np.stack([target, p.reconstruction, *p.restyled.values()])
    storage.write_bytes(grid, encode(make_grid(row, cols=len(row))))
    doc = {"style": p.style, "mse": p.mse, "psnr_db": p.psnr_db, "per_style_mse": p.per_style_mse,
           "z": p.z, "w_offset": p.w_offset, "columns": ["target", "reconstruction", *p.restyled]}
    js = storage.join(out, "projection.json")
    storage.write_json(js, doc)
    return {"json": js, "reconstruction": rec, "styles": grid}
