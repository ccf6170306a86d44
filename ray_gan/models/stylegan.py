"""A StyleGAN2-class conditional generator and a residual projection discriminator.

Written from the papers, not from any published code:

* Karras et al. 2019, "A Style-Based Generator Architecture for GANs": a mapping network
  z → w, one style (an affine map of w) per layer, per-layer noise, a learned constant
  input, style mixing, truncation in W;
* Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN": weight
  modulation/demodulation instead of AdaIN, the skip-connection generator (one RGB output
  per resolution, upsampled and summed), the residual discriminator, equalised learning
  rate, a 100× lower learning rate in the mapping network;
* Miyato & Koyama 2018, "cGANs with Projection Discriminator": D's conditional head.

Conditioning G: the style label's embedding (normalised) is concatenated with the
normalised z before the mapping network, so w carries both content (from z) and style
(from the label). Every style keeps its own running mean of w (``w_avg[style]``):
truncation pulls w towards *its style's* mean, so a truncated image stays in its style.

Modulated convolution is computed in its "non-fused" form: scale the input channels by
the style, run one ordinary convolution for the whole batch, scale the output channels
by the demodulation factor. It is exactly the paper's per-sample weight
``w'_ijk = s_i·w_ijk / sqrt(Σ_ik (s_i·w_ijk)² + ε)`` and, on CPU, much faster than a
grouped convolution with per-sample weights.

Noise: random in training; in eval mode each layer uses a fixed noise image stored with
the weights (``noise_const``), so rendering is a pure function of (weights, style, seed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ray_gan.config import ModelConfig
from ray_gan.models.layers import MinibatchStdDev

SQRT2 = math.sqrt(2.0)
W_AVG_BETA = 0.995  # running mean of w per style, as in StyleGAN


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * SQRT2  # gain keeps the activations' scale


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def resolutions(resolution: int) -> list[int]:
    """Feature-map sizes from 4×4 up to the output: [4, 8, ..., resolution]."""
    return [2**k for k in range(2, int(math.log2(resolution)) + 1)]


def style_inputs(resolution: int) -> int:
    """How many style inputs (ws) the generator takes: conv4, then two per block after it."""
    return 2 * len(resolutions(resolution))


class EqualLinear(nn.Module):
    """Linear layer with the weight scaled at run time by ``lr_mul / sqrt(fan_in)``
    (equalised learning rate)."""

    def __init__(self, in_f: int, out_f: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_f, in_f) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_f,), float(bias_init) / lr_mul))
        self.w_gain, self.b_gain, self.activate = lr_mul / math.sqrt(in_f), lr_mul, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.w_gain, self.bias * self.b_gain)
        return _lrelu(out) if self.activate else out


class EqualConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, k: int, bias: bool = True, activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.gain, self.pad, self.activate = 1 / math.sqrt(in_ch * k * k), k // 2, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, self.weight * self.gain, self.bias, padding=self.pad)
        return _lrelu(out) if self.activate else out


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are modulated per sample by a style from w, and
    (optionally) demodulated to unit expected output variance."""

    def __init__(self, in_ch: int, out_ch: int, k: int, w_dim: int, demodulate: bool = True,
                 up: bool = False) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, k, k))
        self.gain, self.pad, self.demodulate, self.up = 1 / math.sqrt(in_ch * k * k), k // 2, demodulate, up

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)  # (N, in)
        weight = self.weight * self.gain
        x = x * s[:, :, None, None].to(x.dtype)
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = F.conv2d(x, weight.to(x.dtype), padding=self.pad)
        if self.demodulate:
            d = (s.float().square() @ weight.float().square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()  # (N, out)
            x = x * d[:, :, None, None].to(x.dtype)
        return x


class SynthesisLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, up: bool, noise_seed: int | None
                 ) -> None:
        """``noise_seed`` None: no noise input (``ModelConfig.noise_inputs`` off)."""
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim, up=up)
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.noise_inputs = noise_seed is not None
        if self.noise_inputs:
            self.noise_strength = nn.Parameter(torch.zeros(()))
            g = torch.Generator().manual_seed(noise_seed)
            self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution, generator=g))

    def forward(self, x: torch.Tensor, w: torch.Tensor, random_noise: bool) -> torch.Tensor:
        x = self.conv(x, w) + self.bias[None, :, None, None].to(x.dtype)
        if self.noise_inputs:
            if random_noise:
                noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
            else:
                noise = self.noise_const.to(x.dtype)
            x = x + noise * self.noise_strength.to(x.dtype)
        return _lrelu(x)


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None].to(x.dtype)


class SynthesisBlock(nn.Module):
    """One resolution doubling: two modulated 3×3 convs (the first upsamples) and an
    RGB output added to the upsampled RGB of the block below (skip generator)."""

    def __init__(self, in_ch: int, out_ch: int, img_ch: int, w_dim: int, resolution: int, noise: bool) -> None:
        super().__init__()
        self.conv0 = SynthesisLayer(in_ch, out_ch, w_dim, resolution, up=True,
                                    noise_seed=2 * resolution if noise else None)
        self.conv1 = SynthesisLayer(out_ch, out_ch, w_dim, resolution, up=False,
                                    noise_seed=2 * resolution + 1 if noise else None)
        self.to_rgb = ToRGB(out_ch, img_ch, w_dim)

    def forward(self, x, img, ws, random_noise: bool):
        x = self.conv0(x, ws[:, 0], random_noise)
        x = self.conv1(x, ws[:, 1], random_noise)
        img = F.interpolate(img, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x, img + self.to_rgb(x, ws[:, 2]).to(img.dtype)


class MappingNetwork(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.num_styles, cfg.embed_dim) if cfg.conditional else None
        in_f = cfg.z_dim + (cfg.embed_dim if cfg.conditional else 0)
        self.layers = nn.ModuleList(
            EqualLinear(in_f if i == 0 else cfg.w_dim, cfg.w_dim, lr_mul=0.01, activate=True)
            for i in range(cfg.mapping_layers)
        )

    def forward(self, z: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = _normalize_2nd_moment(z.float())
        if self.embed is not None:
            x = torch.cat([x, _normalize_2nd_moment(self.embed(style))], dim=1)
        for layer in self.layers:
            x = layer(x)
        return x


class StyleGANGenerator(nn.Module):
    """``G(z, style)`` → image; also ``mapping``, ``synthesis`` and ``truncate`` for the
    style controls (truncation, mixing, interpolation, edit directions)."""

    # State-dict entries indexed by style (row i = style i): remapped by name when a
    # model is fine-tuned onto a dataset with other styles.
    style_tables = ("mapping.embed.weight", "w_avg")

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg, self.z_dim, self.w_dim = cfg, cfg.z_dim, cfg.w_dim
        res = resolutions(cfg.resolution)
        ch = {r: min(cfg.g_channels * cfg.resolution // r, cfg.max_channels) for r in res}
        self.mapping = MappingNetwork(cfg)
        self.const = nn.Parameter(torch.randn(1, ch[4], 4, 4))
        self.conv4 = SynthesisLayer(ch[4], ch[4], cfg.w_dim, 4, up=False, noise_seed=1 if cfg.noise_inputs else None)
        self.rgb4 = ToRGB(ch[4], cfg.channels, cfg.w_dim)
        self.blocks = nn.ModuleList(SynthesisBlock(ch[r // 2], ch[r], cfg.channels, cfg.w_dim, r, cfg.noise_inputs)
                                    for r in res[1:])
        # ws[0]: conv4; ws[1]: rgb4 and the next block's first conv; block i uses ws[2i+1 .. 2i+3].
        self.num_ws = style_inputs(cfg.resolution)
        self.register_buffer("w_avg", torch.zeros(cfg.num_styles, cfg.w_dim))

    # -- layers by resolution (for mixing and layer-wise blending) ------------------------
    def ws_resolution(self) -> list[int]:
        """The feature-map size of the convolution each entry of ``ws`` drives (entry
        2i+1 also drives the RGB output of the block below; the last, the final RGB)."""
        res = resolutions(self.cfg.resolution)
        return [4] + [r for r in res[1:] for _ in range(2)] + [res[-1]]

    def layer_range(self, name: str) -> list[int]:
        """Indices into ``ws`` for ``coarse`` (the lower half of the resolutions),
        ``fine`` (the upper half), ``all``, or an explicit ``A:B`` slice."""
        if ":" in name:
            a, b = (int(v) if v else None for v in name.split(":", 1))
            idx = list(range(self.num_ws))[slice(a, b)]
            if not idx:
                raise ValueError(f"layer range {name!r} selects none of the {self.num_ws} style inputs")
            return idx
        res = resolutions(self.cfg.resolution)
        coarse = set(res[: (len(res) + 1) // 2])
        per_ws = self.ws_resolution()
        if name == "coarse":
            return [i for i, r in enumerate(per_ws) if r in coarse]
        if name == "fine":
            return [i for i, r in enumerate(per_ws) if r not in coarse]
        if name == "all":
            return list(range(self.num_ws))
        raise ValueError(f"unknown layer range {name!r}: use coarse, fine, all or A:B (0..{self.num_ws})")

    # -- the three stages ------------------------------------------------------------------
    def truncate(self, w: torch.Tensor, style: torch.Tensor, psi: float | torch.Tensor) -> torch.Tensor:
        """Move w towards its style's mean latent: ``w_avg[s] + psi·(w − w_avg[s])``."""
        avg = self.w_avg[style]
        return avg + (w - avg) * psi

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor, style: torch.Tensor) -> None:
        """Running mean of w per style (called by the training step)."""
        sums = torch.zeros_like(self.w_avg).index_add_(0, style, w.float())
        counts = torch.bincount(style, minlength=self.w_avg.shape[0]).to(sums.dtype)
        seen = counts > 0
        batch_mean = sums[seen] / counts[seen, None]
        self.w_avg[seen] = batch_mean.lerp(self.w_avg[seen], W_AVG_BETA)

    def synthesis(self, ws: torch.Tensor, noise: str | None = None) -> torch.Tensor:
        """``ws`` (N, num_ws, w_dim) → image (N, C, R, R). ``noise``: ``random`` or
        ``const``; default random in training, const in eval."""
        random_noise = (noise or ("random" if self.training else "const")) == "random"
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        x = self.conv4(x, ws[:, 0], random_noise)
        img = self.rgb4(x, ws[:, 1])
        for i, block in enumerate(self.blocks):
            x, img = block(x, img, ws[:, 2 * i + 1 : 2 * i + 4], random_noise)
        return torch.tanh(img) if self.cfg.bounded_output else img

    def forward(self, z: torch.Tensor, style: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        w = self.mapping(z, style)
        if truncation != 1.0:
            w = self.truncate(w, style, truncation)
        return self.synthesis(w[:, None].expand(-1, self.num_ws, -1))


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3×3 convs then 2× average-pool down, plus a 1×1 skip."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(in_ch, in_ch, 3, activate=True)
        self.conv1 = EqualConv2d(in_ch, out_ch, 3, activate=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(self.conv1(self.conv0(x)), 2)
        return (x + y) / SQRT2


def same_style_packs(style: torch.Tensor, pack: int) -> torch.Tensor:
    """Indices that arrange a batch for a packing discriminator: samples grouped by style
    (stable order), each style cut to a multiple of ``pack``, so every run of ``pack``
    consecutive samples shares one style. Leaves out at most ``pack - 1`` samples per
    style (the training step carries those over to its next batch)."""
    if pack == 1:
        return torch.arange(style.shape[0], device=style.device)
    order = torch.argsort(style, stable=True)
    sorted_style = style[order]
    counts = torch.bincount(sorted_style)
    first = torch.cumsum(counts, 0) - counts  # where each style's run starts
    rank = torch.arange(style.shape[0], device=style.device) - first[sorted_style]
    return order[rank < (counts // pack * pack)[sorted_style]]


class StyleGANDiscriminator(nn.Module):
    """Residual D with minibatch-stddev and a projection head:
    ``logit = ψ(φ(x)) + <embed(style), φ(x)> / sqrt(dim φ)``; when conditional, also a
    style classifier on the same features, ``classify(φ(x))`` (the auxiliary head of
    AC-GAN, Odena et al. 2017; used when the train config's ``style_loss`` > 0).

    With ``pack`` > 1 (PacGAN, Lin et al. 2018) D judges packs: each run of ``pack``
    consecutive images, which must share a style (arrange a batch with
    :func:`same_style_packs`), is stacked along channels into one input, and the logits
    are one per pack. Two samples of a generator that ignores its latent are then the
    same image side by side — what no real pack of two different characters looks like —
    which the minibatch-stddev channel alone, one scalar averaged over all features,
    let D overlook (bench/collapse_probe.py)."""

    style_tables = ("embed.weight", "classify.weight", "classify.bias")
    # A base model trained before the style head existed lacks it: fine-tuning starts it fresh.
    optional_heads = ("classify.*",)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        res = resolutions(cfg.resolution)
        ch = {r: min(cfg.d_channels * cfg.resolution // r, cfg.max_channels) for r in res}
        self.pack = cfg.pack
        self.from_rgb = EqualConv2d(cfg.channels * cfg.pack, ch[cfg.resolution], 1, activate=True)
        self.blocks = nn.Sequential(*(DiscriminatorBlock(ch[r], ch[r // 2]) for r in reversed(res[1:])))
        self.mbstd = MinibatchStdDev()
        self.conv = EqualConv2d(ch[4] + 1, ch[4], 3, activate=True)
        self.fc = EqualLinear(ch[4] * 16, ch[4], activate=True)
        self.out = EqualLinear(ch[4], 1)
        self.embed = nn.Embedding(cfg.num_styles, ch[4]) if cfg.conditional else None
        self.classify = EqualLinear(ch[4], cfg.num_styles) if cfg.conditional else None
        self.feat_dim = ch[4]

    def input_layers(self) -> list[nn.Module]:
        """The layers on the input side, in order (what fine-tuning with ``freeze_d`` holds):
        from-RGB, then the residual blocks from the highest resolution down."""
        return [self.from_rgb, *self.blocks]

    def forward(self, x: torch.Tensor, style: torch.Tensor, classes: bool = False):
        """Real/fake logits (N / pack,); with ``classes``, also style logits (N / pack, num_styles)."""
        if self.pack > 1:
            n, c, height, width = x.shape
            if n % self.pack:
                raise ValueError(f"a packing discriminator needs a batch that is a multiple of {self.pack}, got {n}")
            packed = x.reshape(n // self.pack, self.pack * c, height, width)
            channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            x = packed.contiguous(memory_format=torch.channels_last) if channels_last else packed
            style = style[:: self.pack]
        h = self.blocks(self.from_rgb(x))
        phi = self.fc(self.conv(self.mbstd(h)).flatten(1))
        out = self.out(phi).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(style).to(phi.dtype) * phi).sum(dim=1) / math.sqrt(self.feat_dim)
        if classes:
            return out, self.classify(phi)
        return out
