"""Prepare's validation of one source image (pure functions, no I/O).

Every source file either becomes an RGB PNG of ``resolution``×``resolution`` or raises
:class:`SkipImage` with a reason that ``prepare`` counts: ``empty``, ``too_large``
(file bytes or pixel count, i.e. decompression bombs), ``not_image`` and ``corrupt``
(truncated or undecodable). The pixel operations themselves (RGB conversion, crop and
resize, PNG encoding) are in :mod:`ray_gan.images`.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ray_gan.images import encode, square_resize, to_rgb

_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
SKIP_REASONS = ("empty", "too_large", "not_image", "corrupt", "duplicate")


class SkipImage(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in SKIP_REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def process_image(data: bytes, resolution: int, max_pixels: int, max_file_bytes: int
                  ) -> tuple[bytes, int, int, bool]:
    """Source bytes → (PNG bytes at the target resolution, source width, source height,
    grey: whether R = G = B at every pixel of the processed image)."""
    if not data:
        raise SkipImage("empty")
    if len(data) > max_file_bytes:
        raise SkipImage("too_large", f"{len(data)} bytes > {max_file_bytes}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            # A known image signature that Pillow cannot parse is a damaged image.
            reason = "corrupt" if data.startswith(_IMAGE_MAGIC) or data[8:12] == b"WEBP" else "not_image"
            raise SkipImage(reason, str(exc)[:200]) from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise SkipImage("too_large", str(exc)[:200]) from exc
        except Exception as exc:  # noqa: BLE001 - any parser failure is a corrupt file
            raise SkipImage("corrupt", f"{type(exc).__name__}: {exc}"[:200]) from exc
        w, h = img.size
        if w * h > max_pixels:
            raise SkipImage("too_large", f"{w}x{h} pixels > {max_pixels}")
        if w < 1 or h < 1:
            raise SkipImage("corrupt", f"bad size {w}x{h}")
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
            img = to_rgb(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise SkipImage("too_large", str(exc)[:200]) from exc
        except Exception as exc:  # noqa: BLE001 - truncated / broken streams
            raise SkipImage("corrupt", f"{type(exc).__name__}: {exc}"[:200]) from exc
    out = square_resize(img, resolution)
    rgb = np.asarray(out)
    grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return encode(out), w, h, grey
