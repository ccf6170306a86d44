"""Shared fixtures: a tiny model directory written without training and a tiny prepared
dataset (for fast tests); one torch thread for small CPU workloads. Helper functions that
test modules import by name live in tests/helpers.py."""

from __future__ import annotations

import pytest
import torch
from helpers import write_tiny_dataset

from ray_gan import checkpoint as ckpt
from ray_gan.config import ModelConfig
from ray_gan.models import build_discriminator, build_generator


def write_untrained_model(uri: str, styles: list[str], resolution: int = 16, seed: int = 0,
                          arch: str = "dcgan", discriminator: bool = False) -> str:
    """A model directory in the trained layout, with randomly initialised weights (and a
    discriminator where ``discriminator``)."""
    torch.manual_seed(seed)
    if arch == "stylegan":
        cfg = ModelConfig(arch="stylegan", resolution=resolution, num_styles=len(styles), g_channels=8, d_channels=8,
                          z_dim=32, w_dim=32, embed_dim=16, mapping_layers=2, max_channels=64)
    else:
        cfg = ModelConfig(arch="dcgan", resolution=resolution, num_styles=len(styles), g_channels=8, d_channels=8)
    G = build_generator(cfg)
    with torch.no_grad():  # make styles visibly different, BN stats / style means non-trivial
        if arch == "stylegan":
            for i in range(len(styles)):
                G.w_avg[i] = G.mapping(torch.randn(256, cfg.z_dim), torch.full((256,), i)).mean(dim=0)
        else:
            for i in range(len(styles)):
                G.bn0.gain.weight[i] += 0.3 * i
            G(torch.randn(64, cfg.z_dim), torch.arange(64) % len(styles))
    ckpt.write_generator_model(uri, G.eval(), cfg, styles, step=1, D=build_discriminator(cfg) if discriminator else None)
    return uri


@pytest.fixture
def tiny_model(tmp_path) -> str:
    return write_untrained_model(str(tmp_path / "model"), ["alpha", "beta", "gamma"])


@pytest.fixture
def tiny_stylegan(tmp_path) -> str:
    return write_untrained_model(str(tmp_path / "sg"), ["alpha", "beta", "gamma"], resolution=16, arch="stylegan")


@pytest.fixture
def untrained_model():
    """The :func:`write_untrained_model` factory (test modules cannot import conftest
    by name: ``tests/integration/conftest.py`` shadows it in a full run)."""
    return write_untrained_model


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    """A prepared dataset of tiny_model's styles (:func:`helpers.write_tiny_dataset`); read only."""
    return write_tiny_dataset(str(tmp_path_factory.mktemp("eval") / "ds"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small CPU workloads on a shared 2-core machine: one thread avoids OpenMP spin-waiting
    (5–10× faster under load, about as fast when idle). Use per module:
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
