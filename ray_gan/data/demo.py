"""Procedural, deterministic multi-style icon image set for demos and tests.

This module draws a small synthetic data set of simple icon shapes (circle,
square, triangle, star, diamond, heart, plus, hexagon) in several rendering
styles, using only Pillow and numpy -- nothing is downloaded.  It exists so
that the README demo and the test suite have a multi-style image set that can
be produced anywhere in a few seconds; it is *not* a quality benchmark and
says nothing about how well a model does on real images.

The set is *paired* across styles: item ``index`` always draws the same shape
at the same position, scale, rotation and hue in every style, and only the
rendering differs:

``flat``
    solid fill in the item colour, no outline;
``outline``
    a thick stroke in the item colour along the inside of the shape's edge,
    white inside;
``stripes``
    the shape filled with diagonal stripes of the item colour on white;
``gradient``
    the shape filled with a vertical gradient from the item colour (top) to
    a dark complementary colour (bottom).

Backgrounds are white and images are RGB.  Shapes are drawn at 4x the output
size and downsampled with a Lanczos filter for anti-aliasing.  Every random
choice comes from a ``random.Random`` seeded from ``(seed, index)``, so the
same arguments always give byte-identical PNG bytes (with the same Pillow and
zlib versions).

Typical use::

    write_demo_data(lambda key, data: Path(root, key).write_bytes(data))

where the ``write`` callback decides where the bytes go (a local folder, an
object store, ...).
"""

from __future__ import annotations

import colorsys
import io
import math
import random
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageChops, ImageDraw

__all__ = [
    "DEMO_SHAPES",
    "DEMO_STYLES",
    "demo_shape_for_index",
    "iter_demo_images",
    "render_demo_image",
    "write_demo_data",
]

DEMO_STYLES: tuple[str, ...] = ("flat", "outline", "stripes", "gradient")
"""Rendering styles, in the order :func:`iter_demo_images` yields them."""

DEMO_SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "diamond",
    "heart",
    "plus",
    "hexagon",
)
"""Icon shapes that items are drawn from."""

_SUPERSAMPLE = 4
_MIN_SIZE = 8
_CIRCLE_POINTS = 96
_HEART_POINTS = 96
# As fractions of the shape's radius: stroke width of the outline style and
# the thin border of the stripes style, which keeps the silhouette readable.
_OUTLINE_WIDTH = 0.18
_STRIPE_BORDER = 0.08
# As a fraction of the image size: period of the stripes (perpendicular to them).
_STRIPE_PERIOD = 0.085
# Bottom colour of the gradient style: complementary hue, this much darker.
_GRADIENT_DARKEN = 0.4
# Largest rotation either way; more would turn squares into diamonds and
# plus signs into crosses.
_MAX_TILT = math.radians(25.0)
_WHITE = (255, 255, 255)
_PNG_COMPRESS_LEVEL = 6

_Point = tuple[float, float]


@dataclass(frozen=True)
class _ItemParams:
    """Placement and colour of one item, independent of style and size."""

    cx: float  # centre, as a fraction of the image size
    cy: float
    radius: float  # circumscribed radius, as a fraction of the image size
    turn: float  # rotation in [-1, 1), scaled by _MAX_TILT
    hue: float
    saturation: float
    value: float


def _item_rng(seed: int, index: int, salt: str) -> random.Random:
    # String seeds are hashed with SHA-512 by ``random.Random``, so this is
    # stable across processes and Python versions (no PYTHONHASHSEED effect).
    return random.Random(f"ray_gan.demo:{salt}:{int(seed)}:{int(index)}")


def _item_params(index: int, seed: int) -> _ItemParams:
    rng = _item_rng(seed, index, "item")
    radius = rng.uniform(0.24, 0.36)
    margin = 0.05
    lo, hi = radius + margin, 1.0 - radius - margin
    return _ItemParams(
        cx=rng.uniform(lo, hi),
        cy=rng.uniform(lo, hi),
        radius=radius,
        turn=rng.uniform(-1.0, 1.0),
        hue=rng.random(),
        saturation=rng.uniform(0.65, 0.95),
        value=rng.uniform(0.55, 0.85),
    )


def demo_shape_for_index(index: int, seed: int = 0) -> str:
    """Return the shape that item ``index`` uses in the demo set.

    Shapes are balanced: every consecutive block of ``len(DEMO_SHAPES)``
    indices holds each shape once, in a seeded order.
    """
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    n = len(DEMO_SHAPES)
    order = _item_rng(seed, index // n, "shapes").sample(DEMO_SHAPES, n)
    return order[index % n]


def _unit_polygon(shape: str) -> list[_Point]:
    """Shape outline centred on the origin, fitting inside the unit circle.

    Image coordinates: y grows downwards.
    """

    def ring(k: int, r: float = 1.0, start: float = -math.pi / 2) -> list[_Point]:
        angles = [start + 2 * math.pi * i / k for i in range(k)]
        return [(r * math.cos(a), r * math.sin(a)) for a in angles]

    if shape == "circle":
        return ring(_CIRCLE_POINTS, 0.92)
    if shape == "square":
        return ring(4, 0.98, start=math.pi / 4)
    if shape == "triangle":
        # Centroid at the origin would look high; shift down a little.
        return [(x, y + 0.1) for x, y in ring(3, 0.93)]
    if shape == "star":
        outer, inner = ring(5, 1.0), ring(5, 0.5, start=-math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner) for p in pair]
    if shape == "diamond":
        return [(0.0, -1.0), (0.68, 0.0), (0.0, 1.0), (-0.68, 0.0)]
    if shape == "hexagon":
        return ring(6, 0.97, start=0.0)
    if shape == "plus":
        a, b = 0.36, 0.93
        return [
            (-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a),
            (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a),
        ]  # fmt: skip
    if shape == "heart":
        pts = []
        for i in range(_HEART_POINTS):
            t = 2 * math.pi * i / _HEART_POINTS
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((x, -y))
        # The raw curve spans x in [-16, 16] and y in [-12, 17]; centre it
        # and scale it so that its lobes, too, stay inside the unit circle.
        return [(x / 18.5, (y - 2.5) / 18.5) for x, y in pts]
    raise ValueError(f"unknown shape {shape!r}; expected one of {DEMO_SHAPES}")


def _place(shape: str, params: _ItemParams, canvas: int) -> list[_Point]:
    angle = params.turn * _MAX_TILT
    c, s = math.cos(angle), math.sin(angle)
    r = params.radius * canvas
    ox, oy = params.cx * canvas, params.cy * canvas
    return [(ox + r * (c * x - s * y), oy + r * (s * x + c * y)) for x, y in _unit_polygon(shape)]


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _stroke_mask(points: list[_Point], canvas: int, width: int) -> Image.Image:
    """Mask of the closed polyline stroked with a round pen of ``width``."""
    edge = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(edge)
    draw.line(points + points[:1], fill=255, width=width)
    # Round caps at every vertex: Pillow's own "curve" joints leave gaps.
    r = width / 2.0
    for x, y in points:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return edge


def _stripe_mask(canvas: int, period: float) -> Image.Image:
    """Mask of 45-degree stripes (top-right to bottom-left), half of each period inked."""
    stripes = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(stripes)
    step = period * math.sqrt(2.0)  # period measured along x (x + y = const lines)
    ink = step / 2.0
    k = 0
    while k * step < 2 * canvas:
        a = k * step
        corners = [(a, 0), (a + ink, 0), (a + ink - canvas, canvas), (a - canvas, canvas)]
        draw.polygon(corners, fill=255)
        k += 1
    return stripes


def _vertical_gradient(
    canvas: int, top: int, bottom: int, start: tuple[int, int, int], end: tuple[int, int, int]
) -> Image.Image:
    t = np.clip((np.arange(canvas, dtype=np.float64) - top) / max(1, bottom - top), 0.0, 1.0)
    start_rgb, end_rgb = np.asarray(start, np.float64), np.asarray(end, np.float64)
    rows = np.outer(1.0 - t, start_rgb) + np.outer(t, end_rgb)
    column = np.rint(rows).astype(np.uint8)[:, None, :]
    return Image.fromarray(np.ascontiguousarray(np.repeat(column, canvas, axis=1)))


def render_demo_image(
    shape: str, style: str, index: int, size: int = 64, seed: int = 0
) -> Image.Image:
    """Draw item ``index`` as ``shape`` in ``style``; returns a ``size`` x ``size`` RGB image.

    Placement (centre, scale, rotation) and colour depend only on
    ``(index, seed)``, so the same item lines up across styles and sizes.
    """
    if style not in DEMO_STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {DEMO_STYLES}")
    if shape not in DEMO_SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {DEMO_SHAPES}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    if size < _MIN_SIZE:
        raise ValueError(f"size must be >= {_MIN_SIZE}, got {size}")

    params = _item_params(index, seed)
    canvas = size * _SUPERSAMPLE
    points = _place(shape, params, canvas)
    radius = params.radius * canvas
    colour = _hsv(params.hue, params.saturation, params.value)

    mask = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(mask).polygon(points, fill=255)

    fill: Image.Image = Image.new("RGB", (canvas, canvas), colour)
    if style == "flat":
        ink = mask
    elif style == "outline":
        # The stroke is centred on the edge; keep its inner half so the
        # stroke stays inside the shape and the silhouette matches the
        # other styles.
        width = max(2, round(2 * _OUTLINE_WIDTH * radius))
        ink = ImageChops.multiply(mask, _stroke_mask(points, canvas, width))
    elif style == "stripes":
        stripes = _stripe_mask(canvas, _STRIPE_PERIOD * canvas)
        width = max(2, round(2 * _STRIPE_BORDER * radius))
        border = _stroke_mask(points, canvas, width)
        ink = ImageChops.multiply(mask, ImageChops.lighter(stripes, border))
    else:  # gradient
        ink = mask
        bbox = mask.getbbox() or (0, 0, canvas, canvas)
        dark = _hsv(params.hue + 0.5, params.saturation, params.value * _GRADIENT_DARKEN)
        fill = _vertical_gradient(canvas, bbox[1], bbox[3] - 1, colour, dark)

    big = Image.composite(fill, Image.new("RGB", (canvas, canvas), _WHITE), ink)
    return big.resize((size, size), Image.Resampling.LANCZOS)


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=_PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def iter_demo_images(
    per_style: int = 300, size: int = 64, seed: int = 0
) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(style, filename, png_bytes)`` for the whole demo set.

    Order is style by style (``DEMO_STYLES`` order), then by index.  The
    filename is ``f"{shape}-{index:04d}.png"`` and is the same in every style
    for a given index, which pairs the images across styles.
    """
    if per_style < 0:
        raise ValueError(f"per_style must be >= 0, got {per_style}")
    shapes = [demo_shape_for_index(i, seed) for i in range(per_style)]
    for style in DEMO_STYLES:
        for index, shape in enumerate(shapes):
            image = render_demo_image(shape, style, index, size=size, seed=seed)
            yield style, f"{shape}-{index:04d}.png", _png_bytes(image)


def write_demo_data(
    write: Callable[[str, bytes], None],
    per_style: int = 300,
    size: int = 64,
    seed: int = 0,
) -> dict[str, int]:
    """Write the demo set through ``write(key, png_bytes)``; return images written per style.

    ``key`` is ``f"{style}/{shape}-{index:04d}.png"``, relative to whatever
    root the caller's ``write`` uses (a local directory, an S3 prefix, ...).
    """
    counts = {style: 0 for style in DEMO_STYLES}
    for style, filename, data in iter_demo_images(per_style=per_style, size=size, seed=seed):
        write(f"{style}/{filename}", data)
        counts[style] += 1
    return counts
