"""``ray-gan train`` and ``ray-gan finetune``: the driver side of a Ray Train run.

Reads what the run depends on (dataset, the model already in ``out``, a fine-tuning
base), lets :func:`ray_gan.train.plan.plan_run` decide what to do before Ray starts,
builds the training Ray Dataset (train shards streamed and decoded by Ray Data; rank 0
reads a sample of the val shards itself for D's validation loss), and runs
:func:`ray_gan.train.loop.train_loop_per_worker` with the :class:`RunPlan` on
``workers`` Ray Train workers, under a unique run name so an old Ray run directory is
never resumed by accident.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import Callable

from ray_gan import checkpoint as ckpt
from ray_gan import storage
from ray_gan.checkpoint import ModelInfo
from ray_gan.config import FinetuneConfig, TrainConfig
from ray_gan.data.dataset import DatasetInfo, image_dataset, read_dataset_info
from ray_gan.train.plan import TrainError, plan_run

__all__ = ["TrainError", "TrainResult", "finetune", "read_plan_inputs", "train"]


@dataclass(frozen=True)
class TrainResult:
    model_uri: str
    step: int
    sample_grid: str


def read_plan_inputs(cfg: TrainConfig) -> tuple[TrainConfig, DatasetInfo, ModelInfo | None, ModelInfo | None]:
    """What :func:`plan_run` decides from, read from storage: the config with ``out`` and
    ``dataset`` normalised, the dataset, the model already in ``out`` and the base model
    of a fine-tuning run (checked to hold a sha256-verified discriminator)."""
    info = read_dataset_info(cfg.dataset)
    cfg = cfg.model_copy(update={"out": storage.normalize(cfg.out), "dataset": info.uri})
    existing = ckpt.read_model_info(cfg.out) if ckpt.latest_step(cfg.out) is not None else None
    base = None
    if existing is None and cfg.init_from:
        base = ckpt.read_model_info(cfg.init_from)
        if ckpt.read_discriminator_state(base.checkpoint) is None:
            raise TrainError(f"{base.uri} has no discriminator weights (a generator-only model: exported, or "
                             "blended from a parent without one); fine-tuning needs a model with a discriminator")
    return cfg, info, existing, base


def finetune(cfg: FinetuneConfig, log: Callable[[str], None] = print) -> TrainResult:
    """``ray-gan finetune``: a training run that starts from ``cfg.base``'s weights."""
    return train(cfg.train_config(), log)


def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    import ray.train
    from ray.train import DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from ray_gan.console import Progress
    from ray_gan.progress import Track
    from ray_gan.runtime import init_ray

    cfg, info, existing, base = read_plan_inputs(cfg)
    plan = plan_run(cfg, info, existing, base)
    for note in plan.notes:
        log(note)
    cfg, out = plan.train, plan.train.out
    if plan.done:
        return TrainResult(out, existing.step, storage.join(out, existing.raw["sample_grid"]))

    init_ray()
    run_name = f"ray-gan-train-{uuid.uuid4().hex[:12]}"
    if storage.is_s3(out):
        fs, path = storage.filesystem(out)
        run_config = RunConfig(name=run_name, storage_path=f"{path}/_ray", storage_filesystem=fs,
                               failure_config=FailureConfig(max_failures=0))
    else:
        ray_dir = os.path.join(tempfile.gettempdir(), "ray_gan", "train-runs")
        run_config = RunConfig(name=run_name, storage_path=ray_dir, failure_config=FailureConfig(max_failures=0))
    scaling, budget, limit = cfg.scaling, cfg.run.time_budget_s, cfg.run.step_limit
    length = (f"steps {plan.resume_step or 0} → {limit}" + (f" or {budget:.0f} s, whichever comes first" if budget else "")
              if limit is not None else f"from step {plan.resume_step or 0} for {budget:.0f} s")
    log(
        f"train: {plan.model.arch} {plan.model.resolution}px, {len(info.styles)} styles, {plan.train_count} train "
        f"images, {scaling.workers} workers × batch {scaling.batch_size}, {length}, out {out}"
    )
    # Rank 0 reports its step and elapsed time; the driver draws the bar (and logs rank 0's lines to its log file).
    bar = Progress("train", limit, "steps", images_per_unit=scaling.batch_size * scaling.workers,
                   initial=plan.resume_step or 0, status="starting workers", startup_apart=True)

    def show(state: dict | None, _count: int) -> None:
        if state:
            bar.update(state["step"], time_left=budget - state["elapsed"] if budget else None)

    track = Track(show, lines_to="ray_gan.train")
    use_gpu = scaling.gpus_per_worker > 0
    resources = {"CPU": scaling.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = scaling.gpus_per_worker
    trainer = TorchTrainer(
        _loop,
        train_loop_config={"plan": plan.model_dump(), "progress": track.reporter},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=scaling.workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=run_config,
        datasets={"train": image_dataset(info, "train")},
        dataset_config=DataConfig(datasets_to_split=["train"]),
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
    stopped = (f" ({budget:.0f} s time budget reached; continue with --resume)"
               if budget and limit is not None and final.step < limit else "")
    log(f"train: done at step {final.step}{stopped}; model {out}; samples {grid}")
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
