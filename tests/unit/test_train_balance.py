"""ray_gan.train.balance and the step's use of it: styles of unequal size (issue #20)."""

import pytest
import torch
from helpers import stepper as _stepper

from ray_gan.train.balance import StyleTally, accuracy_by_style, format_accuracy, style_weights

COUNTS = [700, 100, 100]  # the 1:7 ratio of a brand's data


@pytest.mark.parametrize("balance", ["none", "sqrt", "uniform"])
def test_weights_move_the_game_to_the_target_distribution_and_keep_its_scale(balance):
    w = style_weights(COUNTS, balance)
    n = sum(COUNTS)
    assert sum(c / n * wi for c, wi in zip(COUNTS, w)) == pytest.approx(1.0)  # E_data[w] = 1
    mass = [c * wi for c, wi in zip(COUNTS, w)]  # each style's share of the weighted game
    share = [m / sum(mass) for m in mass]
    target = {"none": [c / n for c in COUNTS], "uniform": [1 / 3] * 3,
              "sqrt": [c**0.5 / sum(k**0.5 for k in COUNTS) for c in COUNTS]}[balance]
    assert share == pytest.approx(target)


def test_an_empty_style_gets_no_weight_and_bad_input_is_refused():
    assert style_weights([10, 0, 10], "uniform") == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="per-style"):
        style_weights([0, 0], "sqrt")
    with pytest.raises(ValueError, match="unknown style balance"):
        style_weights([1, 1], "log")


def test_every_term_of_the_step_is_weighted_by_its_samples_style(monkeypatch):
    import ray_gan.train.step as step_mod

    seen = []
    real_mean = step_mod.weighted_mean
    monkeypatch.setattr(step_mod, "weighted_mean", lambda v, w: seen.append(w) or real_mean(v, w))
    st = _stepper(mixing_prob=0.0, style_loss=1.0)
    st = type(st)(st.G, st.D, st.G_ema, st.mcfg, st.cfg, torch.device("cpu"), style_weights=[0.5, 2.0, 4.0])
    y = torch.tensor([0, 0, 1, 2, 2, 0, 1, 2])
    st.step(torch.rand(8, 3, 16, 16) * 2 - 1, y, 0)
    # D's real term, D's fake term, D's style head, G's term, G's style term
    assert len(seen) == 5 and all(torch.equal(w, torch.tensor([0.5, 2.0, 4.0])[y]) for w in seen)
    # and a weighted term is the weighted mean of its per-sample values
    logits, w = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([3.0, 0.0, 1.0])
    real, _ = st._d_loss(logits, -logits, w)
    assert real.item() == pytest.approx((torch.nn.functional.softplus(-logits) * w).mean().item())
    # balance "none" (all weights 1) is the unweighted game exactly
    plain = type(st)(st.G, st.D, st.G_ema, st.mcfg, st.cfg, torch.device("cpu"), style_weights=[1.0, 1.0, 1.0])
    assert plain.style_weights is None


def test_uniform_balance_runs_a_step_and_tallies_d_per_style():
    st = _stepper(mixing_prob=0.0)
    st2 = type(st)(st.G, st.D, st.G_ema, st.mcfg, st.cfg, torch.device("cpu"), style_weights=style_weights(COUNTS, "uniform"))
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.tensor([0, 0, 0, 0, 0, 0, 1, 2])
    assert torch.isfinite(st2.step(x, y, 0)).all()
    counts = st2.style_tally.take()
    assert counts[2].tolist() == [6.0, 1.0, 1.0]  # one D output per image (pack 1)
    assert (counts[:2] <= counts[2]).all() and st2.style_tally.take().sum() == 0  # take() resets


def test_accuracy_by_style_and_its_log_text():
    tally = StyleTally(3, "cpu")
    tally.add(torch.tensor([1.0, -1.0, 2.0, 3.0]), torch.tensor([-1.0, -1.0, -2.0, 1.0]), torch.tensor([0, 0, 1, 1]))
    acc = accuracy_by_style(tally.take(), ["flat", "outline", "stripes"])
    assert acc == {"flat": 0.75, "outline": 0.75}  # stripes: no D output, left out
    assert format_accuracy(acc) == "D acc by style: flat 0.75, outline 0.75"
    assert format_accuracy(acc, limit=1).endswith("… (1 more)")
