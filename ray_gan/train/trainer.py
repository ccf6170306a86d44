"""``ray-gan train``: the driver side of a Ray Train run.

Builds the training Ray Dataset (train shards streamed and decoded by Ray Data; rank 0
reads a sample of the val shards directly for D's validation loss), works out where to start (fresh, or the latest complete
checkpoint with ``--resume``), and runs :func:`ray_gan.train.loop.train_loop_per_worker`
on ``workers`` Ray Train workers with a unique run name, so an old Ray run directory
is never resumed by accident.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import Callable

from ray_gan import checkpoint as ckpt
from ray_gan import storage
from ray_gan.config import ModelConfig, TrainConfig
from ray_gan.data.dataset import image_dataset, read_dataset_info


class TrainError(RuntimeError):
    """A training run failed; the message says why and what was kept."""


@dataclass(frozen=True)
class TrainResult:
    model_uri: str
    step: int
    sample_grid: str


def finetune(base: str, dataset: str, out: str, log: Callable[[str], None] = print, **overrides) -> TrainResult:
    """Adapt a trained model to a new style's dataset (a few hundred images is enough):
    training starts from the base's EMA generator and its discriminator, with
    DiffAugment on by default (small data), for ``steps`` (default 1000) steps."""
    fields = {"steps": 1000, "augment": "diffaugment", "checkpoint_every": 250, **overrides}
    return train(TrainConfig(dataset=dataset, out=out, init_from=base, **fields), log=log)


def model_config_for(cfg: TrainConfig, styles: list[str], resolution: int) -> ModelConfig:
    mcfg = ModelConfig.default_for(cfg.arch, num_styles=len(styles), resolution=resolution)
    updates = {k: v for k, v in (("g_channels", cfg.g_channels), ("d_channels", cfg.d_channels), ("pack", cfg.pack))
               if v}
    if cfg.noise_inputs is not None:
        updates["noise_inputs"] = cfg.noise_inputs
    if cfg.pack is None and cfg.arch == "stylegan":
        updates["pack"] = default_pack(cfg.batch_size, len(styles))
    return ModelConfig.model_validate({**mcfg.model_dump(), **updates})  # checks the overrides too


def default_pack(batch_size: int, num_styles: int) -> int:
    """stylegan's discriminator packing when the config leaves it unset: packs of 2 where a
    worker's batch can hold a pack of every style, else none. Packs of 4 un-collapsed
    hanzi as well, with a better per-style FID, but not a better style accuracy over four
    600 s runs (mean 0.44 vs 0.51 for packs of 2), and cost emoji its style accuracy in
    its one run (0.77 → 0.41) (docs/benchmarks.md, "What fixed it")."""
    from ray_gan.models.stylegan import min_batch_for_packs

    return next(p for p in (2, 1) if batch_size >= min_batch_for_packs(p, num_styles))


def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    import ray.train
    from ray.train import DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from ray_gan.runtime import init_ray

    info = read_dataset_info(cfg.dataset)
    out = storage.normalize(cfg.out)
    cfg = cfg.model_copy(update={"out": out, "dataset": info.uri})
    existing = ckpt.latest_step(out)
    resume_step, init_from = None, None
    if existing is not None:
        if not cfg.resume:
            raise TrainError(
                f"{out} already holds a model at step {existing}; pass --resume to continue it, "
                "or choose another --out"
            )
        prev = ckpt.read_model_info(out)
        mcfg = prev.config
        if prev.raw.get("dataset") is None:
            raise TrainError(f"{out} holds a blended or imported model (no optimiser state) that cannot be "
                             "resumed; fine-tune it (or a trained model) into a new --out instead (ray-gan finetune)")
        if prev.styles != info.styles:
            raise TrainError(f"cannot resume: model styles {prev.styles} != dataset styles {info.styles}")
        if prev.raw["dataset"]["checksum"] != info.checksum:
            log(f"train: warning: dataset {info.uri} changed since this model was trained (checksum differs)")
        if prev.raw.get("train_config", {}).get("arch", mcfg.arch) != cfg.arch:
            log(f"train: resuming a {mcfg.arch!r} model; --arch {cfg.arch!r} ignored")
            cfg = cfg.model_copy(update={"arch": mcfg.arch})
        if existing >= cfg.steps:
            log(f"train: {out} is already at step {existing} >= --steps {cfg.steps}; nothing to do")
            return TrainResult(out, existing, storage.join(out, prev.raw["sample_grid"]))
        resume_step = existing
        init_from = prev.raw.get("init_from")
        held = prev.raw.get("train_config", {}).get("freeze_d", 0)
        if held != cfg.freeze_d:  # the saved optimiser state covers exactly the layers that trained
            log(f"train: resuming with FreezeD {held}, as this model was started (its saved optimiser state "
                "covers exactly the layers that train)")
            # (a fine-tuned model resumed by `ray-gan train --resume` keeps its base as init_from)
            cfg = cfg.model_copy(update={"freeze_d": held, "init_from": cfg.init_from or (init_from or {}).get("model")})
    else:
        if cfg.resume:
            log(f"train: no checkpoint in {out} yet; starting from scratch")
        try:
            mcfg = model_config_for(cfg, info.styles, info.resolution)
        except ValueError as e:
            raise TrainError(f"bad model settings: {e}") from None
        if cfg.init_from:
            base = ckpt.read_model_info(cfg.init_from)
            if ckpt.read_discriminator_state(base.checkpoint) is None:  # before Ray starts; checks its sha256 too
                raise TrainError(f"{base.uri} has no discriminator weights (a generator-only model: exported, or "
                                 "blended from a parent without one); fine-tuning needs a model with a discriminator")
            mcfg = base.config.model_copy(update={"num_styles": len(info.styles)})
            cfg = cfg.model_copy(update={"arch": mcfg.arch})
            init_from = {"model": base.uri, "checkpoint": base.checkpoint, "step": base.step, "styles": base.styles,
                         "weights_sha256": base.weights_sha256}
            kept = [s for s in info.styles if s in base.styles]
            log(f"train: fine-tuning {base.uri} (step {base.step}, styles {base.styles}) onto {info.styles}; "
                f"style rows kept for {kept or 'none'}, new styles start from the base's mean style")
    if cfg.pack is not None and cfg.pack != mcfg.pack:
        log(f"train: the model's discriminator judges packs of {mcfg.pack} (fixed by its weights); "
            f"--pack {cfg.pack} ignored")
    if cfg.noise_inputs is not None and cfg.noise_inputs != mcfg.noise_inputs:
        log(f"train: the model's generator has noise inputs {'on' if mcfg.noise_inputs else 'off'} (fixed by its "
            f"weights); --{'' if cfg.noise_inputs else 'no-'}noise-inputs ignored")
    if info.count("train") < cfg.batch_size * cfg.workers:
        raise TrainError(
            f"the train split has {info.count('train')} images, fewer than one step needs "
            f"({cfg.workers} workers × batch {cfg.batch_size}); lower --batch-size or --workers"
        )

    if cfg.freeze_d:  # refuse a depth D does not have before Ray starts
        from ray_gan.models import build_discriminator
        from ray_gan.models.transfer import freeze_input_layers

        try:
            freeze_input_layers(build_discriminator(mcfg), cfg.freeze_d)
        except ValueError as e:
            raise TrainError(str(e)) from None

    from ray_gan.train.step import resolve_hyperparameters

    try:  # the settings every worker will resolve: refuse a bad combination before Ray starts
        resolve_hyperparameters(cfg, mcfg, cfg.workers)
    except ValueError as e:
        raise TrainError(str(e)) from None

    init_ray()
    datasets = {"train": image_dataset(info, "train")}
    meta = {
        "resume_step": resume_step,
        "styles": info.styles,
        "dataset_uri": info.uri,
        "dataset_checksum": info.checksum,
        "train_count": info.count("train"),
        "image_bytes": info.resolution * info.resolution * 3,
        "val_shards": info.shard_uris("val"),
        "init_from": init_from,
    }
    run_name = f"ray-gan-train-{uuid.uuid4().hex[:12]}"
    if storage.is_s3(out):
        fs, path = storage.filesystem(out)
        run_config = RunConfig(name=run_name, storage_path=f"{path}/_ray", storage_filesystem=fs,
                               failure_config=FailureConfig(max_failures=0))
    else:
        ray_dir = os.path.join(tempfile.gettempdir(), "ray_gan", "train-runs")
        run_config = RunConfig(name=run_name, storage_path=ray_dir, failure_config=FailureConfig(max_failures=0))
    from ray_gan.console import Progress
    from ray_gan.progress import Track

    # Rank 0 reports its step and elapsed time; the driver draws the bar (and logs rank 0's lines to its log file).
    bar = Progress("train", cfg.steps, "steps", images_per_unit=cfg.batch_size * cfg.workers, initial=resume_step or 0,
                   status="starting workers", startup_apart=True)

    def show(state: dict | None, _count: int) -> None:
        if state:
            bar.update(state["step"], time_left=cfg.time_budget_s - state["elapsed"] if cfg.time_budget_s else None)

    track = Track(show, lines_to="ray_gan.train")
    use_gpu = cfg.gpus_per_worker > 0
    resources = {"CPU": cfg.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = cfg.gpus_per_worker
    trainer = TorchTrainer(
        _loop,
        train_loop_config={"train": cfg.model_dump(), "model": mcfg.model_dump(), "meta": meta,
                           "progress": track.reporter},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=run_config,
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train"]),
    )
    log(
        f"train: {mcfg.arch} {mcfg.resolution}px, {len(info.styles)} styles, {info.count('train')} train images, "
        f"{cfg.workers} workers × batch {cfg.batch_size}, steps {resume_step or 0} → {cfg.steps}"
        f"{f' or {cfg.time_budget_s:.0f} s, whichever comes first' if cfg.time_budget_s else ''}, out {out}"
    )
    try:
        with track:
            trainer.fit()
    except ray.train.TrainingFailedError as exc:
        raise TrainError(_failure_message(exc, out)) from None
    final = ckpt.read_model_info(out)
    grid = storage.join(out, final.raw["sample_grid"])
    bar.update(final.step)
    bar.close()
    budget = (f" ({cfg.time_budget_s:.0f} s time budget reached; continue with --resume)"
              if cfg.time_budget_s and final.step < cfg.steps else "")
    log(f"train: done at step {final.step}{budget}; model {out}; samples {grid}")
    return TrainResult(out, final.step, grid)


def _loop(config: dict) -> None:
    from ray_gan.train.loop import train_loop_per_worker

    train_loop_per_worker(config)


def _failure_message(exc: Exception, out: str) -> str:
    text = str(exc)
    for line in reversed(text.splitlines()):
        if "DivergenceError" in line or "training diverged" in line:
            return line.split("DivergenceError:", 1)[-1].strip()
    step = ckpt.latest_step(out)
    kept = f"the last complete checkpoint (step {step}) is kept" if step is not None else "no checkpoint was written"
    return f"training failed: {text.strip().splitlines()[-1] if text.strip() else exc!r}\n{kept} in {out}"
