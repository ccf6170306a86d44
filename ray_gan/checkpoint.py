"""The model directory: checkpoints in safetensors, ``model.json``, sample grids.

Layout under a MODEL URI::

    model.json                         latest complete checkpoint (a copy of its model.json)
    checkpoints/step-00000500/
        generator.safetensors          G (training copy)
        generator_ema.safetensors      EMA of G: what generate, batch and serve use
        discriminator.safetensors      D
        optimizer.pt                   Adam states, read with torch.load(weights_only=True)
        rng-rank-0.pt ...              per-worker RNG states, same
        model.json                     written last: its presence marks the checkpoint complete
    samples/step-00000500.png          per-style sample grid (rows = styles)

Weights are never pickled; optimiser and RNG state are plain tensors and dicts loaded
with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ray_gan import storage
from ray_gan.config import ModelConfig

MODEL_JSON = "model.json"
DISCRIMINATOR_FILE = "discriminator.safetensors"
SCHEMA_VERSION = 1


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def checkpoint_uri(model_uri: str, step: int) -> str:
    return storage.join(model_uri, "checkpoints", checkpoint_name(step))


def state_dict_bytes(module: torch.nn.Module) -> bytes:
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    return st_save(tensors)


def load_state_dict_bytes(module: torch.nn.Module, data: bytes) -> None:
    module.load_state_dict(st_load(data))


def torch_state_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def load_torch_state(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ModelInfo:
    """What ``model.json`` says about a trained model."""

    uri: str
    config: ModelConfig
    styles: list[str]
    step: int
    checkpoint: str  # URI of the checkpoint directory
    weights_sha256: str  # sha256 of generator_ema.safetensors
    raw: dict

    def style_indices(self, names: list[str] | None) -> list[int]:
        """Map style names to indices; ``None`` or ``["all"]`` means every style."""
        if not names or names == ["all"]:
            return list(range(len(self.styles)))
        unknown = [n for n in names if n not in self.styles]
        if unknown:
            raise ValueError(f"unknown style(s) {unknown}; this model has {self.styles}")
        return [self.styles.index(n) for n in names]


def read_model_info(model_uri: str) -> ModelInfo:
    uri = storage.join(model_uri, MODEL_JSON)
    if not storage.exists(uri):
        raise storage.StorageError(f"no trained model at {model_uri} (missing {MODEL_JSON})")
    raw = storage.read_json(uri)
    return ModelInfo(
        uri=storage.normalize(model_uri),
        config=ModelConfig(**raw["model_config"]),
        styles=list(raw["styles"]),
        step=int(raw["step"]),
        checkpoint=storage.join(model_uri, "checkpoints", raw["checkpoint"]),
        weights_sha256=raw["weights_sha256"]["generator_ema"],
        raw=raw,
    )


def latest_step(model_uri: str) -> int | None:
    """Step of the latest complete checkpoint, or None when the model has none yet."""
    if not storage.exists(storage.join(model_uri, MODEL_JSON)):
        return None
    return int(storage.read_json(storage.join(model_uri, MODEL_JSON))["step"])


def write_generator_model(model_uri: str, G: torch.nn.Module, config: ModelConfig, styles: list[str], step: int,
                          extra: dict | None = None, D: torch.nn.Module | None = None) -> ModelInfo:
    """A model directory holding an EMA generator (blended, imported or test models):
    what ``generate``, ``batch``, ``serve``, ``evaluate`` and ``export`` need; with ``D``
    also a discriminator, so ``finetune`` can start from it. Training cannot resume it
    (no optimiser state)."""
    if storage.exists(storage.join(model_uri, MODEL_JSON)):
        raise storage.StorageError(f"{model_uri} already holds a model; choose another output")
    data = state_dict_bytes(G)
    cdir = checkpoint_uri(model_uri, step)
    storage.write_bytes(storage.join(cdir, "generator_ema.safetensors"), data)
    digests = {"generator_ema": sha256_hex(data)}
    if D is not None:
        d_data = state_dict_bytes(D)
        storage.write_bytes(storage.join(cdir, DISCRIMINATOR_FILE), d_data)
        digests["discriminator"] = sha256_hex(d_data)
    doc = {"schema_version": SCHEMA_VERSION, "step": step, "checkpoint": checkpoint_name(step),
           "model_config": config.model_dump(), "styles": list(styles), "resolution": config.resolution,
           "dataset": None, "weights_sha256": digests, "sample_grid": None,
           "history": [], **(extra or {})}
    storage.write_json(storage.join(cdir, MODEL_JSON), doc)
    storage.write_json(storage.join(model_uri, MODEL_JSON), doc)
    return read_model_info(model_uri)


def read_discriminator_state(checkpoint: str) -> dict[str, torch.Tensor] | None:
    """D's weights in checkpoint directory ``checkpoint``, checked against the sha256 its
    ``model.json`` records; None where it holds no discriminator (a generator-only model)."""
    uri = storage.join(checkpoint, DISCRIMINATOR_FILE)
    if not storage.exists(uri):
        return None
    data = storage.read_bytes(uri)
    meta = storage.join(checkpoint, MODEL_JSON)
    want = (storage.read_json(meta).get("weights_sha256") or {}).get("discriminator") if storage.exists(meta) else None
    if want is not None and sha256_hex(data) != want:
        raise storage.StorageError(f"discriminator weights at {checkpoint} do not match its model.json "
                                   f"(sha256 {sha256_hex(data)[:12]}… != {want[:12]}…)")
    return st_load(data)


def load_generator(model_uri: str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelInfo]:
    """The EMA generator of the latest checkpoint, in eval mode, with its sha256 verified."""
    from ray_gan.models import build_generator

    info = read_model_info(model_uri)
    data = storage.read_bytes(storage.join(info.checkpoint, "generator_ema.safetensors"))
    digest = sha256_hex(data)
    if digest != info.weights_sha256:
        raise storage.StorageError(
            f"generator weights at {info.checkpoint} do not match model.json "
            f"(sha256 {digest[:12]}… != {info.weights_sha256[:12]}…)"
        )
    G = build_generator(info.config)
    load_state_dict_bytes(G, data)
    return G.to(device).eval(), info
