"""ray_gan.images: the one home of pixel operations (codecs, grids, the model-space
transform)."""

import io

import numpy as np
import pytest
from PIL import Image

from ray_gan.images import to_model_space


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
        pytest.skip(f"golden bytes recorded with {codec} {version}, this is {features.version(codec)}: run with "
                    "pip install pillow==13.0.0 (its manylinux wheel: webp 1.6.0, jpeg 6.2) on Debian 12 (zlib 1.2.13)")
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


def test_to_model_space_grey_and_resize():
    img = np.zeros((2, 32, 32, 3), np.uint8)
    img[..., 0] = 255  # pure red
    grey = to_model_space(img, 16, channels=1)
    assert grey.shape == (2, 16, 16, 3) and np.all(grey == 85)  # channel mean, as training feeds it
    assert to_model_space(img, 32, channels=3) is img
