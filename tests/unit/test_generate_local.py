"""ray_gan.generate.local: ``ray-gan generate`` (images and a grid on storage)."""

import io

import pytest
from PIL import Image

from ray_gan import storage
from ray_gan.generate.local import generate_images


def test_generate_is_byte_identical_and_writes_a_grid(tiny_model, tmp_path):
    out1, out2 = str(tmp_path / "g1"), str(tmp_path / "g2")
    r1 = generate_images(tiny_model, ["alpha", "gamma"], 3, 7, 0.7, out1, device="cpu")
    generate_images(tiny_model, ["alpha", "gamma"], 3, 7, 0.7, out2, device="cpu")
    assert len(r1.images) == 6
    assert r1.images[0].endswith("alpha/alpha-00000007.png")
    for e in storage.list_files(out1):
        assert storage.read_bytes(storage.join(out1, e.key)) == storage.read_bytes(storage.join(out2, e.key))
    grid = Image.open(io.BytesIO(storage.read_bytes(r1.grid)))
    assert grid.size[0] > grid.size[1]  # 3 columns × 2 rows


def test_unknown_style_is_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="unknown style.*'delta'"):
        generate_images(tiny_model, ["delta"], 1, 0, 1.0, str(tmp_path / "x"), device="cpu")
