"""ray_gan.train.loop: the per-worker loop's pure parts (progress text, validation loss)."""

import pytest

from ray_gan.config import RunSettings
from ray_gan.train.loop import _time_left


def _cfg(**kw) -> RunSettings:
    return RunSettings(**kw)


def test_time_left_counts_steps_without_a_budget():
    # 1000 steps to go at 0.5 s each
    assert _time_left(_cfg(steps=2000), step=1000, s_per_step=0.5, elapsed=60.0) == "ETA 8m20s"


def test_time_left_is_the_budget_when_it_ends_the_run_first():
    # a step cap of 10^8 would mean thousands of hours; the 600 s budget ends the run
    cfg = _cfg(steps=10**8, time_budget_s=600)
    assert _time_left(cfg, step=200, s_per_step=0.3, elapsed=420.0) == "budget left 3m00s"
    assert _time_left(cfg, step=200, s_per_step=0.3, elapsed=700.0) == "budget left 0s"


def test_time_left_is_the_steps_when_they_end_the_run_first():
    cfg = _cfg(steps=300, time_budget_s=3600)
    assert _time_left(cfg, step=200, s_per_step=0.3, elapsed=60.0) == "ETA 30s"


def test_a_time_budget_alone_sets_the_runs_length():
    # issue #20: "--time-budget 600" without --steps stopped at the default 2000 steps
    assert _cfg(time_budget_s=600).step_limit is None
    assert _time_left(_cfg(time_budget_s=600), step=5000, s_per_step=0.3, elapsed=420.0) == "budget left 3m00s"
    assert _cfg().step_limit == RunSettings.default_steps == 2000  # neither given: the default length
    assert _cfg(steps=300, time_budget_s=600).step_limit == 300  # both: the steps are a cap
    from ray_gan.config import FinetuneConfig
    ft = FinetuneConfig(base="b", data="d", out="o")
    assert ft.train_config().run.step_limit == 1000  # fine-tuning keeps its shorter default
    ft = FinetuneConfig(base="b", data="d", out="o", run={"time_budget_s": 60})
    assert ft.train_config().run.step_limit is None


def test_the_validation_loss_is_the_runs_own_loss():
    import torch
    import torch.nn.functional as F

    from ray_gan.config import ModelConfig, TrainConfig
    from ray_gan.images import from_uint8
    from ray_gan.models import build_discriminator, build_generator
    from ray_gan.train.loop import _d_losses

    torch.manual_seed(0)
    mcfg = ModelConfig(arch="dcgan", resolution=16, num_styles=2, g_channels=8, d_channels=8)
    G, D = build_generator(mcfg).eval(), build_discriminator(mcfg).eval()
    images = torch.randint(0, 256, (12, 16, 16, 3), dtype=torch.uint8)
    styles = torch.arange(12) % 2

    def to_input(x):
        return from_uint8(x, "cpu", 3, 16)

    with torch.no_grad():
        logits = D(to_input(images), styles)
        got = {loss: _d_losses(D, G, (images, styles), to_input, mcfg,
                               TrainConfig.from_flat(dataset="d", out="o", arch="dcgan", loss=loss, batch_size=8),
                               torch.device("cpu"))
               for loss in ("non_saturating", "hinge")}
    assert got["non_saturating"]["d_val_real_loss"] == pytest.approx(F.softplus(-logits).mean().item(), rel=1e-5)
    assert got["hinge"]["d_val_real_loss"] == pytest.approx(F.relu(1 - logits).mean().item(), rel=1e-5)
