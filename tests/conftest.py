"""Shared fixtures: a tiny model directory written without training (for fast tests)."""

from __future__ import annotations

import pytest
import torch

from ray_gan import checkpoint as ckpt
from ray_gan import storage
from ray_gan.config import ModelConfig
from ray_gan.models import build_generator


def write_untrained_model(uri: str, styles: list[str], resolution: int = 16, seed: int = 0) -> str:
    """A model directory in the trained layout, with randomly initialised weights."""
    torch.manual_seed(seed)
    cfg = ModelConfig(arch="dcgan", resolution=resolution, num_styles=len(styles), g_channels=8, d_channels=8)
    G = build_generator(cfg)
    with torch.no_grad():  # make styles visibly different and BN stats non-trivial
        for i in range(len(styles)):
            G.bn0.gain.weight[i] += 0.3 * i
        G(torch.randn(64, cfg.z_dim), torch.arange(64) % len(styles))
    G.eval()
    data = ckpt.state_dict_bytes(G)
    cdir = ckpt.checkpoint_uri(uri, 1)
    storage.write_bytes(storage.join(cdir, "generator_ema.safetensors"), data)
    doc = {"schema_version": 1, "step": 1, "checkpoint": ckpt.checkpoint_name(1), "model_config": cfg.model_dump(),
           "styles": styles, "resolution": resolution, "dataset": {"uri": "none", "checksum": "none"},
           "weights_sha256": {"generator_ema": ckpt.sha256_hex(data)}, "sample_grid": "samples/none.png",
           "history": []}
    storage.write_json(storage.join(cdir, "model.json"), doc)
    storage.write_json(storage.join(uri, "model.json"), doc)
    return uri


@pytest.fixture
def tiny_model(tmp_path) -> str:
    return write_untrained_model(str(tmp_path / "model"), ["alpha", "beta", "gamma"])
