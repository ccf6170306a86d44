"""Feature extractors for the evaluation metrics: uint8 images → feature vectors.

Three extractors share one interface (:class:`FeatureExtractor`: ``name``, ``dim``,
``input_size``, ``fingerprint``, ``__call__(uint8 (N, H, W, 3)) -> float64 (N, dim)``):

``classifier`` (the offline default)
    the penultimate layer of the style classifier the evaluation trains on the dataset's
    train split (:class:`ClassifierExtractor`): features that see this data. A random net
    rated blob-like samples of an emoji model FID 3.2 and coverage 0.79; on the features of
    a classifier trained on the same data (0.93 real-val accuracy) they scored 27 and 0.18,
    against 58 and 0.00 for noise (issue #21).

``inception``
    torchvision's ``inception_v3``, pool3 (the 2048-d average-pooled activations before
    the classifier), images resized to 299×299 (bilinear) and scaled to [-1, 1]. The
    weights come **only** from a local file the user gives (``--inception-weights PATH``
    or ``$RAY_GAN_INCEPTION_WEIGHTS``): a state dict saved with ``torch.save`` (read with
    ``torch.load(weights_only=True)``, which refuses pickled code) or a ``.safetensors``
    file. Nothing is downloaded. torchvision's ImageNet port of Inception is close to,
    but not the same network as, the TF graph of the FID papers, so even these FIDs
    match published numbers only approximately.

``random-cnn`` (a second opinion, by name only)
    a fixed 4-layer convolutional net whose weights are drawn from a fixed seed
    (He-normal, zero biases), on images resized to 64×64; 512-d features (the last
    layer average-pooled to 2×2). Naeem et al. 2020 show that such random embeddings
    still support fidelity/diversity metrics, notably on non-ImageNet data. The numbers
    are comparable between runs and models on any machine (the ``fingerprint`` — a
    sha256 of the weights — says when two reports used the same net), but FIDs on this
    feature space are **not** comparable with published Inception FIDs.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ray_gan.config import ExtractorName

INCEPTION_WEIGHTS_ENV = "RAY_GAN_INCEPTION_WEIGHTS"

RANDOM_CNN_SEED = 0
RANDOM_CNN_INPUT = 64
RANDOM_CNN_CHANNELS = (32, 64, 128, 128)
INCEPTION_INPUT = 299


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return dev


def weights_fingerprint(module: nn.Module) -> str:
    """sha256 over the module's parameters and buffers (names, shapes, float32 bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:".encode())
        h.update((t.float() if t.is_floating_point() else t).numpy().tobytes())
    return h.hexdigest()


class FeatureExtractor(ABC):
    """A frozen network: uint8 (N, H, W, 3) images → float64 (N, dim) features, batched."""

    name: str
    dim: int
    input_size: int
    description: str

    def __init__(self, net: nn.Module, device: str | torch.device | None, batch_size: int) -> None:
        self.device = _device(device)
        self.net = net.to(self.device).eval().requires_grad_(False)
        self.batch_size = batch_size
        self.fingerprint = weights_fingerprint(net)

    @abstractmethod
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """float (B, 3, input_size, input_size) in [0, 1] → the network's input."""

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
        out = np.empty((len(images), self.dim), dtype=np.float64)
        for i in range(0, len(images), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + self.batch_size])).to(self.device)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
                x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                  align_corners=False, antialias=True)
            out[i : i + len(x)] = self.net(self._prepare(x)).flatten(1).double().cpu().numpy()
        return out


class RandomCNN(nn.Module):
    """conv 3×3 stride 2 + ReLU, four times (64 → 4 px), then 2×2 average pooling."""

    def __init__(self, seed: int = RANDOM_CNN_SEED, channels: tuple[int, ...] = RANDOM_CNN_CHANNELS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, 2, 1), nn.ReLU()]
            c_in = c
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2))
        self.dim = c_in * 4
        # Weights from an explicit generator, not torch's default init (which may change
        # between versions): the same seed gives the same network everywhere.
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.body:
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                    m.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class RandomCNNExtractor(FeatureExtractor):
    name = "random-cnn"
    input_size = RANDOM_CNN_INPUT

    def __init__(self, device: str | torch.device | None = None, batch_size: int = 256,
                 seed: int = RANDOM_CNN_SEED) -> None:
        net = RandomCNN(seed)
        self.dim = net.dim
        self.description = (f"randomly initialised 4-layer CNN (He-normal weights from seed {seed}), "
                            f"{RANDOM_CNN_INPUT} px input, {net.dim}-d; FIDs on it are not comparable "
                            "with published Inception FIDs")
        super().__init__(net, device, batch_size)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 - 1.0


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Inception weights file not found: {path} (weights are never downloaded; "
                                f"give a local file with --inception-weights or ${INCEPTION_WEIGHTS_ENV})")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError for non-torch files, ...
            raise ValueError(f"{path}: not a weights-only torch state dict ({type(exc).__name__}); "
                             "pickled models are refused, save model.state_dict() instead") from exc
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    return state


def load_inception(path: str) -> nn.Module:
    """torchvision ``inception_v3`` with the weights in ``path``, ``fc`` removed (→ pool3)."""
    from torchvision.models import inception_v3

    state = _read_state_dict(path)
    num_classes = int(state["fc.weight"].shape[0]) if "fc.weight" in state else 1000
    net = inception_v3(weights=None, aux_logits=any(k.startswith("AuxLogits.") for k in state),
                       init_weights=False, transform_input=False, num_classes=num_classes)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: not torchvision inception_v3 weights: {str(exc)[:300]}") from exc
    net.fc = nn.Identity()
    return net.eval()


class InceptionExtractor(FeatureExtractor):
    name = "inception"
    input_size = INCEPTION_INPUT
    dim = 2048

    def __init__(self, weights_path: str, device: str | torch.device | None = None, batch_size: int = 64) -> None:
        self.weights_path = os.path.abspath(weights_path)
        self.description = (f"torchvision inception_v3 pool3 (2048-d, {INCEPTION_INPUT} px bilinear) "
                            f"from {self.weights_path}")
        super().__init__(load_inception(weights_path), device, batch_size)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) / 0.5


class _Penultimate(nn.Module):
    """A :class:`~ray_gan.evaluate.classifier.StyleNet` up to its linear head."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x).mean(dim=(2, 3))


class ClassifierExtractor(FeatureExtractor):
    """The penultimate layer of the evaluation's style classifier, trained on the dataset's
    own train split: features that see this data (the shapes and styles it holds), where a
    random net or an ImageNet net may not. Comparable only between reports with the same
    ``fingerprint`` (same dataset, seed, steps and device kind)."""

    name = "classifier"

    def __init__(self, net: nn.Module, input_size: int, val_accuracy: float | None, steps: int,
                 device: str | torch.device | None = None, batch_size: int = 512) -> None:
        self.input_size = input_size
        self.dim = int(net.head.in_features)
        acc = "no val split" if val_accuracy is None else f"real-val accuracy {val_accuracy:.3f}"
        self.description = (f"penultimate layer ({self.dim}-d) of the style classifier trained on this dataset's "
                            f"train split ({steps} steps; {acc}), {input_size} px input; FIDs on it compare "
                            "models of this dataset with each other, not with published Inception FIDs")
        super().__init__(_Penultimate(net), device, batch_size)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 - 1.0


def resolve_extractor(name: ExtractorName = "auto", inception_weights: str | None = None) -> str:
    """``auto``: ``inception`` when weights are given (argument or
    ``$RAY_GAN_INCEPTION_WEIGHTS``), else ``classifier``."""
    weights = inception_weights or os.environ.get(INCEPTION_WEIGHTS_ENV) or None
    return ("inception" if weights else "classifier") if name == "auto" else name


def make_extractor(name: ExtractorName = "auto", inception_weights: str | None = None,
                   device: str | torch.device | None = None) -> FeatureExtractor:
    """The ``inception`` or ``random-cnn`` extractor (``auto`` resolves by
    :func:`resolve_extractor`; the ``classifier`` extractor is built by the evaluation,
    from the classifier it trains: :class:`ClassifierExtractor`)."""
    weights = inception_weights or os.environ.get(INCEPTION_WEIGHTS_ENV) or None
    name = resolve_extractor(name, inception_weights)
    if name == "classifier":
        raise ValueError("the classifier extractor is built from a trained style classifier (ClassifierExtractor)")
    if name == "inception":
        if not weights:
            raise ValueError(f"the inception extractor needs a local weights file (--inception-weights PATH or "
                             f"${INCEPTION_WEIGHTS_ENV}); nothing is downloaded. Use --extractor random-cnn "
                             "to evaluate offline")
        return InceptionExtractor(weights, device)
    if name == "random-cnn":
        return RandomCNNExtractor(device)
    raise ValueError(f"unknown extractor {name!r}; choose auto, classifier, inception or random-cnn")
