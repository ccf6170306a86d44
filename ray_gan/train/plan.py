"""What a training run will do, decided before Ray starts: :func:`plan_run`.

A pure function of the train config, the prepared dataset's ``dataset.json`` and the
model directory's ``model.json`` (or the fine-tuning base's): fresh, resumed or
fine-tuned; the model's architecture; the hyper-parameters; what to tell the user. A
bad combination is a :class:`TrainError` here, before any worker starts. The
:class:`RunPlan` is what every Ray Train worker gets.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ray_gan.checkpoint import ModelInfo
from ray_gan.config import ARCH_PRESETS, ModelConfig, TrainConfig
from ray_gan.data.dataset import DatasetInfo
from ray_gan.train.balance import style_weights


class TrainError(RuntimeError):
    """A training run cannot start or failed; the message says why and what was kept."""


class InitFrom(BaseModel):
    """The base model a fine-tuning run starts from."""

    model_config = ConfigDict(extra="forbid")

    model: str
    checkpoint: str
    step: int
    styles: list[str]
    weights_sha256: str


class RunPlan(BaseModel):
    """Everything a worker needs besides the data: handed to every Ray Train worker."""

    model_config = ConfigDict(extra="forbid")

    train: TrainConfig  # as run: out and dataset normalised; arch and freeze_d as the model fixes them
    model: ModelConfig
    hyperparameters: dict[str, float]
    styles: list[str]
    dataset_uri: str
    dataset_checksum: str
    train_count: int
    image_bytes: int  # one decoded image (uint8 RGB), for the worker's in-memory cache decision
    val_shards: list[str]
    style_weights: list[float] = []  # per style (ray_gan/train/balance.py); empty: all 1
    resume_step: int | None = None
    init_from: InitFrom | None = None
    notes: list[str] = []  # what the driver tells the user before training
    done: bool = False  # the model is already at (or past) the step target: nothing to run


def plan_run(cfg: TrainConfig, dataset: DatasetInfo, existing: ModelInfo | None = None,
             base: ModelInfo | None = None) -> RunPlan:
    """``existing``: the model already in ``cfg.out`` (None: a fresh directory).
    ``base``: the fine-tuning base named by ``cfg.init_from`` (read by the caller, who
    also checks it has a discriminator). Raises :class:`TrainError` with a message."""
    notes: list[str] = []
    resume_step, init_from = None, None
    if existing is not None:
        if not cfg.run.resume:
            raise TrainError(f"{cfg.out} already holds a model at step {existing.step}; pass --resume to continue "
                             "it, or choose another --out")
        mcfg, raw = existing.config, existing.raw
        if raw.get("dataset") is None:
            raise TrainError(f"{cfg.out} holds a blended or imported model (no optimiser state) that cannot be "
                             "resumed; fine-tune it (or a trained model) into a new --out instead (ray-gan finetune)")
        if existing.styles != dataset.styles:
            raise TrainError(f"cannot resume: model styles {existing.styles} != dataset styles {dataset.styles}")
        if raw["dataset"]["checksum"] != dataset.checksum:
            notes.append(f"train: warning: dataset {dataset.uri} changed since this model was trained "
                         "(checksum differs)")
        if mcfg.arch != cfg.arch:
            notes.append(f"train: resuming a {mcfg.arch!r} model; --arch {cfg.arch!r} ignored")
            cfg = cfg.model_copy(update={"arch": mcfg.arch})
        resume_step = existing.step
        init_from = raw.get("init_from")
        held = (raw.get("train_config") or {}).get("freeze_d", 0)
        if held != cfg.freeze_d:  # the saved optimiser state covers exactly the layers that trained
            notes.append(f"train: resuming with FreezeD {held}, as this model was started (its saved optimiser "
                         "state covers exactly the layers that train)")
            # (a fine-tuned model resumed by `ray-gan train --resume` keeps its base as init_from)
            cfg = cfg.model_copy(update={"freeze_d": held,
                                         "init_from": cfg.init_from or (init_from or {}).get("model")})
    else:
        if cfg.run.resume:
            notes.append(f"train: no checkpoint in {cfg.out} yet; starting from scratch")
        if base is not None:
            mcfg = base.config.model_copy(update={"num_styles": len(dataset.styles)})
            cfg = cfg.model_copy(update={"arch": mcfg.arch})
            init_from = {"model": base.uri, "checkpoint": base.checkpoint, "step": base.step, "styles": base.styles,
                         "weights_sha256": base.weights_sha256}
            kept = [s for s in dataset.styles if s in base.styles]
            notes.append(f"train: fine-tuning {base.uri} (step {base.step}, styles {base.styles}) onto "
                         f"{dataset.styles}; style rows kept for {kept or 'none'}, new styles start from the "
                         "base's mean style")
        else:
            try:
                mcfg = cfg.new_model_config(len(dataset.styles), dataset.resolution, grey=dataset.channels == 1)
            except ValueError as e:
                raise TrainError(f"bad model settings: {e}") from None
            if dataset.channels == 1 and ARCH_PRESETS[cfg.arch].model["channels"] != 1:
                notes.append("train: every image of the dataset is grey: the model draws one channel")
    if existing is not None or base is not None:  # the weights fix the architecture
        for name, value in cfg.model.model_dump(exclude_none=True).items():
            if value != getattr(mcfg, name):
                notes.append(f"train: the model's {name} is {getattr(mcfg, name)} (fixed by its weights); "
                             f"--{name.replace('_', '-')} {value} ignored")
    common = dict(train=cfg, model=mcfg, styles=dataset.styles, dataset_uri=dataset.uri,
                  dataset_checksum=dataset.checksum, train_count=dataset.count("train"),
                  image_bytes=dataset.resolution * dataset.resolution * 3, val_shards=dataset.shard_uris("val"),
                  resume_step=resume_step, init_from=init_from, notes=notes)
    limit = cfg.run.step_limit
    if existing is not None and limit is not None and existing.step >= limit:
        notes.append(f"train: {cfg.out} is already at step {existing.step} >= --steps {limit}; nothing to do")
        return RunPlan(hyperparameters=existing.raw.get("hyperparameters") or {}, done=True, **common)
    workers, batch = cfg.scaling.workers, cfg.scaling.batch_size
    if dataset.count("train") < batch * workers:
        raise TrainError(f"the train split has {dataset.count('train')} images, fewer than one step needs "
                         f"({workers} workers × batch {batch}); lower --batch-size or --workers")
    if cfg.freeze_d:  # a depth D does not have
        from ray_gan.models import build_discriminator
        from ray_gan.train.finetune import freeze_input_layers

        try:
            freeze_input_layers(build_discriminator(mcfg), cfg.freeze_d)
        except ValueError as e:
            raise TrainError(str(e)) from None
    try:  # the settings every worker will use
        hp = cfg.hyperparameters(mcfg, workers)
    except ValueError as e:
        raise TrainError(str(e)) from None
    per_style = dataset.counts.get("train", {}).get("per_style", {})
    try:
        weights = style_weights([int(per_style.get(s, 0)) for s in dataset.styles], cfg.optim.style_balance)
    except ValueError as e:
        raise TrainError(f"--style-balance {cfg.optim.style_balance}: {e}") from None
    return RunPlan(hyperparameters=hp, style_weights=weights, **common)
