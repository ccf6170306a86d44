"""A small style classifier, trained on the real TRAIN split, used to score generated images.

Style accuracy = the share of generated images that the classifier assigns to the style
they were asked for. The classifier is only as good as its accuracy on the real VAL
split, which is reported beside it: a generated-image accuracy close to the real-val
accuracy means the styles are as recognisable as real ones.

The net is deliberately tiny (three conv/BN/ReLU/max-pool stages, global average pool,
linear head; at most 32×32 input) and trains for a fixed number of steps (default 300
batches of 128, one-cycle learning rate) whatever the size of the training split (about
4 epochs of 10k images, on one CPU thread: :mod:`ray_gan.evaluate.threads`), passing
over the data in seeded random orders. Training is seeded (initialisation and
order) and does not touch torch's global RNG; the loss is class-balanced so that an
unbalanced training split does not bias predictions towards its majority styles. On CUDA
every operation used has a deterministic backward pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ray_gan.evaluate.threads import one_torch_thread
from ray_gan.images import from_uint8

MAX_INPUT = 32


def _to_input(images: np.ndarray, size: int, device: torch.device) -> torch.Tensor:
    return from_uint8(images, device, size=size)


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]


class StyleNet(nn.Module):
    def __init__(self, num_styles: int, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(*_block(3, width), *_block(width, 2 * width), *_block(2 * width, 4 * width))
        self.head = nn.Linear(4 * width, num_styles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A plain mean, not AdaptiveAvgPool2d, whose CUDA backward is not deterministic.
        return self.head(self.features(x).mean(dim=(2, 3)))


def _balanced_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross entropy written with a one-hot product: the same value as
    ``F.cross_entropy(..., weight=...)``, with a backward pass that is deterministic on CUDA."""
    w = weight[target]
    picked = (F.one_hot(target, logits.shape[1]).to(logits.dtype) * F.log_softmax(logits, dim=1)).sum(dim=1)
    return -(w * picked).sum() / w.sum()


@dataclass
class StyleClassifier:
    net: StyleNet
    num_styles: int
    input_size: int
    device: torch.device

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """uint8 (N, H, W, 3) → predicted style index (N,)."""
        self.net.eval()
        with one_torch_thread():
            out = [self.net(_to_input(images[i : i + batch_size], self.input_size, self.device)).argmax(1).cpu()
                   for i in range(0, len(images), batch_size)]
        return torch.cat(out).numpy().astype(np.int64) if out else np.zeros(0, np.int64)


@dataclass(frozen=True)
class Accuracy:
    overall: float | None
    per_style: list[float | None]  # None where a style has no images
    counts: list[int]
    confusion: list[list[int]]  # [target style][predicted style] → number of images


def accuracy(predicted: np.ndarray, target: np.ndarray, num_styles: int) -> Accuracy:
    predicted, target = np.asarray(predicted), np.asarray(target)
    hit = predicted == target
    counts = [int((target == s).sum()) for s in range(num_styles)]
    per_style = [float(hit[target == s].mean()) if counts[s] else None for s in range(num_styles)]
    confusion = np.zeros((num_styles, num_styles), np.int64)
    np.add.at(confusion, (target, predicted), 1)
    return Accuracy(float(hit.mean()) if len(hit) else None, per_style, counts, confusion.tolist())


@dataclass(frozen=True)
class FittedClassifier:
    classifier: StyleClassifier
    val: Accuracy | None  # accuracy on the real validation images (None without any)
    train_images: int
    steps: int
    batch_size: int
    seconds: float

    @property
    def epochs(self) -> float:
        return self.steps * self.batch_size / max(1, self.train_images)


def train_style_classifier(train_images: np.ndarray, train_styles: np.ndarray, num_styles: int,
                           val_images: np.ndarray | None = None, val_styles: np.ndarray | None = None,
                           steps: int = 300, seed: int = 0, device: str | torch.device = "cpu",
                           batch_size: int = 128, lr: float = 3e-3) -> FittedClassifier:
    """Fit on real training images (uint8 NHWC, style indices in ``[0, num_styles)``)."""
    if len(train_images) < 2:
        raise ValueError("the style classifier needs at least two training images")
    t0 = time.perf_counter()
    device = torch.device(device)
    size = min(int(train_images.shape[1]), MAX_INPUT)
    styles = torch.as_tensor(np.asarray(train_styles), dtype=torch.long)
    counts = torch.bincount(styles, minlength=num_styles).double()
    weight = (len(styles) / (num_styles * counts.clamp(min=1))).float().to(device)
    batch_size = min(batch_size, len(styles))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = StyleNet(num_styles).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(len(styles), generator=g).numpy(), 0
    net.train()
    with one_torch_thread():  # small batches: see ray_gan.evaluate.threads
        for _ in range(steps):
            if pos + batch_size > len(order):  # next pass over the data, in a new order
                order, pos = torch.randperm(len(styles), generator=g).numpy(), 0
            idx = np.sort(order[pos : pos + batch_size])
            pos += batch_size
            loss = _balanced_cross_entropy(net(_to_input(train_images[idx], size, device)),
                                           styles[idx].to(device), weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    clf = StyleClassifier(net, num_styles, size, device)
    val = None
    if val_images is not None and val_styles is not None and len(val_images):
        val = accuracy(clf.predict(val_images), np.asarray(val_styles), num_styles)
    return FittedClassifier(clf, val, len(styles), steps, batch_size, time.perf_counter() - t0)
