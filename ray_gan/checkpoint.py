"""The model directory — its layout, writers and verified readers live here, and only here.

Layout under a MODEL URI::

    model.json                   latest complete checkpoint (a copy of its model.json)
    checkpoints/step-00000500/
        GENERATOR_FILE           G, the training copy          (safetensors)
        GENERATOR_EMA_FILE       EMA of G: what generate, batch and serve use
        DISCRIMINATOR_FILE       D
        OPTIMIZER_FILE           Adam states                   (torch.save of tensors, read weights_only)
        rng-rank-0.pt ...        per-worker RNG states         (same)
        model.json               written last: its presence marks the checkpoint complete;
                                 records the sha256 of every weights file
    samples/step-00000500.png    per-style sample grid (rows = styles), upscaled for people
    DIRECTIONS_FILE, DIRECTIONS_JSON   edit directions (ray-gan directions): tensors, and their
                                 names, the sha256 of the tensors file and of the weights they fit

Every weights read checks the sha256 that ``model.json`` records. Weights are never
pickled; optimiser and RNG state are plain tensors and dicts loaded with
``weights_only=True``.
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
GENERATOR_FILE = "generator.safetensors"
GENERATOR_EMA_FILE = "generator_ema.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
DIRECTIONS_FILE = "directions.safetensors"
DIRECTIONS_JSON = "directions.json"
SCHEMA_VERSION = 1
# model.json's weights_sha256 key of each weights file
WEIGHTS = {"generator": GENERATOR_FILE, "generator_ema": GENERATOR_EMA_FILE, "discriminator": DISCRIMINATOR_FILE}


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def checkpoint_uri(model_uri: str, step: int) -> str:
    return storage.join(model_uri, "checkpoints", checkpoint_name(step))


def rng_file(rank: int) -> str:
    return f"rng-rank-{rank}.pt"


def sample_grid_path(step: int) -> str:
    """The sample grid of checkpoint ``step``, relative to the model directory."""
    return f"samples/{checkpoint_name(step)}.png"


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
    weights_sha256: str  # sha256 of the EMA generator's weights
    raw: dict

    def style_indices(self, names: list[str] | None) -> list[int]:
        """Map style names to indices; ``None`` or ``["all"]`` means every style."""
        if not names or names == ["all"]:
            return list(range(len(self.styles)))
        unknown = [n for n in names if n not in self.styles]
        if unknown:
            raise ValueError(f"unknown style(s) {unknown}; this model has {self.styles}")
        return [self.styles.index(n) for n in names]


class PinError(storage.StorageError):
    """A pinned checkpoint whose weights are not the ones pinned."""


def read_model_info(model_uri: str, step: int | None = None, weights_sha256: str | None = None) -> ModelInfo:
    """What ``model.json`` says: the latest checkpoint's, or checkpoint ``step``'s. With
    ``weights_sha256`` (a pin), a checkpoint whose EMA weights have another sha256 is a
    :class:`PinError`."""
    if step is None:
        uri = storage.join(model_uri, MODEL_JSON)
        if not storage.exists(uri):
            raise storage.StorageError(f"no trained model at {model_uri} (missing {MODEL_JSON})")
    else:
        uri = storage.join(checkpoint_uri(model_uri, step), MODEL_JSON)
        if not storage.exists(uri):
            raise storage.StorageError(f"model {model_uri} has no complete checkpoint at step {step} (missing {uri})")
    raw = storage.read_json(uri)
    if weights_sha256 is not None and raw["weights_sha256"]["generator_ema"] != weights_sha256:
        raise PinError(f"model {model_uri} step {raw['step']}: EMA weights have sha256 "
                       f"{raw['weights_sha256']['generator_ema']}, not the pinned {weights_sha256}")
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


def _write_weights(checkpoint: str, modules: dict[str, torch.nn.Module | None]) -> dict[str, str]:
    """Each module's weights as its :data:`WEIGHTS` file (None: left out); their sha256s."""
    digests = {}
    for which, module in modules.items():
        if module is not None:
            data = state_dict_bytes(module)
            storage.write_bytes(storage.join(checkpoint, WEIGHTS[which]), data)
            digests[which] = sha256_hex(data)
    return digests


def write_generator_model(model_uri: str, G: torch.nn.Module, config: ModelConfig, styles: list[str], step: int,
                          extra: dict | None = None, D: torch.nn.Module | None = None) -> ModelInfo:
    """A model directory holding an EMA generator (blended, imported or test models):
    what ``generate``, ``batch``, ``serve``, ``evaluate`` and ``export`` need; with ``D``
    also a discriminator, so ``finetune`` can start from it. Training cannot resume it
    (no optimiser state)."""
    if storage.exists(storage.join(model_uri, MODEL_JSON)):
        raise storage.StorageError(f"{model_uri} already holds a model; choose another output")
    digests = _write_weights(checkpoint_uri(model_uri, step), {"generator_ema": G, "discriminator": D})
    publish_checkpoint(model_uri, step, {
        "model_config": config.model_dump(), "styles": list(styles), "resolution": config.resolution,
        "dataset": None, "weights_sha256": digests, "sample_grid": None, "history": [], **(extra or {})})
    return read_model_info(model_uri)


def _read_verified(checkpoint: str, which: str, want: str | None = None) -> bytes | None:
    """The bytes of weights file ``which`` (a :data:`WEIGHTS` key) in checkpoint directory
    ``checkpoint``, checked against ``want`` or the sha256 its ``model.json`` records;
    None where the file is absent."""
    uri = storage.join(checkpoint, WEIGHTS[which])
    if not storage.exists(uri):
        return None
    data = storage.read_bytes(uri)
    if want is None:
        meta = storage.join(checkpoint, MODEL_JSON)
        want = (storage.read_json(meta).get("weights_sha256") or {}).get(which) if storage.exists(meta) else None
    if want is None:
        raise storage.StorageError(f"{uri}: no sha256 recorded for it in {MODEL_JSON}; refusing unverified weights")
    digest = sha256_hex(data)
    if digest != want:
        raise storage.StorageError(f"{which} weights at {checkpoint} do not match its {MODEL_JSON} "
                                   f"(sha256 {digest[:12]}… != {want[:12]}…)")
    return data


def read_state(checkpoint: str, which: str) -> dict[str, torch.Tensor]:
    """State dict of weights file ``which`` ("generator", "generator_ema",
    "discriminator") in checkpoint directory ``checkpoint``, sha256-verified."""
    data = _read_verified(checkpoint, which)
    if data is None:
        raise storage.StorageError(f"{checkpoint} has no {WEIGHTS[which]}")
    return st_load(data)


def read_discriminator_state(checkpoint: str) -> dict[str, torch.Tensor] | None:
    """D's weights in checkpoint directory ``checkpoint``, sha256-verified; None where it
    holds no discriminator (a generator-only model)."""
    data = _read_verified(checkpoint, "discriminator")
    return None if data is None else st_load(data)


def load_generator(model_uri: str, device: str | torch.device = "cpu", step: int | None = None,
                   weights_sha256: str | None = None) -> tuple[torch.nn.Module, ModelInfo]:
    """The EMA generator of the latest checkpoint (or of checkpoint ``step``), in eval mode,
    with its sha256 verified (and equal to ``weights_sha256`` when that pins it)."""
    from ray_gan.models import build_generator

    info = read_model_info(model_uri, step, weights_sha256)
    data = _read_verified(info.checkpoint, "generator_ema", want=info.weights_sha256)
    if data is None:
        raise storage.StorageError(f"{info.checkpoint} has no {GENERATOR_EMA_FILE}")
    G = build_generator(info.config)
    load_state_dict_bytes(G, data)
    return G.to(device).eval(), info


# ---- training checkpoints ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingState:
    """What a resumed run restores: verified weights, optimiser state, this rank's RNG."""

    generator: dict[str, torch.Tensor]
    generator_ema: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor]
    optimizer: dict
    rng: dict | None  # None when this rank did not exist in the run that wrote it
    history: list[dict]


def read_training_state(model_uri: str, step: int, rank: int) -> TrainingState:
    cdir = checkpoint_uri(model_uri, step)
    rng_uri = storage.join(cdir, rng_file(rank))
    return TrainingState(
        generator=read_state(cdir, "generator"),
        generator_ema=read_state(cdir, "generator_ema"),
        discriminator=read_state(cdir, "discriminator"),
        optimizer=load_torch_state(storage.read_bytes(storage.join(cdir, OPTIMIZER_FILE))),
        rng=load_torch_state(storage.read_bytes(rng_uri)) if storage.exists(rng_uri) else None,
        history=list(storage.read_json(storage.join(cdir, MODEL_JSON)).get("history", [])),
    )


def write_rng_state(model_uri: str, step: int, rank: int, rng: dict) -> None:
    storage.write_bytes(storage.join(checkpoint_uri(model_uri, step), rng_file(rank)), torch_state_bytes(rng))


def write_training_files(model_uri: str, step: int, G: torch.nn.Module, G_ema: torch.nn.Module,
                         D: torch.nn.Module, optimizer_state: dict, sample_grid_png: bytes) -> dict[str, str]:
    """Checkpoint ``step``'s weights, optimiser state and sample grid (not yet visible:
    :func:`publish_checkpoint` makes it so). Returns the sha256 of each weights file."""
    cdir = checkpoint_uri(model_uri, step)
    digests = _write_weights(cdir, {"generator": G, "generator_ema": G_ema, "discriminator": D})
    storage.write_bytes(storage.join(cdir, OPTIMIZER_FILE), torch_state_bytes(optimizer_state))
    storage.write_bytes(storage.join(model_uri, sample_grid_path(step)), sample_grid_png)
    return digests


def publish_checkpoint(model_uri: str, step: int, doc: dict) -> None:
    """Write checkpoint ``step``'s ``model.json`` (``doc`` plus the schema version, step and
    checkpoint name), then the model directory's copy: the checkpoint is complete."""
    doc = {"schema_version": SCHEMA_VERSION, "step": step, "checkpoint": checkpoint_name(step), **doc}
    storage.write_json(storage.join(checkpoint_uri(model_uri, step), MODEL_JSON), doc)
    storage.write_json(storage.join(model_uri, MODEL_JSON), doc)


# ---- edit directions ----------------------------------------------------------------------------


def write_directions(model_uri: str, tensors: dict[str, torch.Tensor], doc: dict) -> str:
    """The model's edit directions: the tensors, then ``doc`` with their sha256 (last: a
    directions.json always describes the tensors beside it). Returns the JSON's URI."""
    data = st_save({k: v.contiguous() for k, v in tensors.items()})
    storage.write_bytes(storage.join(model_uri, DIRECTIONS_FILE), data)
    uri = storage.join(model_uri, DIRECTIONS_JSON)
    storage.write_json(uri, {**doc, "sha256": sha256_hex(data)})
    return uri


def read_directions_doc(model_uri: str) -> dict | None:
    uri = storage.join(model_uri, DIRECTIONS_JSON)
    return storage.read_json(uri) if storage.exists(uri) else None


def write_directions_doc(model_uri: str, doc: dict) -> None:
    """Rewrite directions.json (e.g. new names); the tensors and their sha256 stay."""
    storage.write_json(storage.join(model_uri, DIRECTIONS_JSON), doc)


def read_directions(model_uri: str) -> tuple[dict, dict[str, torch.Tensor]] | None:
    """directions.json and the tensors it describes, checked against the sha256 it records
    (directions written before it recorded one are read as they are); None where the
    model has none."""
    doc = read_directions_doc(model_uri)
    if doc is None:
        return None
    data = storage.read_bytes(storage.join(model_uri, DIRECTIONS_FILE))
    if doc.get("sha256") is not None and sha256_hex(data) != doc["sha256"]:
        raise storage.StorageError(f"edit directions at {model_uri} do not match {DIRECTIONS_JSON} "
                                   f"(sha256 {sha256_hex(data)[:12]}… != {doc['sha256'][:12]}…)")
    return doc, st_load(data)
