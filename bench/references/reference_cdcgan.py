"""The quality benchmark's baseline: a conditional DCGAN written plainly, as in the
well-known PyTorch DCGAN example (pytorch/examples ``dcgan/main.py``: transposed-conv G
with BatchNorm + ReLU and tanh, conv D with BatchNorm + LeakyReLU 0.2 and sigmoid, BCE,
Adam lr 2e-4 betas (0.5, 0.999), N(0, 0.02) init), scaled to 32×32 and conditioned with a
label embedding: G gets ``[z, embed(label)]``, D gets the image plus an embedded label
plane as a fourth input channel. Written from the published architecture, not copied.

One process, ``torch.set_num_threads(threads)``, all training images in memory, no
EMA, no regularisation: the plain recipe a team would write first.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ray_gan.checkpoint import ModelInfo
from ray_gan.config import ModelConfig
from ray_gan.generate.render import RENDER_BATCH, latents_from_seeds
from ray_gan.images import to_uint8

NZ, NGF, NDF, EMBED = 100, 64, 64, 50


class Generator(nn.Module):
    def __init__(self, num_styles: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_styles, EMBED)
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ + EMBED, NGF * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(NGF * 4), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF), nn.ReLU(True),
            nn.ConvTranspose2d(NGF, 3, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.main(torch.cat([z, self.embed(y)], dim=1)[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, num_styles: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_styles, 32 * 32)
        self.main = nn.Sequential(
            nn.Conv2d(4, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 4, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        plane = self.embed(y).view(-1, 1, 32, 32)
        return self.main(torch.cat([x, plane], dim=1)).view(-1)


def weights_init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@dataclass
class TrainStats:
    steps: int
    seconds: float
    images_per_s: float


def train(images: np.ndarray, styles: np.ndarray, num_styles: int, budget_s: float, batch: int = 64,
          threads: int = 2, seed: int = 0, device: str = "cpu") -> tuple[Generator, TrainStats]:
    """``images`` uint8 (N, 32, 32, 3); trains for ``budget_s`` seconds of wall clock."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = torch.device(device)
    G, D = Generator(num_styles).to(dev), Discriminator(num_styles).to(dev)
    G.apply(weights_init)
    D.apply(weights_init)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(dev)
    y_all = torch.from_numpy(styles.astype(np.int64)).to(dev)
    gen = torch.Generator().manual_seed(seed)
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < budget_s:
        perm = torch.randperm(len(x_all), generator=gen).to(dev)
        for i in range(0, len(perm) - batch + 1, batch):
            idx = perm[i : i + batch]
            real = x_all[idx].float().div(127.5).sub(1)
            y = y_all[idx]
            # D: reals → 1, fakes → 0
            D.zero_grad()
            err_real = bce(D(real, y), torch.ones(batch, device=dev))
            err_real.backward()
            fake = G(torch.randn(batch, NZ, device=dev), y)
            err_fake = bce(D(fake.detach(), y), torch.zeros(batch, device=dev))
            err_fake.backward()
            opt_d.step()
            # G: fakes → 1
            G.zero_grad()
            err_g = bce(D(fake, y), torch.ones(batch, device=dev))
            err_g.backward()
            opt_g.step()
            step += 1
            if time.perf_counter() - t0 >= budget_s:
                break
    dt = time.perf_counter() - t0
    return G.cpu().eval(), TrainStats(step, round(dt, 1), round(step * batch / dt, 1))


WEIGHTS = "reference_generator.safetensors"


def save(G: Generator, styles: list[str], steps: int, out) -> None:
    """G's weights (safetensors) with the style names and step in its metadata."""
    Path(out).mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    save_file(state, str(Path(out) / WEIGHTS), metadata={"styles": json.dumps(list(styles)), "steps": str(steps)})


def load(out) -> tuple[Generator, list[str], int]:
    path = str(Path(out) / WEIGHTS)
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    styles = json.loads(meta["styles"])
    G = Generator(len(styles))
    G.load_state_dict(load_file(path))
    return G.eval(), styles, int(meta["steps"])


class ReferenceRenderer:
    """The renderer interface ``ray_gan.evaluate`` uses (``info``, ``render``, ``device``)."""

    def __init__(self, G: Generator, styles: list[str], uri: str, step: int, device: str = "cpu") -> None:
        weights = b"".join(p.detach().cpu().numpy().tobytes() for p in G.state_dict().values())
        digest = hashlib.sha256(weights).hexdigest()
        self.device = torch.device(device)
        self.G = G.to(self.device).eval()
        self.info = ModelInfo(uri=uri, config=ModelConfig(arch="dcgan", resolution=32, z_dim=NZ,
                                                          num_styles=len(styles)),
                              styles=list(styles), step=step, checkpoint=uri, weights_sha256=digest, raw={})

    @torch.no_grad()
    def render(self, styles: Sequence[int], seeds: Sequence[int], truncation: float = 1.0) -> np.ndarray:
        z = latents_from_seeds(seeds, NZ).to(self.device) * float(truncation)
        s = torch.as_tensor(list(styles), dtype=torch.long, device=self.device)
        out = [to_uint8(self.G(z[i : i + RENDER_BATCH], s[i : i + RENDER_BATCH]))
               for i in range(0, len(z), RENDER_BATCH)]
        return np.concatenate(out) if out else np.zeros((0, 32, 32, 3), np.uint8)
