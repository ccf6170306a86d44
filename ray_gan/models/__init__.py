"""Generator/discriminator architectures. Models are plain ``nn.Module``s: no training,
storage or Ray code lives here (see ``ray_gan.train`` and ``ray_gan.generate``).

Every generator maps ``(z, style) -> image in [-1, 1]`` of shape ``(N, C, R, R)``; every
discriminator maps ``(image, style) -> logit`` of shape ``(N,)``.
"""

from __future__ import annotations

from torch import nn

from ray_gan.config import ModelConfig
from ray_gan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ray_gan.models.stylegan import StyleGANDiscriminator, StyleGANGenerator
from ray_gan.models.vanilla import VanillaDiscriminator, VanillaGenerator


_ARCHS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "stylegan": (StyleGANGenerator, StyleGANDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
    "vanilla": (VanillaGenerator, VanillaDiscriminator),
}


def _arch(cfg: ModelConfig) -> tuple[type[nn.Module], type[nn.Module]]:
    if cfg.arch not in _ARCHS:
        raise ValueError(f"unknown architecture {cfg.arch!r}; known: {sorted(_ARCHS)}")
    return _ARCHS[cfg.arch]


def build_generator(cfg: ModelConfig) -> nn.Module:
    return _arch(cfg)[0](cfg)


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    return _arch(cfg)[1](cfg)


__all__ = ["build_generator", "build_discriminator"]
