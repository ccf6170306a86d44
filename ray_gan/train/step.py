"""One GAN optimisation step — D, then G, then the EMA — shared by the Ray Train loop
(:mod:`ray_gan.train.loop`) and the benchmarks. No Ray, no storage here.

Objective: ``min_G max_D E_x[log D(x)] + E_z[log(1 - D(G(z)))]``, on D's logits:

* ``non_saturating`` (default): D minimises ``softplus(-D(x)) + softplus(D(G(z)))``
  (= ``-log σ(D(x)) - log(1 - σ(D(G(z))))``), G minimises ``softplus(-D(G(z)))``
  (maximises ``log D(G(z))``: the non-saturating form of the same game);
* ``hinge``: D minimises ``relu(1 - D(x)) + relu(1 + D(G(z)))``, G minimises ``-D(G(z))``.

Regularisation and stabilisation:

* R1 (Mescheder et al., 2018): ``γ/2·E‖∇_x D(x)‖²`` on reals, *lazily* every ``r1_every``
  steps with the penalty scaled by ``r1_every`` and Adam's lr/betas adjusted by
  ``c = r1_every / (r1_every + 1)`` (Karras et al., 2020, §B);
* DiffAugment on everything D sees (:mod:`ray_gan.train.augment`);
* discriminator packing (PacGAN; stylegan's ``pack``): the real batch is arranged into
  runs of one style (:func:`~ray_gan.models.stylegan.same_style_packs`) and the fakes
  take the same labels, so D's packs never mix styles; the images of a style that do not
  fill a pack wait for the next step (at most ``pack - 1`` per style; not checkpointed),
  so every image is used and a rare style still trains once it fills a pack. The step's
  batch then varies a little around ``batch_size``; on CUDA the arrangement costs one
  host sync per step;
* style mixing (stylegan): with probability ``mixing_prob`` the fakes of a step take
  the style inputs of their first layers from one latent and the rest from another of
  the same style label, so adjacent layers do not learn to depend on each other (which
  is what makes coarse/fine mixing a control at render time);
* style balance (:mod:`ray_gan.train.balance`): with per-style weights, every term of a
  sample of style s is weighted by ``w_s`` (D's real and fake terms, G's term, the style
  head's cross-entropy); D's per-style accuracy is tallied on the device
  (``style_tally``) for the training log;
* mode seeking (MSGAN, Mao et al. 2019; ``mode_seeking`` > 0): the step's fakes, sorted by
  style, are paired; for each pair of one style G is penalised by
  ``1 / (mean|G(z1)-G(z2)| / mean|z1-z2| + ε)``, so two latents of a style cannot map to one
  image (a conditional GAN's usual collapse, which D's per-image loss cannot see);
* EMA of G's weights, with a warm-up so short runs still get a useful average;
* one forward pass of G per step: D's update uses the fakes detached, G's the same
  fakes through the updated D (the DCGAN reference loop does the same);
* bf16 autocast on CUDA when ``amp`` (R1's gradient is taken in float32);
* channels-last (NHWC) weights and activations when ``channels_last``;
* D scores reals and fakes in one call (one batch of 2n) where that computes the same
  logits as two calls (no BatchNorm in D; minibatch-stddev groups within each half);
* ``torch.compile`` of G's and D's forward passes when ``compile`` (D runs eagerly on
  R1 steps, which need a double backward).

Data parallel: when ``distributed``, gradients are averaged with one ``all_reduce``
over a flat buffer after each backward pass.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ray_gan.config import ModelConfig, TrainConfig
from ray_gan.models.stylegan import same_style_packs
from ray_gan.train.augment import diff_augment
from ray_gan.train.balance import StyleTally
from ray_gan.train.finetune import freeze_input_layers


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``mean(w·v)``: an importance-weighted estimate of the target expectation (the
    weights average 1 over the data); the plain mean without weights."""
    return values.mean() if weights is None else (values * weights).mean()


def d_real_term(logits: torch.Tensor, loss: str) -> torch.Tensor:
    """D's per-sample loss on real images: ``softplus(-D(x))`` (non-saturating) or ``relu(1 - D(x))`` (hinge)."""
    return F.relu(1 - logits) if loss == "hinge" else F.softplus(-logits)


def d_fake_term(logits: torch.Tensor, loss: str) -> torch.Tensor:
    """D's per-sample loss on fakes: ``softplus(D(G(z)))`` or ``relu(1 + D(G(z)))``."""
    return F.relu(1 + logits) if loss == "hinge" else F.softplus(logits)


class GANStep:
    """Holds the optimisers; ``step(x_real, y, index)`` runs one D and one G update and
    returns ``[d_loss, g_loss, d_real_loss]`` as one tensor on the device (no host sync)."""

    def __init__(self, G: nn.Module, D: nn.Module, G_ema: nn.Module, mcfg: ModelConfig, cfg: TrainConfig,
                 device: torch.device, world: int = 1, distributed: bool = False,
                 hp: dict[str, float] | None = None, style_weights: list[float] | None = None) -> None:
        """``hp``: the run's hyper-parameters as its plan resolved them (default: resolved
        here from ``cfg``, the same function). ``style_weights``: per-style loss weights
        (:func:`ray_gan.train.balance.style_weights`; None or empty: unweighted). With ``cfg.freeze_d`` (FreezeD), D's first
        input-side layers are held: no gradients, no optimiser state."""
        self.G, self.D, self.G_ema, self.mcfg, self.cfg = G, D, G_ema, mcfg, cfg
        self.device, self.world, self.distributed = device, world, distributed
        self.hp = hp if hp is not None else cfg.hyperparameters(mcfg, world)
        opt = cfg.optim
        if cfg.freeze_d:
            freeze_input_layers(D, cfg.freeze_d)
        lazy = self.hp["r1_gamma"] > 0 and opt.r1_every > 1
        c = opt.r1_every / (opt.r1_every + 1) if lazy else 1.0
        self.opt_g = torch.optim.Adam(G.parameters(), lr=self.hp["lr_g"], betas=(self.hp["beta1"], self.hp["beta2"]))
        self._d_trainable = [p for p in D.parameters() if p.requires_grad]
        self.opt_d = torch.optim.Adam(self._d_trainable, lr=self.hp["lr_d"] * c,
                                      betas=(self.hp["beta1"] ** c, self.hp["beta2"] ** c))
        self.styled = hasattr(G, "mapping")
        self.style_loss = self.hp["style_loss"]
        self.mode_seeking = self.hp.get("mode_seeking", 0.0)
        self.style_weights = (torch.tensor(style_weights, dtype=torch.float32, device=device)
                              if style_weights and any(w != 1.0 for w in style_weights) else None)
        self.style_tally = StyleTally(mcfg.num_styles, device)
        self.amp = opt.amp and device.type == "cuda"
        self._ema_pairs = None
        self.memory_format = torch.channels_last if opt.channels_last and mcfg.arch != "vanilla" else None
        self._formatted = False
        # Group size that lets D score reals and fakes in one call (0: never).
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
        mbstd = getattr(D, "mbstd", None)
        self.pack = getattr(D, "pack", 1)
        self._carry: tuple[torch.Tensor, torch.Tensor] | None = None  # reals waiting to fill a pack
        self._joint_d = 0 if has_bn else (mbstd.group_size if mbstd is not None else 1)
        # What the step calls: the modules, or compiled wrappers sharing their parameters
        # (state dicts, checkpoints and the EMA still see the plain modules).
        self._D_fast = self._g_forward = self._mapping = self._synthesis = None
        if opt.compile:
            self._D_fast = torch.compile(D)
            if self.styled:
                self._mapping, self._synthesis = torch.compile(G.mapping), torch.compile(G.synthesis)
            else:
                self._g_forward = torch.compile(G)

    # -- pieces ------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.cfg.optim.augment_policy) if self.cfg.optim.augment == "diffaugment" else x

    def _fake(self, y: torch.Tensor, track_w: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Fakes of styles ``y`` and the latents they came from."""
        z = torch.randn(y.shape[0], self.mcfg.z_dim, device=self.device)
        if not self.styled:
            return (self.G if self._g_forward is None else self._g_forward)(z, y), z
        G = self.G
        mapping = G.mapping if self._mapping is None else self._mapping
        synthesis = G.synthesis if self._synthesis is None else self._synthesis
        w = mapping(z, y)
        if track_w:
            G.update_w_avg(w.detach(), y)
        ws = w[:, None].expand(-1, G.num_ws, -1)
        if self.cfg.optim.mixing_prob > 0 and torch.rand(()) < self.cfg.optim.mixing_prob:
            cutoff = int(torch.randint(1, G.num_ws, ()))
            w2 = mapping(torch.randn_like(z), y)
            ws = torch.cat([ws[:, :cutoff], w2[:, None].expand(-1, G.num_ws - cutoff, -1)], dim=1)
        return synthesis(ws), z

    @staticmethod
    def mode_seeking_term(x_fake: torch.Tensor, z: torch.Tensor, y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
        """MSGAN's term over the batch's pairs of one style (0 where there are none): the
        fakes are stably sorted by style and taken two by two, so with packing (runs of one
        style) the pairs are the packs' own."""
        order = torch.argsort(y, stable=True)
        n = (y.shape[0] // 2) * 2
        a, b = order[:n:2], order[1:n:2]
        same = (y[a] == y[b]).float()
        d_img = (x_fake[a].float() - x_fake[b].float()).abs().flatten(1).mean(1)
        d_z = (z[a] - z[b]).abs().mean(1)
        term = 1.0 / (d_img / d_z + eps)
        return (term * same).sum() / same.sum().clamp(min=1.0)

    def _d(self, eager: bool = False) -> nn.Module:
        """D as the step calls it: compiled when configured, except where a double
        backward is needed (R1: AOTAutograd has none)."""
        return self.D if eager or self._D_fast is None else self._D_fast

    def _score(self, D: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's real/fake logits and, with the style loss on, its style logits (else None)."""
        if self.style_loss:
            logits, classes = D(x, y, classes=True)
            return logits.float(), classes.float()
        return D(x, y).float(), None

    def _d_real_fake(self, x_real: torch.Tensor, x_fake: torch.Tensor, y: torch.Tensor, eager: bool = False):
        """D's logits for reals and fakes, and (with the style loss on) its style logits
        for the reals: one D call over both halves when that computes the same thing (D
        has no batch statistics across samples other than minibatch-stddev, whose groups
        of consecutive samples then never straddle the halves), else two calls."""
        n = x_real.shape[0]
        D = self._d(eager)
        if self._joint_d and (n // self.pack) % self._joint_d == 0 and x_fake.shape[0] == n:
            logits, classes = self._score(D, self._augment(torch.cat([x_real, x_fake])), torch.cat([y, y]))
            m = n // self.pack  # D's outputs per half: one per pack
            return logits[:m], logits[m:], None if classes is None else classes[:m]
        real_logits, classes = self._score(D, self._augment(x_real), y)
        return real_logits, D(self._augment(x_fake), y).float(), classes

    def _arrange_packs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's reals in same-style packs: the images carried over from the last
        step first, then the new batch; what does not fill a pack is carried on."""
        if self._carry is not None:
            x, y = torch.cat([self._carry[0], x]), torch.cat([self._carry[1], y])
        keep = same_style_packs(y, self.pack)
        rest = torch.ones(y.shape[0], dtype=torch.bool, device=y.device)
        rest[keep] = False
        self._carry = (x[rest], y[rest]) if keep.shape[0] < y.shape[0] else None
        return x[keep], y[keep]

    def _d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, w: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        real = weighted_mean(d_real_term(real_logits, self.cfg.optim.loss), w)
        return real, real + weighted_mean(d_fake_term(fake_logits, self.cfg.optim.loss), w)

    def _g_loss(self, fake_logits: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        per_sample = -fake_logits if self.cfg.optim.loss == "hinge" else F.softplus(-fake_logits)
        return weighted_mean(per_sample, w)

    def _update(self, opt: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self._average_gradients(module)
        opt.step()

    def _average_gradients(self, module: nn.Module) -> None:
        if not self.distributed:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    # -- the step ----------------------------------------------------------------------
    def step(self, x_real: torch.Tensor, y: torch.Tensor, index: int) -> torch.Tensor:
        G, D, opt = self.G, self.D, self.cfg.optim
        r1 = self.hp["r1_gamma"] > 0 and index % opt.r1_every == 0
        if self.pack > 1:  # runs of `pack` images of one style; the fakes take the same labels
            x_real, y = self._arrange_packs(x_real, y)
        y_d = y[:: self.pack]  # one label per D output
        w = self.style_weights[y_d] if self.style_weights is not None else None  # reals' and fakes' alike
        if self.memory_format is not None:
            if not self._formatted:  # after any resume/broadcast (collectives want plain layouts)
                for module in (G, D, self.G_ema):
                    module.to(memory_format=self.memory_format)
                self._formatted = True
            x_real = x_real.contiguous(memory_format=self.memory_format)

        # One forward of G per step, shared by D's and G's updates (as in the DCGAN
        # paper's reference training loop): D learns on the detached fakes, then G on
        # the same fakes scored by the updated D.
        with self._autocast():
            x_fake, z = self._fake(y, track_w=True)

        # D: reals → real, fakes → fake.
        if r1:
            x_real = x_real.detach().requires_grad_(True)
        with self._autocast():
            real_logits, fake_logits, real_classes = self._d_real_fake(x_real, x_fake.detach(), y, eager=r1)
        self.style_tally.add(real_logits.detach(), fake_logits.detach(), y_d)
        d_real_loss, d_loss = self._d_loss(real_logits, fake_logits, w)
        d_total = d_loss
        if self.style_loss:  # D's style head learns the real images' styles
            d_total = d_total + self.style_loss * weighted_mean(F.cross_entropy(real_classes, y_d, reduction="none"), w)
        if r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), x_real, create_graph=True)
            # E‖∇D‖² over D's inputs (a pack's gradient is its members' together).
            penalty = grad.float().square().sum() / real_logits.shape[0]
            d_total = d_total + 0.5 * self.hp["r1_gamma"] * opt.r1_every * penalty
        self._update(self.opt_d, d_total, D)

        # G: fool the updated D.
        for p in self._d_trainable:
            p.requires_grad_(False)
        with self._autocast():
            fake_logits, fake_classes = self._score(self._d(), self._augment(x_fake), y)
            g_loss = g_total = self._g_loss(fake_logits, w)
            if self.style_loss:  # ... and G makes fakes that head assigns to their style
                g_total = g_loss + self.style_loss * weighted_mean(
                    F.cross_entropy(fake_classes, y_d, reduction="none"), w)
            if self.mode_seeking:  # ... and two latents of a style give two images
                g_total = g_total + self.mode_seeking * self.mode_seeking_term(x_fake, z, y)
        self._update(self.opt_g, g_total, G)
        for p in self._d_trainable:
            p.requires_grad_(True)

        self.update_ema(index)
        return torch.stack([d_loss.detach(), g_loss.detach(), d_real_loss.detach()])

    @torch.no_grad()
    def update_ema(self, index: int) -> None:
        decay = min(self.hp["ema_decay"], (1 + index) / (10 + index))
        if self._ema_pairs is None:
            self._ema_pairs = (list(self.G_ema.parameters()), list(self.G.parameters()),
                               list(self.G_ema.buffers()), list(self.G.buffers()))
        p_ema, p, b_ema, b = self._ema_pairs
        torch._foreach_lerp_(p_ema, p, 1 - decay)
        torch._foreach_copy_(b_ema, b)

    @torch.no_grad()
    def standing_statistics(self, seed: int, batches: int = 16, batch_size: int = 256) -> bool:
        """BigGAN's "standing statistics" (Brock et al. 2019) for a generator with
        BatchNorm: the EMA generator's weights are an average over steps, but its BN
        running statistics are the trained G's (copied each step), which do not match
        them. Recompute them for the EMA weights themselves: the exact mean over
        ``batches`` batches of random latents and uniformly drawn styles, from a private
        RNG (the training stream is untouched). Returns False (and does nothing) for a
        generator without BatchNorm (docs/benchmarks.md has its effect on the dcgan rows)."""
        bns = [m for m in self.G_ema.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return False
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        gen = torch.Generator().manual_seed(seed)
        self.G_ema.train()
        try:
            for _ in range(batches):
                z = torch.randn(batch_size, self.mcfg.z_dim, generator=gen).to(self.device)
                y = torch.randint(0, self.mcfg.num_styles, (batch_size,), generator=gen).to(self.device)
                with self._autocast():
                    self.G_ema(z, y)
        finally:
            self.G_ema.eval()
            for m, momentum in zip(bns, momenta):
                m.momentum = momentum
        return True

    # -- checkpointing -----------------------------------------------------------------
    def optimizer_state(self) -> dict:
        return {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()}

    def load_optimizer_state(self, state: dict) -> None:
        self.opt_g.load_state_dict(state["g"])
        self.opt_d.load_state_dict(state["d"])
