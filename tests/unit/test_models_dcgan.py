"""ray_gan.models.dcgan: shapes and style conditioning."""

import pytest
import torch

from ray_gan.config import ModelConfig
from ray_gan.models import build_discriminator, build_generator


@pytest.mark.parametrize("res", [16, 32, 64])
def test_dcgan_shapes(res):
    cfg = ModelConfig(arch="dcgan", resolution=res, num_styles=3, g_channels=8, d_channels=8)
    G, D = build_generator(cfg), build_discriminator(cfg)
    z, s = torch.randn(4, cfg.z_dim), torch.tensor([0, 1, 2, 0])
    x = G(z, s)
    assert x.shape == (4, 3, res, res)
    assert D(x, s).shape == (4,)


def test_dcgan_style_changes_output_and_latent_matters():
    torch.manual_seed(0)
    cfg = ModelConfig(arch="dcgan", resolution=16, num_styles=2, g_channels=8, d_channels=8)
    G = build_generator(cfg).eval()
    z = torch.randn(2, cfg.z_dim)
    with torch.no_grad():
        G.bn0.gain.weight[1] += 0.5  # make style 1 differ from style 0
        a, b = G(z, torch.tensor([0, 0])), G(z, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    assert not torch.allclose(a[0], a[1])
