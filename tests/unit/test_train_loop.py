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
    assert _time_left(cfg, step=200, s_per_step=0.3, elapsed=700.0) == "budget left 0m00s"


def test_time_left_is_the_steps_when_they_end_the_run_first():
    cfg = _cfg(steps=300, time_budget_s=3600)
    assert _time_left(cfg, step=200, s_per_step=0.3, elapsed=60.0) == "ETA 0m30s"
