"""ray_gan.models.vanilla: the classic MLP GAN."""

import pytest
import torch
from torch import nn

from ray_gan.config import ModelConfig
from ray_gan.models import build_discriminator, build_generator
from ray_gan.models.vanilla import VanillaDiscriminator, VanillaGenerator


def test_vanilla_is_the_classic_architecture():
    cfg = ModelConfig.default_for("vanilla", num_styles=1, resolution=28)
    G, D = build_generator(cfg), build_discriminator(cfg)
    assert isinstance(G, VanillaGenerator) and isinstance(D, VanillaDiscriminator)
    g_lin = [(m.in_features, m.out_features) for m in G.modules() if isinstance(m, nn.Linear)]
    d_lin = [(m.in_features, m.out_features) for m in D.modules() if isinstance(m, nn.Linear)]
    assert g_lin == [(100, 256), (256, 512), (512, 1024), (1024, 784)]
    assert d_lin == [(784, 1024), (1024, 512), (512, 256), (256, 1)]
    bns = [m for m in G.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [b.momentum for b in bns] == pytest.approx([0.2, 0.2])  # Keras momentum 0.8
    assert all(b.eps == pytest.approx(1e-5) for b in bns)
    assert all(m.negative_slope == 0.2 for m in G.modules() if isinstance(m, nn.LeakyReLU))
    assert isinstance(list(G.modules())[-1], nn.Tanh)
    x = G(torch.randn(3, 100), torch.zeros(3, dtype=torch.long))
    assert x.shape == (3, 1, 28, 28)
