"""Reference: a plain reimplementation of the PyTorch examples' DCGAN (``dcgan/main.py``
in pytorch/examples), written from the published architecture and training loop.

G: z (100×1×1) → ConvT 4×4 s1 → ngf·8×4×4 → ConvT 4×4 s2 (×3) → ngf×32×32 →
   ConvT 4×4 s2 → 3×64×64, tanh; BatchNorm + ReLU after every ConvT but the last.
D: 3×64×64 → Conv 4×4 s2 → ndf×32×32 (LeakyReLU 0.2, no BN) → Conv 4×4 s2 (×3) with
   BatchNorm + LeakyReLU 0.2 → ndf·8×4×4 → Conv 4×4 s1 → 1, sigmoid.
ngf = ndf = 64, no biases, weights N(0, 0.02), BN scale N(1, 0.02). BCELoss; Adam lr 2e-4,
betas (0.5, 0.999); batch 64.

One training step is the example's: D on reals (label 1) and backward, D on
``G(z).detach()`` (label 0) and backward, D's Adam step; then D on the *same* fakes
(label 1) and backward through G, G's Adam step; the example's ``.item()`` reads of the
losses and D's outputs. Run as a module (``python -m bench.references.ref_dcgan``) it is
a worker for bench/train_throughput.py (protocol in bench/common.py); data are
synthetic images in [-1, 1], no DataLoader.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

NZ, NGF, NDF, NC = 100, 64, 64, 3


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(NGF * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NGF * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NGF * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NGF),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(NC, NDF, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NDF * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NDF * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NDF * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1, 1).squeeze(1)


def weights_init(m: nn.Module) -> None:
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class DCGANExample:
    """The example's models, loss, optimisers and one training iteration."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.netG = Generator().to(self.device)
        self.netG.apply(weights_init)
        self.netD = Discriminator().to(self.device)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step(self, real: torch.Tensor) -> dict[str, float]:
        real_label, fake_label = 1.0, 0.0
        netD, netG, criterion = self.netD, self.netG, self.criterion
        # (1) Update D: maximise log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        real_cpu = real.to(self.device)
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=self.device)
        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(batch_size, NZ, 1, 1, device=self.device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        self.optimizerD.step()
        # (2) Update G: maximise log(D(G(z)))
        netG.zero_grad()
        label.fill_(real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.optimizerG.step()
        return {"loss_D": errD.item(), "loss_G": errG.item(), "D_x": D_x, "D_G_z1": D_G_z1, "D_G_z2": D_G_z2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    from bench.common import param_counts, serve, set_threads

    t0 = time.perf_counter()
    set_threads(a.threads)
    torch.manual_seed(a.seed)
    ex = DCGANExample("cpu")
    pool = torch.rand(512, NC, 64, 64) * 2 - 1

    def step(i: int) -> None:
        idx = (torch.arange(a.batch) + i * a.batch) % len(pool)
        ex.step(pool[idx])

    n_params = param_counts(G=ex.netG, D=ex.netD)
    serve(step, a.batch, time.perf_counter() - t0, {"torch": torch.__version__, "params": n_params})


if __name__ == "__main__":
    main()
