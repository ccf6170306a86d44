import io

import numpy as np
import pytest
import torch
from PIL import Image

from ray_gan import storage
from ray_gan.checkpoint import load_generator
from ray_gan.generate.local import generate_images
from ray_gan.generate.render import RENDER_BATCH, Renderer, latents_from_seeds


def test_latents_depend_only_on_seed():
    a = latents_from_seeds([5, 6], 32)
    b = latents_from_seeds([6], 32)
    assert torch.equal(a[1], b[0])
    assert not torch.equal(a[0], a[1])


def test_image_bytes_do_not_depend_on_batch_composition(tiny_model):
    r = Renderer(tiny_model, device="cpu")
    seeds = list(range(100, 100 + RENDER_BATCH + 7))
    together = r.render([1] * len(seeds), seeds, 0.8)
    alone = r.render([1], [seeds[-1]], 0.8)
    mixed = r.render([0, 1, 2], [1, seeds[-1], 3], 0.8)
    assert np.array_equal(together[-1], alone[0])
    assert np.array_equal(mixed[1], alone[0])


def test_truncation_zero_collapses_to_the_mean_latent(tiny_model):
    r = Renderer(tiny_model, device="cpu")
    imgs = r.render([0] * 4, [1, 2, 3, 4], 0.0)
    assert all(np.array_equal(imgs[0], im) for im in imgs[1:])
    spread_full = r.render([0] * 8, list(range(8)), 1.0).astype(float).std(axis=0).mean()
    spread_trunc = r.render([0] * 8, list(range(8)), 0.3).astype(float).std(axis=0).mean()
    assert spread_trunc < spread_full


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


def test_tampered_weights_are_refused(tiny_model):
    G, info = load_generator(tiny_model)
    path = storage.join(info.checkpoint, "generator_ema.safetensors")
    data = bytearray(storage.read_bytes(path))
    data[-1] ^= 0xFF
    storage.write_bytes(path, bytes(data))
    with pytest.raises(storage.StorageError, match="do not match"):
        load_generator(tiny_model)
