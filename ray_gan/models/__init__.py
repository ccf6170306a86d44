"""Generator/discriminator architectures. Models are plain ``nn.Module``s: no training,
storage or Ray code lives here (see ``ray_gan.train`` and ``ray_gan.generate``).

Every generator maps ``(z, style) -> image in [-1, 1]`` of shape ``(N, C, R, R)``; every
discriminator maps ``(image, style) -> logit`` of shape ``(N,)``.
"""

from __future__ import annotations

from torch import nn

from ray_gan.config import ModelConfig
from ray_gan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ray_gan.models.vanilla import VanillaDiscriminator, VanillaGenerator


def build_generator(cfg: ModelConfig) -> nn.Module:
    if cfg.arch == "dcgan":
        return DCGANGenerator(cfg)
    if cfg.arch == "vanilla":
        return VanillaGenerator(cfg)
    raise ValueError(f"unknown architecture {cfg.arch!r}")


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    if cfg.arch == "dcgan":
        return DCGANDiscriminator(cfg)
    if cfg.arch == "vanilla":
        return VanillaDiscriminator(cfg)
    raise ValueError(f"unknown architecture {cfg.arch!r}")


__all__ = ["build_generator", "build_discriminator"]
