"""Quality gates of a batch run (``BatchJobSpec.gates``), each optional:

* **near-duplicates** within a work unit: a 64-bit perceptual hash (pHash: the signs of
  the 8×8 lowest DCT frequencies of the 32×32 grey image against their median) within
  ``max_hamming`` bits of an image already accepted in the unit, or a root-mean-square
  pixel difference of at most ``max_rms`` from one (flat images' pHash bits are noise);
* **training copies**, by the memorisation audit's rule
  (:func:`ray_gan.evaluate.memorisation.near_copy_thresholds`): the relative distance
  to the nearest training image, in pixels, at or below the ``quantile`` of held-out
  val images' — per style where the style has val images;
* **style confidence**: the evaluation's style classifier
  (:func:`ray_gan.evaluate.classifier.train_style_classifier`, fitted on the train split)
  gives the asked-for style less than ``min_confidence``.

The driver calibrates once per job (:func:`calibrate`) and stores what it calibrated in
``OUT/gates.safetensors`` (per-style thresholds, classifier weights), so a re-run of the
job applies exactly the same gates; the training images themselves are read again from
the dataset, whose checksum ``job.json`` pins. The replicas get everything through the
object store (:class:`GateModels`) and apply it with :class:`GateChecker`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ray_gan import storage
from ray_gan.checkpoint import ModelInfo
from ray_gan.config import BatchGates

GATES_FILE = "gates.safetensors"
PHASH_SIZE = 32
PHASH_LOW = 8
# Reasons a candidate is rejected (the first word of a manifest row's ``skipped[].reason``).
NEAR_DUPLICATE, TRAINING_COPY, STYLE_CONFIDENCE = "near-duplicate", "training-copy", "style-confidence"
REASONS = (NEAR_DUPLICATE, TRAINING_COPY, STYLE_CONFIDENCE)
REJECTED = {r: f"rejected_{r.replace('-', '_')}" for r in REASONS}  # job.json's run counters


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (rows: frequencies)."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(PHASH_SIZE)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def phash(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) → uint64 (N,) perceptual hashes."""
    import torch.nn.functional as F

    if len(images) == 0:
        return np.zeros(0, np.uint64)
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    grey = (x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114).unsqueeze(1)
    if grey.shape[-1] != PHASH_SIZE:
        mode = "area" if grey.shape[-1] > PHASH_SIZE else "bilinear"
        grey = F.interpolate(grey, size=(PHASH_SIZE, PHASH_SIZE), mode=mode,
                             **({} if mode == "area" else {"align_corners": False}))
    g = grey[:, 0].double().numpy()
    low = (_DCT @ g @ _DCT.T)[:, :PHASH_LOW, :PHASH_LOW].reshape(len(g), -1)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").astype(np.uint64).ravel()


def hamming(h: int | np.uint64, others: np.ndarray) -> np.ndarray:
    """Bits in which hash ``h`` differs from each of ``others`` (uint64)."""
    x = np.bitwise_xor(np.asarray(others, np.uint64), np.uint64(h))
    return _POPCOUNT[x.view(np.uint8).reshape(len(x), 8)].sum(axis=1, dtype=np.int64)


@dataclass
class GateModels:
    """What every replica needs to apply the gates (built once per job in the driver)."""

    train_vectors: np.ndarray | None  # float32 (N, D) pixel vectors of the training sample
    train_keys: list[str]
    limits: np.ndarray | None  # float64 (num_styles,): near-copy threshold per model style
    relative_k: int
    classifier: dict[str, torch.Tensor] | None  # StyleNet weights
    classifier_input: int
    num_styles: int
    summary: dict = field(default_factory=dict)  # goes in job.json


def _dataset_uri(gates: BatchGates, info: ModelInfo) -> str:
    if gates.data is not None:
        return storage.normalize(gates.data)
    ds = info.raw.get("dataset") or {}
    if not ds.get("uri"):
        raise ValueError(f"model {info.uri} does not name its training dataset: set gates.data")
    return ds["uri"]


def calibrate(gates: BatchGates, info: ModelInfo, output: str, log: Callable[[str], None] = print) -> GateModels:
    """Fit (or, on a re-run, load from ``OUT/gates.safetensors``) what the gates need."""
    from safetensors.torch import load, save

    from ray_gan.data.dataset import read_dataset_info, style_mapping
    from ray_gan.evaluate.classifier import StyleNet, train_style_classifier
    from ray_gan.evaluate.memorisation import near_copy_thresholds, pixel_vectors
    from ray_gan.evaluate.realdata import real_images

    n_styles = len(info.styles)
    if not gates.needs_data:
        return GateModels(None, [], None, 0, None, 0, n_styles, {})
    data = _dataset_uri(gates, info)
    ds = read_dataset_info(data)
    style_map = style_mapping(ds.styles, info.styles)
    res, channels = info.config.resolution, info.config.channels
    train = real_images(ds, "train", style_map, res, channels, limit=gates.max_train)
    val = real_images(ds, "val", style_map, res, channels, per_style=2000) if ds.shard_uris("val") else None
    summary: dict = {"dataset": ds.uri, "dataset_checksum": ds.checksum, "train_images": len(train.images),
                     "val_images": len(val.images) if val is not None else 0}
    uri = storage.join(output, GATES_FILE)
    stored = load(storage.read_bytes(uri)) if storage.exists(uri) else None
    tensors: dict[str, torch.Tensor] = {}
    train_vectors, limits, classifier, size = None, None, None, 0
    if gates.training_copies is not None:
        g = gates.training_copies
        train_vectors = pixel_vectors(train.images)
        if stored is not None and "limits" in stored:
            limits = stored["limits"].numpy()
        else:
            cal = near_copy_thresholds(train_vectors, pixel_vectors(val.images) if val is not None else None,
                                       val.styles if val is not None else None, g.quantile, g.relative_k)
            limits = cal.limits(np.arange(n_styles), n_styles)
            summary["threshold_reference"] = cal.reference
        tensors["limits"] = torch.from_numpy(np.asarray(limits, np.float64))
        summary["near_copy_thresholds"] = {info.styles[k]: float(limits[k]) for k in range(n_styles)}
    if gates.style_confidence is not None:
        from ray_gan.evaluate.classifier import MAX_INPUT

        size = min(res, MAX_INPUT)
        if stored is not None and any(k.startswith("classifier.") for k in stored):
            classifier = {k[len("classifier."):]: v for k, v in stored.items() if k.startswith("classifier.")}
            StyleNet(n_styles).load_state_dict(classifier)  # the stored weights fit this model's styles
        else:
            fitted = train_style_classifier(train.images, train.styles, n_styles,
                                            val.images if val is not None else None,
                                            val.styles if val is not None else None,
                                            steps=gates.style_confidence.classifier_steps, seed=0)
            classifier = {k: v.detach().cpu().contiguous() for k, v in fitted.classifier.net.state_dict().items()}
            summary["classifier_val_accuracy"] = fitted.val.overall if fitted.val is not None else None
            log(f"gates: style classifier fitted on {len(train.images)} train images"
                + (f", val accuracy {fitted.val.overall:.3f}" if fitted.val is not None else ""))
        tensors.update({f"classifier.{k}": v for k, v in classifier.items()})
    blob = save(tensors)
    if stored is None:
        storage.write_bytes(uri, blob)
    summary["calibration_sha256"] = hashlib.sha256(blob).hexdigest()
    summary["calibration"] = uri
    return GateModels(train_vectors, list(train.keys), limits,
                      gates.training_copies.relative_k if gates.training_copies else 0, classifier, size, n_styles,
                      summary)


@dataclass
class Checked:
    """Per candidate: the first gate it fails (None: passes) and what the gates measured."""

    reasons: list[str | None]
    phash: np.ndarray  # uint64 (N,)
    train_score: np.ndarray | None  # relative distance to the training set (N,)
    confidence: np.ndarray | None  # classifier probability of the asked-for style (N,)
    pixels: np.ndarray | None  # float32 (N, D) pixel vectors, for the near-duplicate gate


class GateChecker:
    """Applies the per-image gates (training copies, style confidence) in a replica and
    hashes every candidate (near-duplicates are decided in order, by the caller)."""

    def __init__(self, gates: BatchGates | None, models: GateModels | None, device: torch.device) -> None:
        from ray_gan.evaluate.classifier import StyleNet

        self.gates, self.models, self.device = gates, models, device
        self.net = None
        if models is not None and models.classifier is not None:
            self.net = StyleNet(models.num_styles).to(device)
            self.net.load_state_dict(models.classifier)
            self.net.eval()

    @torch.no_grad()
    def check(self, images: np.ndarray, style: int) -> Checked:
        from ray_gan.evaluate.memorisation import near_copy_scores, pixel_vectors
        from ray_gan.images import from_uint8

        n = len(images)
        reasons: list[str | None] = [None] * n
        score = conf = None
        m, g = self.models, self.gates
        need_pixels = g is not None and (g.near_duplicates is not None or g.training_copies is not None)
        pixels = pixel_vectors(images) if need_pixels else None  # once, for both gates that use them
        if g is not None and g.training_copies is not None and m is not None and m.train_vectors is not None:
            score, _, index = near_copy_scores(pixels, m.train_vectors, m.relative_k, np.float32)
            limit = float(m.limits[style])
            for i in np.flatnonzero(score <= limit):
                key = m.train_keys[index[i]] if index[i] < len(m.train_keys) else ""
                reasons[i] = f"{TRAINING_COPY}: score {score[i]:.4f} <= {limit:.4f} (nearest train image " \
                             f"{key or index[i]})"
        if g is not None and g.style_confidence is not None and self.net is not None:
            x = from_uint8(images, self.device, size=m.classifier_input)
            conf = torch.softmax(self.net(x).float(), dim=1)[:, style].cpu().double().numpy()
            floor = g.style_confidence.min_confidence
            for i in np.flatnonzero(conf < floor):
                if reasons[i] is None:
                    reasons[i] = f"{STYLE_CONFIDENCE}: {conf[i]:.3f} < {floor:.3f}"
        return Checked(reasons, phash(images), score, conf,
                       pixels if g is not None and g.near_duplicates is not None else None)
