"""ray_gan.generate.directions: PCA edit directions of W, stored with the model."""

import numpy as np
import pytest
import torch
from helpers import SEEDS

from ray_gan import storage
from ray_gan.checkpoint import load_generator, read_model_info
from ray_gan.generate.directions import compute_directions, load_directions, rename_directions, save_directions
from ray_gan.generate.render import Renderer


def test_edit_directions_are_pca_of_w_stored_with_the_model(tiny_stylegan):
    G, info = load_generator(tiny_stylegan)
    d, mean = compute_directions(G, len(info.styles), components=4, samples=3000)
    assert torch.allclose(d.components @ d.components.T, torch.eye(4), atol=1e-4)  # orthonormal
    assert d.explained_variance_ratio == sorted(d.explained_variance_ratio, reverse=True)
    save_directions(info, d, mean, 3000)
    r = Renderer(tiny_stylegan, "cpu")
    base = r.render([0] * 8, SEEDS[:8])
    assert np.array_equal(r.render([0] * 8, SEEDS[:8], edits={"pc0": 0.0}), base)
    plus = r.render([0] * 8, SEEDS[:8], edits={"pc0": 3.0})
    minus = r.render([0] * 8, SEEDS[:8], edits={"pc0": -3.0})
    assert np.abs(plus.astype(float) - base).mean() > 1.0
    assert np.abs(plus.astype(float) - minus).mean() > np.abs(plus.astype(float) - base).mean()
    with pytest.raises(ValueError, match="unknown edit"):
        r.render([0], [0], edits={"nope": 1.0})
    assert rename_directions(info, {"pc0": "thickness"})[0] == "thickness"
    assert load_directions(read_model_info(tiny_stylegan)).names[0] == "thickness"


def test_edit_directions_go_stale_when_weights_change(tmp_path, untrained_model):
    uri = untrained_model(str(tmp_path / "m"), ["a", "b"], arch="stylegan")
    G, info = load_generator(uri)
    d, mean = compute_directions(G, 2, components=2, samples=500)
    save_directions(info, d, mean, 500)
    doc = storage.read_json(storage.join(uri, "model.json"))
    doc["weights_sha256"]["generator_ema"] = "0" * 64
    doc["step"] = 99
    storage.write_json(storage.join(uri, "model.json"), doc)
    with pytest.raises(ValueError, match="run `ray-gan directions"):
        load_directions(read_model_info(uri))


def test_edit_directions_are_read_only_when_their_bytes_match_the_sha256_recorded(tmp_path, untrained_model):
    from ray_gan import checkpoint as ckpt

    uri = untrained_model(str(tmp_path / "m"), ["a", "b"], arch="stylegan")
    G, info = load_generator(uri)
    d, mean = compute_directions(G, 2, components=2, samples=500)
    save_directions(info, d, mean, 500)
    rename_directions(info, {"pc1": "slant"})  # a rename keeps the tensors' sha256
    assert load_directions(info).names == ["pc0", "slant"]
    path = storage.join(uri, ckpt.DIRECTIONS_FILE)
    data = bytearray(storage.read_bytes(path))
    data[-1] ^= 1
    storage.write_bytes(path, bytes(data))
    with pytest.raises(storage.StorageError, match="do not match"):
        load_directions(info)
