"""ray_gan.data.validate: prepare's checks and normalisation of one source image."""

import io

import numpy as np
import pytest
from PIL import Image

from ray_gan.data.validate import SkipImage, process_image


LIMITS = dict(max_pixels=10_000_000, max_file_bytes=10_000_000)


def _png(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_rgba_is_composited_on_white_and_resized():
    img = Image.new("RGBA", (64, 48), (255, 0, 0, 0))  # fully transparent red
    img.paste((0, 0, 255, 255), (20, 10, 44, 38))  # opaque blue box in the middle
    out, w, h, grey = process_image(_png(img), 16, **LIMITS)
    arr = _decode(out)
    assert (w, h) == (64, 48)
    assert arr.shape == (16, 16, 3)
    assert tuple(arr[0, 0]) == (255, 255, 255)  # transparent → white, not red or black
    assert arr[8, 8, 2] > 200 and arr[8, 8, 0] < 60  # centre stays blue
    assert not grey


def test_grayscale_and_palette_become_rgb():
    gray = Image.new("L", (32, 32), 100)
    assert _decode(process_image(_png(gray), 32, **LIMITS)[0]).shape == (32, 32, 3)
    pal = Image.new("P", (32, 32), 3)
    pal.putpalette([0, 0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * 756)
    assert tuple(_decode(process_image(_png(pal), 32, **LIMITS)[0])[0, 0]) == (70, 80, 90)


def test_grey_images_are_marked_grey_and_colour_ones_not():
    glyph = Image.new("L", (40, 40), 255)
    glyph.paste(0, (10, 5, 18, 35))  # a black stroke on white, resized with Lanczos
    assert process_image(_png(glyph), 16, **LIMITS)[3]
    assert process_image(_png(glyph.convert("RGB")), 16, **LIMITS)[3]  # grey stored as RGB
    tinted = glyph.convert("RGB")
    tinted.putpixel((0, 0), (255, 254, 255))  # one pixel off grey
    assert not process_image(_png(tinted), 40, **LIMITS)[3]


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty"),
        (b"this is a text file, not an image", "not_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt"),
    ],
)
def test_bad_files_are_skipped_with_a_reason(data, reason):
    with pytest.raises(SkipImage) as exc:
        process_image(data, 32, **LIMITS)
    assert exc.value.reason == reason


def test_truncated_png_is_corrupt():
    rng = np.random.default_rng(0)
    data = _png(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(SkipImage) as exc:
        process_image(data[: len(data) // 2], 32, **LIMITS)
    assert exc.value.reason == "corrupt"


def test_decompression_bomb_and_big_files_are_too_large():
    big = _png(Image.new("L", (4000, 4000), 255))  # compresses to a few KB
    with pytest.raises(SkipImage) as exc:
        process_image(big, 32, max_pixels=1_000_000, max_file_bytes=10_000_000)
    assert exc.value.reason == "too_large"
    with pytest.raises(SkipImage) as exc:
        process_image(big, 32, max_pixels=10**9, max_file_bytes=100)
    assert exc.value.reason == "too_large"


def test_processing_is_deterministic():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    a = process_image(_png(img), 32, **LIMITS)[0]
    b = process_image(_png(img), 32, **LIMITS)[0]
    assert a == b
