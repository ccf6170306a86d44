"""The per-worker training loop, run by Ray Train on every worker. Read top to bottom.

The step itself (losses, lazy R1, DiffAugment, style mixing, EMA) is
:class:`ray_gan.train.step.GANStep`; this module is the Ray Train side around it: data,
resume, checkpoints, validation, logging, divergence detection.

Data parallelism: every worker holds full copies of G, D and G_ema; after each
backward pass the gradients are averaged with one ``all_reduce`` over a flat buffer
(so G's and D's steps stay separate and the R1 penalty needs no DDP special-casing).
Weights are broadcast from rank 0 once at start, so all replicas are identical
throughout.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist

from ray_gan import checkpoint as ckpt
from ray_gan.console import fmt_duration
from ray_gan.config import ModelConfig, RunSettings, TrainConfig
from ray_gan.generate.render import latents_from_seeds
from ray_gan.images import from_uint8, make_grid, to_uint8
from ray_gan.models import build_discriminator, build_generator
from ray_gan.models.stylegan import same_style_packs
from ray_gan.train.balance import accuracy_by_style, format_accuracy
from ray_gan.train.finetune import init_from_base
from ray_gan.train.plan import RunPlan
from ray_gan.train.step import GANStep, d_fake_term, d_real_term

SAMPLE_COLS = 8
MAX_SAMPLE_STYLES = 16
CACHE_LIMIT_BYTES = 1 << 30  # keep a worker's decoded shard in memory below this


class DivergenceError(RuntimeError):
    """Losses went non-finite or exploded; the last good checkpoint is kept."""


def train_loop_per_worker(config: dict) -> None:
    import ray.train
    import ray.train.torch

    plan = RunPlan.model_validate(config["plan"])
    cfg, mcfg, run = plan.train, plan.model, plan.train.run
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    distributed = dist.is_available() and dist.is_initialized() and world > 1
    # Rank 0 logs with the logging module (Ray forwards it to the driver's terminal with
    # --verbose; a print would be both teed and logged, so it shows twice), and reports
    # its step and lines to the driver, which draws the progress bar and keeps the lines
    # in its log file (ray_gan.progress).
    logger = logging.getLogger("ray_gan.train")
    logger.setLevel(logging.INFO)
    log = logger.info if rank == 0 else (lambda msg: None)
    progress = config.get("progress") if rank == 0 else None
    if progress is not None:
        log = progress.forwarding(log)

    # ---- models and optimisers -------------------------------------------------------
    torch.manual_seed(run.seed)  # same init everywhere (rank 0 is broadcast anyway)
    G = build_generator(mcfg).to(device)
    D = build_discriminator(mcfg).to(device)
    if plan.init_from is not None and plan.resume_step is None:  # fine-tuning: start from the base's weights
        counts = init_from_base(G, D, plan.init_from.checkpoint, plan.init_from.styles, plan.styles)
        fresh = counts["discriminator"]["initialised"] + counts["generator"]["initialised"]
        if fresh:
            log(f"fine-tune: {fresh} tensor(s) the base model lacks (a head added after it was trained) start fresh")
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    stepper = GANStep(G, D, G_ema, mcfg, cfg, device, world, distributed, hp=plan.hyperparameters,
                      style_weights=plan.style_weights)
    step = 0
    history: list[dict] = []

    # ---- resume ---------------------------------------------------------------------
    start = plan.resume_step
    if start is not None:
        state = ckpt.read_training_state(cfg.out, start, rank)  # every weights file sha256-checked
        G.load_state_dict(state.generator)
        G_ema.load_state_dict(state.generator_ema)
        D.load_state_dict(state.discriminator)
        stepper.load_optimizer_state(state.optimizer)
        if state.rng is not None:  # None when resuming with more workers than before
            torch.set_rng_state(state.rng["cpu"])
            if device.type == "cuda" and "cuda" in state.rng:
                torch.cuda.set_rng_state(state.rng["cuda"], device)
        else:
            torch.manual_seed(run.seed * 1000 + rank + start)
        step, history = int(start), state.history
        log(f"train: resumed from step {step} ({ckpt.checkpoint_uri(cfg.out, start)})")
    else:
        torch.manual_seed(run.seed * 1000 + rank + 1)  # different noise per worker
    if distributed:
        for module in (G, D, G_ema):
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    # ---- data -----------------------------------------------------------------------
    batches = _batches(ray.train.get_dataset_shard("train"), plan, rank, world, device, distributed)
    batch_size = cfg.scaling.batch_size
    val_images = _ValidationImages(plan.val_shards, run.val_batches * batch_size) if rank == 0 else None

    def to_input(images: torch.Tensor) -> torch.Tensor:
        return from_uint8(images, device, mcfg.channels, mcfg.resolution)

    # ---- loop -----------------------------------------------------------------------
    t_start = t_log = t_ckpt = time.time()
    step_at_log = step_at_ckpt = step
    imgs_per_step = batch_size * world
    stop = False
    # Sums of the per-step (d_loss, g_loss, D's loss on training reals) and their step
    # counts: one step's losses are noise, so the log line shows their mean since the
    # last line and the history since the last checkpoint.
    log_sum, log_n = np.zeros(3), 0
    ckpt_sum, ckpt_n = np.zeros(3), 0
    ckpt_tally = None  # D's right calls per style since the last checkpoint (summed over workers)

    def take_tally():
        """D's per-style tally since the last call, summed over workers (a collective:
        called at the same steps on every rank)."""
        nonlocal ckpt_tally
        tally = stepper.style_tally.take()
        if distributed:
            dist.all_reduce(tally)
        ckpt_tally = tally if ckpt_tally is None else ckpt_tally + tally
        return tally

    limit = run.step_limit  # None: the time budget alone ends the run
    while (limit is None or step < limit) and not stop:
        images, styles = next(batches)
        x_real, y = to_input(images), styles.to(device)

        stats = stepper.step(x_real, y, step)
        step += 1
        if progress is not None:
            progress.update(step=step, elapsed=time.time() - t_start)

        # Losses agreed across workers, in one all_reduce and one device→host copy per
        # step: every worker takes the same stop decision.
        stats = torch.cat([stats.double(), torch.tensor([float(time_up(run, t_start))], dtype=torch.float64, device=device)])
        if distributed:
            dist.all_reduce(stats)
            stats[:3] /= world
        d_val, g_val, d_real_val, stop_flag = stats.tolist()
        stop = stop_flag > 0
        log_sum += (d_val, g_val, d_real_val)
        ckpt_sum += (d_val, g_val, d_real_val)
        log_n, ckpt_n = log_n + 1, ckpt_n + 1
        if not (math.isfinite(d_val) and math.isfinite(g_val)) or max(abs(d_val), abs(g_val)) > run.max_loss:
            raise _diverged(step, cfg, history, f"d_loss={d_val:.4g} g_loss={g_val:.4g} (limit {run.max_loss})")

        if step % run.log_every == 0 or step == limit or stop:
            now = time.time()
            rate = (step - step_at_log) * imgs_per_step / max(now - t_log, 1e-9)
            d_mean, g_mean, _ = log_sum / log_n
            by_style = accuracy_by_style(take_tally(), plan.styles)
            log(f"step {step}{f'/{limit}' if limit else ''} | {rate:.1f} img/s | d_loss {d_mean:.4f} g_loss {g_mean:.4f} | "
                f"{_time_left(run, step, imgs_per_step / max(rate, 1e-9), now - t_start)}"
                + (f" | {format_accuracy(by_style)}" if len(by_style) > 1 else ""))
            t_log, step_at_log, log_sum, log_n = now, step, np.zeros(3), 0

        if step % run.checkpoint_every == 0 or step == limit or stop:
            if rank == 0:  # G_ema's BatchNorm statistics for its own weights (what is saved and scored)
                stepper.standing_statistics(seed=run.seed + step)
            val = _validation_loss(D, G_ema, val_images, to_input, mcfg, cfg, device) if rank == 0 else {}
            _check_finite(step, cfg, G, D, distributed, device, history)
            rate = (step - step_at_ckpt) * imgs_per_step / max(time.time() - t_ckpt, 1e-9)
            d_mean, g_mean, d_real_mean = (float(v) for v in ckpt_sum / ckpt_n)
            take_tally()
            entry = {"step": step, "d_loss": d_mean, "g_loss": g_mean, "images_per_s": round(rate, 2),
                     "d_train_real_loss": d_real_mean,
                     "d_accuracy_by_style": {k: round(v, 4) for k, v in accuracy_by_style(ckpt_tally, plan.styles).items()},
                     **val}
            ckpt_sum, ckpt_n, ckpt_tally = np.zeros(3), 0, None
            history.append(entry)
            _save_checkpoint(plan, step, rank, world, G, G_ema, D, stepper, history, distributed, device)
            if val.get("d_val_real_loss") is not None:
                log(f"checkpoint step {step}: D loss on val reals {val['d_val_real_loss']:.4f} "
                    f"(train reals {entry['d_train_real_loss']:.4f}) → {ckpt.checkpoint_uri(cfg.out, step)}")
            ray.train.report({k: v for k, v in entry.items() if v is not None and not isinstance(v, dict)})
            t_ckpt, step_at_ckpt = time.time(), step
    if stop and limit is not None and step < limit:
        log(f"train: time budget of {run.time_budget_s:.0f}s reached at step {step}; resume with --resume")
    elif stop:
        log(f"train: time budget of {run.time_budget_s:.0f}s spent at step {step}")


def _check_finite(step: int, cfg: TrainConfig, G, D, distributed: bool, device, history: list[dict]) -> None:
    """Never publish a checkpoint with non-finite weights (finite losses can precede them)."""
    ok = all(bool(torch.isfinite(p).all()) for m in (G, D) for p in m.parameters())
    flag = torch.tensor([0.0 if ok else 1.0], device=device)
    if distributed:
        dist.all_reduce(flag)
    if flag.item() > 0:
        raise _diverged(step, cfg, history, "non-finite weights")


def _diverged(step: int, cfg: TrainConfig, history: list[dict], why: str) -> DivergenceError:
    last = history[-1]["step"] if history else None  # history is restored on --resume
    return DivergenceError(
        f"training diverged at step {step}: {why}. The last good checkpoint (step {last}) in {cfg.out} is kept; "
        "lower --lr-d/--lr-g or add --r1-gamma and run again with --resume."
    )


def time_up(run: RunSettings, t_start: float) -> bool:
    return run.time_budget_s is not None and time.time() - t_start >= run.time_budget_s


def _batches(shard, plan: RunPlan, rank: int, world: int, device, distributed: bool
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (uint8 images NHWC, styles) batches of this worker's shard.

    Epoch 1 streams from Ray Data. If the decoded shard fits in ``CACHE_LIMIT_BYTES``
    it is kept, and later epochs are reshuffled in memory (no re-read, no re-decode);
    otherwise every epoch streams. Workers agree on epoch ends, so none waits forever
    in an all_reduce for a worker that ran out of data.
    """
    seed, batch_size = plan.train.run.seed, plan.train.scaling.batch_size
    per_worker = plan.train_count / world
    cache: list | None = [] if per_worker * plan.image_bytes <= CACHE_LIMIT_BYTES else None
    epoch = 0
    while True:
        if cache is not None and epoch > 0:
            images, styles = torch.cat([c[0] for c in cache]), torch.cat([c[1] for c in cache])
            n = torch.tensor([len(images)], dtype=torch.long, device=device)
            if distributed:
                dist.all_reduce(n, op=dist.ReduceOp.MIN)
            g = torch.Generator().manual_seed(seed * 7919 + rank * 104729 + epoch)
            perm = torch.randperm(len(images), generator=g)[: int(n)]
            for i in range(0, len(perm) - batch_size + 1, batch_size):
                idx = perm[i : i + batch_size]
                yield images[idx], styles[idx]
        else:
            it = iter(shard.iter_torch_batches(batch_size=batch_size, drop_last=True, device="cpu",
                                               local_shuffle_buffer_size=min(4 * batch_size, 1024),
                                               local_shuffle_seed=seed + rank + epoch))
            while True:
                batch = next(it, None)
                missing = torch.tensor([1.0 if batch is None else 0.0], device=device)
                if distributed:
                    dist.all_reduce(missing)
                if missing.item() > 0:
                    for _ in it:  # drain so the next epoch can start cleanly
                        pass
                    break
                if cache is not None:
                    cache.append((batch["image"], batch["style"]))
                yield batch["image"], batch["style"]
            if cache is not None and not cache:
                raise RuntimeError("this worker received no training batch: dataset too small for the batch size")
        epoch += 1


class _ValidationImages:
    """An evenly spaced sample of ``limit`` validation images in the shards' (hash) order,
    read once by the dataset reader (:func:`ray_gan.data.dataset.read_shards`; a small
    read: not worth a Ray Data pipeline per checkpoint)."""

    def __init__(self, shard_uris: list[str], limit: int) -> None:
        self.shard_uris, self.limit = shard_uris, limit
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def get(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self._cache is None and self.shard_uris:
            from ray_gan.data.dataset import read_shards

            val = read_shards(self.shard_uris, limit=self.limit, by_style=False)
            self._cache = (torch.from_numpy(val.images), torch.from_numpy(val.styles))
        return self._cache


@torch.no_grad()
def _validation_loss(D, G_ema, val_images, to_input, mcfg: ModelConfig, cfg: TrainConfig, device) -> dict:
    """D's loss on held-out real images (compare with its loss on training reals: a
    growing gap means D memorises the training set), and on EMA fakes."""
    data = val_images.get() if val_images is not None else None
    if data is None:
        return {"d_val_real_loss": None}
    D.eval()  # no spectral-norm power iteration here: D must stay identical on every rank
    try:
        return _d_losses(D, G_ema, data, to_input, mcfg, cfg, device)
    finally:
        D.train()


def _d_losses(D, G_ema, data, to_input, mcfg: ModelConfig, cfg: TrainConfig, device) -> dict:
    images, styles = data
    pack = getattr(D, "pack", 1)
    order = same_style_packs(styles, pack)  # whole packs of one style (all images, in order, unpacked)
    if len(order) == 0:
        return {"d_val_real_loss": None}
    chunk = max(pack, cfg.scaling.batch_size // pack * pack)
    loss = cfg.optim.loss  # the run's own loss, so val and train losses compare
    real = 0.0
    for i in range(0, len(order), chunk):
        idx = order[i : i + chunk]
        real += d_real_term(D(to_input(images[idx]), styles[idx].to(device)), loss).sum().item()
    y = styles[order].to(device)
    z = torch.randn(len(y), mcfg.z_dim, device=device)
    fake = d_fake_term(D(G_ema(z, y), y), loss).mean().item()
    return {"d_val_real_loss": real / (len(order) // pack), "d_val_fake_loss": fake}


def _save_checkpoint(plan: RunPlan, step, rank, world, G, G_ema, D, stepper, history, distributed,
                     device) -> None:
    """Rank 0 writes weights and optimiser state, every rank its RNG; ``model.json``
    last, after a barrier, so a checkpoint is either complete or invisible."""
    cfg, out = plan.train, plan.train.out
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    ckpt.write_rng_state(out, step, rank, rng)
    if rank == 0:
        digests = ckpt.write_training_files(out, step, G, G_ema, D, stepper.optimizer_state(),
                                            _sample_grid(G_ema, plan.model, device))
    if distributed:
        dist.barrier()
    if rank == 0:
        ckpt.publish_checkpoint(out, step, {
            "model_config": plan.model.model_dump(),
            "styles": plan.styles,
            "resolution": plan.model.resolution,
            "dataset": {"uri": plan.dataset_uri, "checksum": plan.dataset_checksum},
            "train_config": cfg.model_dump(exclude={"run": {"resume"}}),
            "hyperparameters": stepper.hp,
            "init_from": plan.init_from.model_dump() if plan.init_from else None,
            "workers": world,
            "weights_sha256": digests,
            "sample_grid": ckpt.sample_grid_path(step),
            "history": history,
        })
    if distributed:
        dist.barrier()


@torch.no_grad()
def _sample_grid(G_ema, mcfg: ModelConfig, device) -> bytes:
    from ray_gan.images import VIEW_TILE, encode

    n_styles = min(mcfg.num_styles, MAX_SAMPLE_STYLES)
    seeds = list(range(SAMPLE_COLS)) * n_styles
    styles = torch.arange(n_styles).repeat_interleave(SAMPLE_COLS)
    x = G_ema(latents_from_seeds(seeds, mcfg.z_dim).to(device), styles.to(device))
    return encode(make_grid(to_uint8(x), cols=SAMPLE_COLS, min_tile=VIEW_TILE))


def _time_left(run: RunSettings, step: int, s_per_step: float, elapsed: float) -> str:
    """"ETA 4m10s" from the steps still to run or, when the time budget ends the run
    first, "budget left 3m00s" (a budgeted run's step limit is often just a cap)."""
    limit = run.step_limit
    by_steps = (limit - step) * s_per_step if limit is not None else math.inf
    if run.time_budget_s is not None and run.time_budget_s - elapsed < by_steps:
        return f"budget left {fmt_duration(max(run.time_budget_s - elapsed, 0.0))}"
    return f"ETA {fmt_duration(by_steps)}"
