"""Candidate worker: ray_gan's own training step (``ray_gan.train.step.GANStep``), as the
Ray Train loop runs it, in one process. Started by bench/train_throughput.py (``python -m
bench.cand_worker`` from the repository root); speaks the protocol in bench/common.py.

Models come from the registry (``build_generator``/``build_discriminator``) with the
model config ``ray-gan train`` would build (``TrainConfig.new_model_config``), G_ema is a deep copy
as in the loop, and the train config is ``TrainConfig``'s defaults — what the CLI uses
when no flag is given — except ``arch`` and ``batch_size``. One timed step is
``GANStep.step(x_real, y, i)`` (D step with lazy R1 when the arch's default R1 weight is
non-zero, G step, EMA) plus the loop's one host read of the losses (``.tolist()``).
Inputs are synthetic images in [-1, 1] (NCHW float) and random style labels: no data
loading, no logging, no checkpoints.

Options (each is a bench variant, never a change to ray_gan):

* ``--memory-format``: ``default`` (what ``TrainConfig`` says: its ``channels_last``
  field where it has one), ``other`` (the opposite), ``channels-last`` or ``contiguous``;
  set through the train config when it has the field, else by converting G, D, G_ema and
  the real images here;
* ``--bf16``: the step's own autocast switched on for the CPU (``GANStep.amp``; the
  train config only enables it on CUDA), i.e. bf16 autocast exactly where the step
  would use it on a GPU;
* ``--mode-seeking``: ``default`` (the architecture's weight of the MSGAN term) or
  ``other`` (off where the default is on, else weight 1);
* ``--compile``: the train config's ``compile`` (``GANStep`` compiles D's and G's
  forward with inductor, default mode; for stylegan ``G.mapping`` and ``G.synthesis``;
  D runs eagerly on lazy-R1 steps, which need a double backward).
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["dcgan", "stylegan"], required=True)
    ap.add_argument("--resolution", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--styles", type=int, default=4)
    ap.add_argument("--g-channels", type=int, default=None)
    ap.add_argument("--d-channels", type=int, default=None)
    ap.add_argument("--z-dim", type=int, default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--memory-format", choices=["default", "other", "channels-last", "contiguous"], default="default")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--mode-seeking", choices=["default", "other"], default="default",
                    help="the arch's mode-seeking weight, or the other setting (off where it is on, else 1)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    from bench.common import param_counts, serve, set_threads

    t0 = time.perf_counter()
    set_threads(a.threads)
    import torch

    from ray_gan.config import ARCH_PRESETS, OptimSettings, TrainConfig
    from ray_gan.models import build_discriminator, build_generator
    from ray_gan.train.step import GANStep

    default_cl = bool(OptimSettings.model_fields["channels_last"].default)
    want_cl = {"default": default_cl, "other": not default_cl, "channels-last": True,
               "contiguous": False}[a.memory_format]
    extra = {"channels_last": want_cl, "compile": a.compile}
    if a.z_dim:
        extra["z_dim"] = a.z_dim
    if a.mode_seeking == "other":
        extra["mode_seeking"] = 0.0 if ARCH_PRESETS[a.arch].optim["mode_seeking"] else 1.0
    cfg = TrainConfig.from_flat(dataset="bench", out="bench", arch=a.arch, batch_size=a.batch,
                                g_channels=a.g_channels, d_channels=a.d_channels, **extra)
    mcfg = cfg.new_model_config(a.styles, a.resolution)
    device = torch.device("cpu")
    torch.manual_seed(a.seed)
    G = build_generator(mcfg).to(device)
    D = build_discriminator(mcfg).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    fmt = torch.channels_last if want_cl else torch.contiguous_format
    stepper = GANStep(G, D, G_ema, mcfg, cfg, device, world=1, distributed=False)
    if a.bf16:
        stepper.amp = True
    pool = (torch.rand(512, mcfg.channels, a.resolution, a.resolution) * 2 - 1)
    styles = torch.randint(0, a.styles, (len(pool),))

    def step(i: int) -> None:
        idx = (torch.arange(a.batch) + i * a.batch) % len(pool)
        x = pool[idx].contiguous(memory_format=fmt)
        stats = stepper.step(x, styles[idx], i)
        stats.double().tolist()

    hp = cfg.hyperparameters(mcfg, 1)
    n_params = param_counts(G=G, D=D)
    reg, opt = [], cfg.optim
    if hp["r1_gamma"] > 0:
        reg.append(f"lazy R1 γ={hp['r1_gamma']:.4g} every {opt.r1_every} steps")
    if opt.augment != "none":
        reg.append(f"{opt.augment} ({opt.augment_policy})")
    if a.arch == "stylegan" and opt.mixing_prob > 0:
        reg.append(f"style mixing p={opt.mixing_prob}")
    if hp["mode_seeking"]:
        reg.append(f"mode seeking {hp['mode_seeking']:g}")
    reg.append(f"{opt.loss} loss, EMA")
    period = opt.r1_every if hp["r1_gamma"] > 0 else 1
    opts = ["bf16 autocast" if a.bf16 else "fp32",
            ("channels-last" if want_cl else "NCHW") + (" (train-config default)" if want_cl == default_cl else ""),
            "torch.compile" if a.compile else "eager",
            f"mode seeking {hp['mode_seeking']:g}" if hp["mode_seeking"] else "no mode seeking",
            f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}"]
    serve(step, a.batch, time.perf_counter() - t0,
          {"torch": torch.__version__, "params": n_params, "period": period, "regularisation": "; ".join(reg),
           "options": ", ".join(opts), "model_config": mcfg.model_dump(),
           "train_config": cfg.model_dump(exclude={"dataset", "out"})})


if __name__ == "__main__":
    main()
