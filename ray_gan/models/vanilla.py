"""The classic MLP GAN baseline (Goodfellow et al., 2014, as popularised by the Keras
examples), kept as the ``vanilla`` architecture.

G: z(100) → 256 → 512 → 1024 → 784 (= 28×28×1), LeakyReLU 0.2, BatchNorm, tanh.
D: 784 → 1024 → 512 → 256 → 1, LeakyReLU 0.2, sigmoid.

Two notes on faithful translation:
* Keras ``BatchNormalization(momentum=0.8)`` keeps 0.8 of the old running statistics;
  PyTorch's ``momentum`` is the weight of the *new* batch, so the equivalent is 0.2.
  (``nn.BatchNorm1d(512, 0.8)``, seen in many ports, sets ``eps=0.8`` instead.)
* D's sigmoid is applied by :meth:`VanillaDiscriminator.probability`; ``forward`` returns
  the logit so the loss can use the numerically stable ``log-sigmoid`` form of the same
  objective ``log D(x) + log(1 - D(G(z)))``.

With more than one style both nets are conditional: a style embedding is concatenated to
G's latent and to D's flattened input.
"""

from __future__ import annotations

import torch
from torch import nn

from ray_gan.config import ModelConfig

KERAS_BN_MOMENTUM = 0.8


class VanillaGenerator(nn.Module):
    style_tables = ("embed.weight",)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z_dim = cfg.z_dim
        self.embed = nn.Embedding(cfg.num_styles, cfg.embed_dim) if cfg.conditional else None
        in_dim = cfg.z_dim + (cfg.embed_dim if cfg.conditional else 0)
        out_dim = cfg.channels * cfg.resolution * cfg.resolution
        bn_m = 1.0 - KERAS_BN_MOMENTUM
        self.net = nn.Sequential(
            nn.Linear(in_dim, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, 512),
            nn.BatchNorm1d(512, momentum=bn_m),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 1024),
            nn.BatchNorm1d(1024, momentum=bn_m),
            nn.LeakyReLU(0.2),
            nn.Linear(1024, out_dim),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = z if self.embed is None else torch.cat([z, self.embed(style)], dim=1)
        r = self.cfg.resolution
        return self.net(h).view(-1, self.cfg.channels, r, r)


class VanillaDiscriminator(nn.Module):
    style_tables = ("embed.weight",)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.num_styles, cfg.embed_dim) if cfg.conditional else None
        in_dim = cfg.channels * cfg.resolution * cfg.resolution + (cfg.embed_dim if cfg.conditional else 0)
        self.net = nn.Sequential(
            nn.Linear(in_dim, 1024),
            nn.LeakyReLU(0.2),
            nn.Linear(1024, 512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, 1),
        )

    def input_layers(self) -> list[nn.Module]:
        """The hidden linear layers, from the input side (what ``freeze_d`` holds)."""
        return [m for m in self.net if isinstance(m, nn.Linear)][:-1]

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        if self.embed is not None:
            h = torch.cat([h, self.embed(style)], dim=1)
        return self.net(h).squeeze(1)

    def probability(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """D(x) in (0, 1): the sigmoid output of the classic discriminator."""
        return torch.sigmoid(self.forward(x, style))
