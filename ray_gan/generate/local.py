"""``ray-gan generate``: a few images in one process (no Ray), plus a grid."""

from __future__ import annotations

from dataclasses import dataclass

from ray_gan import storage
from ray_gan.config import MixSpec, Truncation
from ray_gan.generate.controls import check_controls, model_controls
from ray_gan.generate.render import Renderer
from ray_gan.images import VIEW_TILE, encode, make_grid


@dataclass(frozen=True)
class GenerateResult:
    images: list[str]
    grid: str


def generate_images(model: str, styles: list[str] | None, n: int, seed: int, truncation: Truncation, out: str,
                    image_format: str = "png", device: str | None = None, mix: MixSpec | None = None,
                    edits: dict[str, float] | None = None) -> GenerateResult:
    """``n`` images per style with seeds ``seed .. seed+n-1``; the grid has one row per style.

    Files: ``OUT/<style>/<style>-<seed:08d>.<ext>`` and ``OUT/grid.png``. The same
    arguments give byte-identical files.
    """
    renderer = Renderer(model, device=device)
    check_controls(model_controls(renderer.info, renderer.G, directions=bool(edits), renderer=renderer), truncation, mix, edits)
    idx = renderer.info.style_indices(styles)
    names = [renderer.info.styles[i] for i in idx]
    seeds = [seed + j for j in range(n)]
    psi = [truncation.get(name, 1.0) if isinstance(truncation, dict) else truncation for name in names for _ in seeds]
    images = renderer.render([i for i in idx for _ in seeds], seeds * len(idx), psi, mix=mix, edits=edits)
    ext = {"jpeg": "jpg"}.get(image_format, image_format)
    uris = []
    for k, img in enumerate(images):
        style, s = names[k // n], seeds[k % n]
        uri = storage.join(out, style, f"{style}-{s:08d}.{ext}")
        storage.write_bytes(uri, encode(img, image_format))
        uris.append(uri)
    grid = storage.join(out, "grid.png")
    storage.write_bytes(grid, encode(make_grid(images, cols=n, min_tile=VIEW_TILE)))
    return GenerateResult(uris, grid)
