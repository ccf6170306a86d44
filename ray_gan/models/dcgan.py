"""Style-conditional DCGAN (Radford et al., 2015) with a projection discriminator
(Miyato & Koyama, 2018) and spectral normalisation in D (Miyato et al., 2018).

G: z → linear → 4×4 → (×2 transposed conv, style-conditional BN, ReLU)* → ×2 transposed
   conv to RGB → tanh (the paper's layout: widths 8g, 4g, 2g, g then the image).
D: (conv stride 2, LeakyReLU 0.2)* down to 4×4 → minibatch-stddev channel → φ(x);
   logit = w·φ(x) + embed(style)·φ(x).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ray_gan.config import ModelConfig
from ray_gan.models.layers import MinibatchStdDev

_MAX_CH = 512


def _n_blocks(resolution: int) -> int:
    return int(math.log2(resolution)) - 2  # 4×4 → resolution


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per style (de Vries et al., 2017;
    as used by SN-GAN and BigGAN). Unconditional when ``num_styles`` is 0."""

    def __init__(self, channels: int, num_styles: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=num_styles == 0)
        self.gain = nn.Embedding(num_styles, channels) if num_styles else None
        self.bias = nn.Embedding(num_styles, channels) if num_styles else None
        if self.gain is not None:
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = self.bn(x)
        if self.gain is None:
            return h
        # one fused op (forward and backward ~2.5x faster on CPU than multiply then add)
        return torch.addcmul(self.bias(style)[:, :, None, None], h, self.gain(style)[:, :, None, None])


class DCGANGenerator(nn.Module):
    style_tables = ("*.gain.weight", "*.bias.weight")  # per-style BN scale and shift

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z_dim = cfg.z_dim
        n = _n_blocks(cfg.resolution)
        chans = [min(cfg.g_channels * 2 ** (n - 1 - i), _MAX_CH) for i in range(n)]
        k = cfg.num_styles if cfg.conditional else 0
        self.c0 = chans[0]
        self.fc = nn.Linear(cfg.z_dim, 4 * 4 * chans[0], bias=False)
        self.bn0 = ConditionalBatchNorm2d(chans[0], k)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1, bias=False)
                                 for i in range(n - 1))
        self.bns = nn.ModuleList(ConditionalBatchNorm2d(chans[i + 1], k) for i in range(n - 1))
        # The last doubling goes straight to the image (as in the DCGAN paper): no
        # full-resolution hidden layer, the most expensive layer of a wider design.
        self.to_rgb = nn.ConvTranspose2d(chans[-1], cfg.channels, 4, 2, 1)
        _init_weights(self)

    def forward(self, z: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn0(self.fc(z).unflatten(1, (self.c0, 4, 4)), style))
        for up, bn in zip(self.ups, self.bns):
            h = torch.relu(bn(up(h), style))
        return torch.tanh(self.to_rgb(h))


class DCGANDiscriminator(nn.Module):
    style_tables = ("embed.parametrizations.weight.original", "embed.parametrizations.weight.0._u")

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = _n_blocks(cfg.resolution)
        layers: list[nn.Module] = []
        c_in = cfg.channels
        for i in range(n):
            c_out = min(cfg.d_channels * 2**i, _MAX_CH)
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.mbstd = MinibatchStdDev()
        feat_dim = (c_in + 1) * 4 * 4
        self.head = spectral_norm(nn.Linear(feat_dim, 1))
        self.embed = spectral_norm(nn.Embedding(cfg.num_styles, feat_dim)) if cfg.conditional else None
        _init_weights(self)

    def input_layers(self) -> list[nn.Module]:
        """The strided convolutions, from the input side (what ``freeze_d`` holds)."""
        return [m for m in self.features if isinstance(m, nn.Conv2d)]

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        phi = self.mbstd(self.features(x)).flatten(1)
        out = self.head(phi).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(style) * phi).sum(dim=1)
        return out


def _init_weights(module: nn.Module) -> None:
    # DCGAN paper: N(0, 0.02) for conv weights, N(1, 0.02) for BN scale.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
