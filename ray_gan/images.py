"""Pixel operations, in one place: decoding, encoding, RGB conversion, square resizing,
uint8 ↔ model tensors, the dataset → model image transform, and grids.

Conventions: an image is uint8 ``(H, W, 3)`` RGB (a batch ``(N, H, W, 3)``); a model
tensor is float ``(N, C, H, W)`` in ``[-1, 1]`` with ``C`` the model's channels (1 or 3).

* :func:`encode` is the only encoder: fixed settings per format, so the same pixels give
  the same bytes (image sha256s in batch manifests and HTTP replies depend on it).
* :func:`model_space` is the one transform from a dataset's images to a model's: the
  mean of R, G, B for a one-channel model, then a bilinear, antialiased resize when the
  sizes differ. Training applies it to its input (:func:`from_uint8`), evaluation to its
  real images (:func:`to_model_space`, the same transform rounded back to uint8).

torch is imported where a function needs it, so the PIL-only functions (prepare's
workers, the Ray Data decoder) do not load it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

FORMATS = ("png", "webp", "jpeg")
_CHUNK = 1024  # images per step of to_model_space (bounds its float memory)


# ---- bytes ↔ pixels ----------------------------------------------------------------------

def decode(data: bytes) -> np.ndarray:
    """Encoded image (any format Pillow reads) → uint8 (H, W, 3) RGB."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def decode_batch(blobs: Sequence[bytes]) -> np.ndarray:
    """Encoded images of one size → uint8 (N, H, W, 3); (0, 0, 0, 3) for none."""
    if len(blobs) == 0:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack([decode(b) for b in blobs])


def encode(img: np.ndarray | Image.Image, fmt: str = "png") -> bytes:
    """uint8 (H, W, 3) RGB or a PIL image → ``fmt`` bytes (``png``, ``webp`` or ``jpeg``),
    with fixed encoder settings: PNG at zlib level 6, lossless WebP (method 4), JPEG at
    quality 95 without chroma subsampling."""
    pil = img if isinstance(img, Image.Image) else Image.fromarray(img, "RGB")
    buf = io.BytesIO()
    if fmt == "png":
        pil.save(buf, format="PNG", compress_level=6)
    elif fmt == "webp":
        pil.save(buf, format="WEBP", lossless=True, quality=100, method=4)
    elif fmt == "jpeg":
        pil.save(buf, format="JPEG", quality=95, subsampling=0)
    else:
        raise ValueError(f"unknown image format {fmt!r}; use one of {', '.join(FORMATS)}")
    return buf.getvalue()


# ---- PIL images --------------------------------------------------------------------------

def to_rgb(img: Image.Image) -> Image.Image:
    """RGB with any transparency alpha-composited onto white (16-bit grey scaled to 8 bits)."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((arr / max(arr.max(), 1.0) * 255).astype(np.uint8), "L")
    return img.convert("RGB")


def square_resize(img: Image.Image, resolution: int) -> Image.Image:
    """Centre-crop to a square, then resize (Lanczos) to ``resolution``."""
    w, h = img.size
    side = min(w, h)
    if w != h:
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if side != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return img


# ---- uint8 ↔ model tensors ---------------------------------------------------------------

def model_space(x: torch.Tensor, channels: int = 3, size: int | None = None) -> torch.Tensor:
    """Float (N, 3, H, W) → (N, ``channels``, ``size``, ``size``): the mean of R, G, B when
    ``channels`` is 1, then a bilinear, antialiased resize when the size differs (``None``:
    keep it). Linear, so it gives the same image on [0, 255] or [-1, 1] values."""
    import torch.nn.functional as F

    if channels == 1:
        x = x.mean(dim=1, keepdim=True)
    if size is not None and (x.shape[-2] != size or x.shape[-1] != size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def from_uint8(images: np.ndarray | torch.Tensor, device: torch.device | str | None = None, channels: int = 3,
               size: int | None = None) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, C, H, W) in [-1, 1], as the models take it (the
    inverse of :func:`to_uint8`), through :func:`model_space` (``channels``, ``size``)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if device is not None:
        x = x.to(device)
    return model_space(x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0), channels, size)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] → uint8 (N, H, W, 3) (one channel is repeated as grey)."""
    import torch

    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def to_model_space(images: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    """uint8 (N, H, W, 3) → uint8 (N, ``resolution``, ``resolution``, 3): the images as a
    model of that resolution and channel count sees them (:func:`model_space`, rounded;
    one channel repeated as grey). Returns ``images`` itself when nothing changes."""
    import torch

    if images.shape[1] == resolution and images.shape[2] == resolution and channels == 3:
        return images
    out = np.empty((len(images), resolution, resolution, 3), np.uint8)
    for i in range(0, len(images), _CHUNK):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + _CHUNK])).permute(0, 3, 1, 2).float()
        x = model_space(x, channels, resolution).round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1)
        out[i : i + len(x)] = x.permute(0, 2, 3, 1).numpy()
    return out


# ---- grids -------------------------------------------------------------------------------

# Grids written for people (training samples, generate, evaluation reports): tiles are
# enlarged to at least this many pixels, so a 32 px model's images can be seen.
VIEW_TILE = 128


def make_grid(images: np.ndarray, cols: int, pad: int = 2, min_tile: int | None = None) -> Image.Image:
    """uint8 (N, H, W, 3) → one PIL image, row-major, white padding. ``min_tile``: enlarge
    every tile, nearest-neighbour, by the smallest whole factor that makes it at least
    ``min_tile`` pixels on each side (a grid of 32 px samples at ``min_tile=128`` is ×4),
    so small images stay crisp and can be seen."""
    n, h, w, _ = images.shape
    if min_tile and min(h, w) < min_tile:
        k = -(-min_tile // min(h, w))
        images = images.repeat(k, axis=1).repeat(k, axis=2)
        h, w = h * k, w * k
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return Image.fromarray(grid, "RGB")
