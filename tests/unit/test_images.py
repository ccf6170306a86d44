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
    out, w, h = process_image(_png(img), 16, **LIMITS)
    arr = _decode(out)
    assert (w, h) == (64, 48)
    assert arr.shape == (16, 16, 3)
    assert tuple(arr[0, 0]) == (255, 255, 255)  # transparent → white, not red or black
    assert arr[8, 8, 2] > 200 and arr[8, 8, 0] < 60  # centre stays blue


def test_grayscale_and_palette_become_rgb():
    gray = Image.new("L", (32, 32), 100)
    assert _decode(process_image(_png(gray), 32, **LIMITS)[0]).shape == (32, 32, 3)
    pal = Image.new("P", (32, 32), 3)
    pal.putpalette([0, 0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * 756)
    assert tuple(_decode(process_image(_png(pal), 32, **LIMITS)[0])[0, 0]) == (70, 80, 90)


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


# ---- ray_gan.images: the one home of pixel operations ------------------------------------

def _fixed_images() -> dict[str, np.ndarray]:
    noise = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:40, 0:40]
    gradient = np.stack([xx * 6, yy * 6, (xx + yy) * 3], -1).astype(np.uint8)
    return {"noise": noise, "grad": gradient}


# sha256 of the bytes that the encoders before ray_gan.images (data/images.py's encode_png,
# generate/render.py's encode_image) wrote for _fixed_images(), with the codec versions
# they were recorded with: batch manifests and HTTP replies hold image sha256s.
GOLDEN_CODECS = {"png": ("zlib", "1.2.13"), "webp": ("webp", "1.6.0"), "jpeg": ("jpg", "6.2")}
GOLDEN_SHA256 = {
    ("noise", "png"): "3e18cc4322e8a85d2f4b2821c766600c0cd8fe79b2ebac6d92d128a8448461d2",
    ("noise", "webp"): "b5040af9aa92b8775ebfd811af5b4cc7f4b60dc132ca51c1246560ce4bd43f11",
    ("noise", "jpeg"): "5b85a1977ad4e2135f48ea23b3c898b88a500674bf103313ae0009be33a5e6fe",
    ("grad", "png"): "a4cc38f7a6564bceeedf695dafb2ccb2a27c499e7e6b0f6c58269e0dc7e1518b",
    ("grad", "webp"): "45eec27fce988a903bce6daca8ba1c6a5b6eb24a65179a680a918514d3afa3c4",
    ("grad", "jpeg"): "7cf64734709b8e7c0a4fcecabfa0d4b56421b57b26d2b67b1858404c9152f2f7",
}
_OLD_SETTINGS = {"png": dict(format="PNG", compress_level=6),
                 "webp": dict(format="WEBP", lossless=True, quality=100, method=4),
                 "jpeg": dict(format="JPEG", quality=95, subsampling=0)}


@pytest.mark.parametrize("fmt", ["png", "webp", "jpeg"])
@pytest.mark.parametrize("name", ["noise", "grad"])
def test_encode_gives_the_old_encoders_bytes(name, fmt):
    import hashlib

    from PIL import features

    from ray_gan.images import encode

    arr = _fixed_images()[name]
    data = encode(arr, fmt)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, **_OLD_SETTINGS[fmt])
    assert data == buf.getvalue()  # the old settings, whatever the codec version
    assert encode(Image.fromarray(arr, "RGB"), fmt) == data  # PIL input: the same bytes
    codec, version = GOLDEN_CODECS[fmt]
    if features.version(codec) != version:
        pytest.skip(f"golden bytes recorded with {codec} {version}, this is {features.version(codec)}")
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256[(name, fmt)]


def test_encode_decode_round_trip_and_unknown_format():
    from ray_gan.images import decode, decode_batch, encode

    arr = _fixed_images()["noise"]
    assert np.array_equal(decode(encode(arr, "png")), arr)
    assert np.array_equal(decode(encode(arr, "webp")), arr)  # lossless
    assert decode_batch([encode(arr), encode(arr)]).shape == (2, 20, 24, 3)
    assert decode_batch([]).shape == (0, 0, 0, 3)
    with pytest.raises(ValueError, match="unknown image format"):
        encode(arr, "gif")


def test_make_grid_default_layout_and_min_tile_upscaling():
    from ray_gan.images import make_grid

    imgs = np.random.default_rng(2).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    plain = np.asarray(make_grid(imgs, cols=3))
    assert plain.shape == (2 * 34 + 2, 3 * 34 + 2, 3)
    assert np.array_equal(plain[2:34, 36:68], imgs[1]) and np.all(plain[:2] == 255)
    assert np.array_equal(np.asarray(make_grid(imgs, cols=3, min_tile=32)), plain)  # already big enough
    big = np.asarray(make_grid(imgs, cols=3, min_tile=128))  # ×4, nearest-neighbour
    assert big.shape == (2 * 130 + 2, 3 * 130 + 2, 3)
    assert np.array_equal(big[2:130, 132:260], imgs[1].repeat(4, axis=0).repeat(4, axis=1))
    odd = np.asarray(make_grid(imgs[:, :28, :28], cols=1, pad=0, min_tile=64))  # whole factor 3: 84 ≥ 64
    assert odd.shape == (5 * 84, 84, 3)


def test_training_input_and_evaluation_images_share_the_model_space_transform():
    import torch

    from ray_gan.images import from_uint8, to_model_space, to_uint8

    imgs = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    for size, channels in ((16, 1), (16, 3), (32, 1)):
        x = from_uint8(imgs, channels=channels, size=size)  # what training feeds the model
        assert x.shape == (4, channels, size, size) and x.dtype == torch.float32
        seen = to_model_space(imgs, size, channels)  # what evaluation compares with
        assert np.abs(to_uint8(x).astype(int) - seen).max() <= 1  # the same image, up to rounding
    assert to_model_space(imgs, 32, 3) is imgs
    assert np.array_equal(to_uint8(from_uint8(imgs)), imgs)  # exact inverse at the same size
