"""Tests for the procedural multi-style demo image set (ray_gan.data.demo)."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from ray_gan.data.demo import (
    DEMO_SHAPES,
    DEMO_STYLES,
    demo_shape_for_index,
    iter_demo_images,
    render_demo_image,
    write_demo_data,
)

SIZE = 64
INDICES = range(16)
# A pixel is "inked" when some channel is this far below white.
INK_THRESHOLD = 64


def _render(style: str, index: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    image = render_demo_image(demo_shape_for_index(index, seed), style, index, size=size, seed=seed)
    return np.asarray(image, dtype=np.float64)


def _ink(pixels: np.ndarray) -> np.ndarray:
    return (255.0 - pixels.min(axis=2)) > INK_THRESHOLD


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    assert rows.size and cols.size, "image has no ink"
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def test_styles_and_shapes_are_declared() -> None:
    assert len(DEMO_STYLES) >= 4 and len(set(DEMO_STYLES)) == len(DEMO_STYLES)
    assert {"flat", "outline", "stripes", "gradient"} <= set(DEMO_STYLES)
    assert len(DEMO_SHAPES) >= 5 and len(set(DEMO_SHAPES)) == len(DEMO_SHAPES)


def test_same_arguments_give_identical_png_bytes() -> None:
    first = list(iter_demo_images(per_style=3, size=32, seed=7))
    second = list(iter_demo_images(per_style=3, size=32, seed=7))
    assert first == second
    other_seed = list(iter_demo_images(per_style=3, size=32, seed=8))
    assert [data for _, _, data in first] != [data for _, _, data in other_seed]


def test_render_is_deterministic_and_depends_on_index() -> None:
    a = render_demo_image("star", "stripes", 5, size=48, seed=3).tobytes()
    b = render_demo_image("star", "stripes", 5, size=48, seed=3).tobytes()
    c = render_demo_image("star", "stripes", 6, size=48, seed=3).tobytes()
    assert a == b
    assert a != c


def test_write_demo_data_counts_and_keys() -> None:
    written: dict[str, bytes] = {}

    def write(key: str, data: bytes) -> None:
        assert key not in written, f"duplicate key {key}"
        written[key] = data

    counts = write_demo_data(write, per_style=10, size=32, seed=1)
    assert counts == {style: 10 for style in DEMO_STYLES}
    assert len(written) == 10 * len(DEMO_STYLES)
    per_style = Counter(key.split("/", 1)[0] for key in written)
    assert per_style == Counter({style: 10 for style in DEMO_STYLES})
    # Filenames are the pairing key: identical in every style, shape-index.png.
    names = {style: sorted(k.split("/", 1)[1] for k in written if k.startswith(style + "/"))
             for style in DEMO_STYLES}
    expected = sorted(f"{demo_shape_for_index(i, 1)}-{i:04d}.png" for i in range(10))
    for style in DEMO_STYLES:
        assert names[style] == expected


def test_iteration_order_is_style_major() -> None:
    styles = [style for style, _, _ in iter_demo_images(per_style=2, size=16)]
    assert styles == [s for s in DEMO_STYLES for _ in range(2)]


def test_shapes_are_balanced() -> None:
    n = len(DEMO_SHAPES)
    counts = Counter(demo_shape_for_index(i, seed=4) for i in range(3 * n))
    assert counts == Counter({shape: 3 for shape in DEMO_SHAPES})


@pytest.mark.parametrize("size", [16, 32, 64])
def test_images_decode_as_rgb_of_requested_size(size: int) -> None:
    for style, _, data in iter_demo_images(per_style=4, size=size, seed=2):
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.format == "PNG"
        assert image.mode == "RGB", style
        assert image.size == (size, size)
        pixels = np.asarray(image)
        # White background: the corners are never inked.
        for corner in (pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]):
            assert corner.min() >= 250, (style, corner)
        assert _ink(pixels.astype(np.float64)).any()


def test_outline_is_hollow_and_flat_is_filled() -> None:
    ratios = []
    for index in INDICES:
        flat_pixels = _render("flat", index)
        outline_pixels = _render("outline", index)
        flat = _ink(flat_pixels)
        outline = _ink(outline_pixels)
        ratios.append(flat.mean() / outline.mean())
        # The stroke lies on the shape, inside its silhouette.
        assert (outline & flat).sum() >= 0.95 * outline.sum(), index
        # The middle of the shape is coloured when flat and white when outlined.
        cy, cx = np.rint(np.argwhere(flat).mean(axis=0)).astype(int)
        assert flat_pixels[cy, cx].min() < 150, index
        assert outline_pixels[cy, cx].min() > 230, index
    assert min(ratios) > 1.3, ratios
    assert float(np.mean(ratios)) > 1.6, ratios


def _erode(mask: np.ndarray, steps: int = 2) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        shrunk = out.copy()
        shrunk[1:, :] &= out[:-1, :]
        shrunk[:-1, :] &= out[1:, :]
        shrunk[:, 1:] &= out[:, :-1]
        shrunk[:, :-1] &= out[:, 1:]
        out = shrunk
    return out


def _horizontal_detail(pixels: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute left-right pixel difference inside ``region``, away from its edge."""
    gray = pixels.mean(axis=2)
    diff = np.abs(np.diff(gray, axis=1))
    inside = _erode(region)
    inside = inside[:, 1:] & inside[:, :-1]
    assert inside.sum() > 20
    return float(diff[inside].mean())


def test_stripes_have_high_frequency_content() -> None:
    for index in INDICES:
        region = _ink(_render("flat", index))
        stripes = _render("stripes", index)
        detail = _horizontal_detail(stripes, region)
        assert detail > 3 * _horizontal_detail(_render("flat", index), region) + 10, index
        assert detail > 3 * _horizontal_detail(_render("gradient", index), region) + 10, index
        # Roughly half of the shape is covered by stripes (plus a thin border).
        covered = (_ink(stripes) & region).sum() / region.sum()
        assert 0.35 < covered < 0.85, (index, covered)


def test_gradient_varies_top_to_bottom_and_flat_does_not() -> None:
    for index in INDICES:
        region = _ink(_render("flat", index))
        x0, y0, x1, y1 = _bbox(region)
        quarter = max(1, (y1 - y0) // 4)
        top = np.zeros_like(region)
        bottom = np.zeros_like(region)
        top[y0:y0 + quarter] = True
        bottom[y1 - quarter + 1:y1 + 1] = True

        def top_bottom_gap(pixels: np.ndarray) -> float:
            t = pixels[region & top].mean(axis=0)
            b = pixels[region & bottom].mean(axis=0)
            return float(np.abs(t - b).sum())

        assert top_bottom_gap(_render("gradient", index)) > 80, index
        # Only edge anti-aliasing can differ in the flat style.
        assert top_bottom_gap(_render("flat", index)) < 40, index


def test_same_index_has_same_placement_and_colour_across_styles() -> None:
    flat_boxes = []
    for index in INDICES:
        flat_pixels = _render("flat", index)
        flat_ink = _ink(flat_pixels)
        flat_box = np.array(_bbox(flat_ink))
        flat_boxes.append(tuple(flat_box))
        flat_colour = flat_pixels[flat_ink].mean(axis=0)
        for style in DEMO_STYLES:
            pixels = _render(style, index)
            ink = _ink(pixels)
            box = np.array(_bbox(ink))
            assert np.abs(box - flat_box).max() <= 2, (style, index, box, flat_box)
            if style in ("outline", "stripes"):
                # Same hue: the strongly inked pixels carry the flat colour.
                solid = (255.0 - pixels.min(axis=2)) > 150
                colour = pixels[solid].mean(axis=0)
                assert np.abs(colour - flat_colour).max() < 30, (style, index)
    # Placement really varies between items, so the check above is meaningful.
    assert len(set(flat_boxes)) >= len(flat_boxes) - 2


def test_placement_is_independent_of_shape_choice() -> None:
    # The same index placed as two different shapes is centred in the same spot.
    a = _ink(np.asarray(render_demo_image("circle", "flat", 9), dtype=np.float64))
    b = _ink(np.asarray(render_demo_image("hexagon", "flat", 9), dtype=np.float64))
    ca = np.argwhere(a).mean(axis=0)
    cb = np.argwhere(b).mean(axis=0)
    assert np.abs(ca - cb).max() < 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": "blob", "style": "flat", "index": 0},
        {"shape": "circle", "style": "watercolour", "index": 0},
        {"shape": "circle", "style": "flat", "index": -1},
        {"shape": "circle", "style": "flat", "index": 0, "size": 2},
    ],
)
def test_bad_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        render_demo_image(**kwargs)
