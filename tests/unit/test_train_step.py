"""ray_gan.train.step.GANStep: one optimisation step and each regulariser/option it takes
(losses, EMA, lazy R1, FreezeD, the style loss, joint D calls, compile, packing)."""

import pytest
import torch
from helpers import stepper as _stepper


@pytest.mark.parametrize("opts", [{}, {"loss": "hinge"}, {"augment": "diffaugment"}, {"r1_every": 1},
                                  {"mixing_prob": 1.0}])
def test_step_updates_weights_ema_and_returns_finite_losses(opts):
    st = _stepper(**opts)
    before_g = [p.clone() for p in st.G.parameters()]
    before_ema = [p.clone() for p in st.G_ema.parameters()]
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 3
    stats = st.step(x, y, 0)
    assert stats.shape == (3,) and torch.isfinite(stats).all()
    assert any(not torch.equal(a, b) for a, b in zip(before_g, st.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_ema, st.G_ema.parameters()))


def test_lazy_r1_runs_every_n_steps_and_changes_d(monkeypatch):
    import ray_gan.train.step as step_mod

    calls = []
    real_grad = torch.autograd.grad
    monkeypatch.setattr(step_mod.torch.autograd, "grad", lambda *a, **k: calls.append(1) or real_grad(*a, **k))
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 3
    st = _stepper(r1_gamma=1.0, r1_every=4, mixing_prob=0.0)
    for i in range(8):
        st.step(x, y, i)
    assert len(calls) == 2  # steps 0 and 4
    # Adam's lr and betas are adjusted for the lazy interval (StyleGAN2, appendix B)
    c = 4 / 5
    assert st.opt_d.param_groups[0]["lr"] == pytest.approx(0.0025 * c)
    assert st.opt_d.param_groups[0]["betas"][1] == pytest.approx(0.99**c)

    def d_after(gamma):
        s2 = _stepper(r1_gamma=gamma, r1_every=1, mixing_prob=0.0)
        torch.manual_seed(1)
        s2.step(x, y, 0)
        return [p.detach().clone() for p in s2.D.parameters()]

    assert not all(torch.equal(a, b) for a, b in zip(d_after(0.0), d_after(50.0)))


@pytest.mark.parametrize("arch", ["stylegan", "dcgan"])
def test_freeze_d_holds_the_input_side_layers_and_trains_the_rest(arch):
    st = _stepper(arch, freeze_d=2, init_from="base-model", r1_gamma=1.0, r1_every=2, mixing_prob=0.0)
    held = [p for layer in st.D.input_layers()[:2] for p in layer.parameters()]
    held_ids = {id(p) for p in held}
    rest = [p for p in st.D.parameters() if id(p) not in held_ids]
    before_held, before_rest = [p.clone() for p in held], [p.clone() for p in rest]
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 3
    for i in range(4):  # R1 steps (0, 2) differentiate through the held layers to the input
        assert torch.isfinite(st.step(x, y, i)).all()
    assert all(torch.equal(a, b) for a, b in zip(before_held, held))
    assert any(not torch.equal(a, b) for a, b in zip(before_rest, rest))
    # the held layers stay held across steps (G's step toggles only the trainable ones), and
    # the optimiser holds no state for them
    assert not any(p.requires_grad for p in held) and all(p.requires_grad for p in rest)
    assert {id(p) for p in st.opt_d.param_groups[0]["params"]} == {id(p) for p in rest}


def test_ema_off_keeps_the_saved_generator_equal_to_the_trained_one():
    st = _stepper("dcgan", ema_decay=0.0)
    assert st.hp["ema_decay"] == 0.0
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 3
    for i in range(3):
        st.step(x, y, i)
    for a, b in zip(st.G_ema.state_dict().values(), st.G.state_dict().values()):
        assert torch.equal(a, b)


def test_standing_statistics_fit_the_ema_generators_own_batchnorm_statistics():
    st = _stepper("dcgan")
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 3
    for i in range(20):  # G moves; G_ema (decay warm-up) lags, but carries G's BN statistics
        st.step(x, y, i)
    G = st.G_ema
    z, s = torch.randn(512, st.mcfg.z_dim), torch.arange(512) % 3

    def gap() -> float:  # eval-mode output vs the output under the batch's own statistics
        with torch.no_grad():
            G.train()
            batch_stats = G(z, s)
            G.eval()
            return float((G(z, s) - batch_stats).abs().mean())

    weights = [p.clone() for p in G.parameters()]
    before, rng = gap(), torch.get_rng_state()
    assert st.standing_statistics(seed=0) is True
    after = gap()
    assert after < 0.5 * before, (before, after)
    assert torch.equal(torch.get_rng_state(), rng)  # the training RNG stream is untouched
    assert all(torch.equal(a, b) for a, b in zip(weights, G.parameters())) and not G.training
    assert all(m.momentum is not None for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert _stepper("stylegan").standing_statistics(seed=0) is False  # no BatchNorm: nothing to do


def _two_colour_styles(n=16):
    """Style 0: reddish images, style 1: bluish, with noise — told apart by colour alone."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.rand(n, 3, 16, 16, generator=g) * 0.4 - 0.8
    x[y == 0, 0] += 1.2
    x[y == 1, 2] += 1.2
    return x, y


def test_style_loss_teaches_ds_style_head_the_real_styles_and_moves_g():
    x, y = _two_colour_styles()

    def head_accuracy(st):
        with torch.no_grad():
            _, classes = st.D(x, y, classes=True)
        return float((classes.argmax(1) == y).float().mean())

    st = _stepper(mixing_prob=0.0)  # default style_loss = 1
    start = head_accuracy(st)
    for i in range(30):
        st.step(x, y, i)
    assert head_accuracy(st) == 1.0 and start < 1.0

    off = _stepper(mixing_prob=0.0, style_loss=0.0)
    head = [p.clone() for p in off.D.classify.parameters()]
    for i in range(3):
        off.step(x, y, i)
    assert all(torch.equal(a, b) for a, b in zip(head, off.D.classify.parameters()))  # off: the head is unused

    def g_after(weight):
        s = _stepper(mixing_prob=0.0, style_loss=weight)
        torch.manual_seed(1)
        s.step(x, y, 0)
        return [p.detach().clone() for p in s.G.parameters()]

    assert not all(torch.equal(a, b) for a, b in zip(g_after(0.0), g_after(1.0)))  # G feels the style term


@pytest.mark.parametrize("arch", ["stylegan", "dcgan"])
def test_one_d_call_for_reals_and_fakes_gives_the_logits_of_two(arch):
    st = _stepper(arch)
    st.D.eval()  # spectral norm's power iteration would otherwise advance between the two calls
    x_real, x_fake = torch.rand(8, 3, 16, 16) * 2 - 1, torch.rand(8, 3, 16, 16) * 2 - 1
    y = torch.arange(8) % 3
    assert st._joint_d == 4
    joint = st._d_real_fake(x_real, x_fake, y)
    st._joint_d = 0
    separate = st._d_real_fake(x_real, x_fake, y)
    assert (joint[2] is None) == (arch == "dcgan")  # style logits: stylegan's style head only
    for j, s in zip(joint, separate):
        assert (j is None and s is None) or torch.allclose(j, s, atol=1e-5)


def test_compiled_step_matches_the_eager_step():
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 3
    out = []
    for compile_ in (False, True):
        st = _stepper("dcgan", compile=compile_)
        assert (st._D_fast is not None) == compile_
        torch.manual_seed(3)
        out.append((st.step(x, y, 0), [p.detach().clone() for p in st.G.parameters()]))
    (loss_e, g_e), (loss_c, g_c) = out
    assert torch.allclose(loss_e, loss_c, atol=1e-4)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_e, g_c))


def test_step_with_packing_gives_d_same_style_packs_and_carries_the_rest_to_the_next_step():
    st = _stepper(pack=2, r1_every=1)
    seen = []
    forward = st.D.forward
    st.D.forward = lambda x, style, classes=False: seen.append((x.clone(), style.clone())) or forward(x, style,
                                                                                                         classes)
    x, y = torch.rand(9, 3, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    assert torch.isfinite(st.step(x, y, 0)).all()
    # 2 of each style's 3 make packs (3 per half: reals, fakes); the third image of each waits
    assert seen and {len(s) for _, s in seen} <= {6, 12}
    assert all(torch.equal(s[0::2], s[1::2]) for _, s in seen)
    assert torch.equal(st._carry[1], torch.tensor([0, 1, 2])) and torch.equal(st._carry[0], x[6:])
    seen.clear()
    x2 = torch.rand(9, 3, 16, 16) * 2 - 1
    st.step(x2, y, 1)
    # the carried three join the next batch: 4 of each style, every image used, nothing left
    assert {len(s) for _, s in seen} <= {12, 24} and st._carry is None
    reals = seen[0][0][:12]
    assert all(any(torch.equal(r, c) for r in reals) for c in torch.cat([x[6:], x2]))


def test_mode_seeking_term_pairs_fakes_of_one_style_and_punishes_identical_images():
    from ray_gan.train.step import GANStep

    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 1, 0, 1, 2, 2])
    z = torch.randn(6, 8, generator=g)
    distinct = torch.rand(6, 3, 8, 8, generator=g)
    # the pairs are (0, 2), (1, 3), (4, 5): every image of a pair's style identical to its partner
    collapsed = distinct.clone()
    collapsed[2], collapsed[3], collapsed[5] = collapsed[0], collapsed[1], collapsed[4]
    spread = GANStep.mode_seeking_term(distinct, z, y)
    assert torch.isfinite(spread) and GANStep.mode_seeking_term(collapsed, z, y) > 1000 * spread
    # a pair of two styles is never compared: only images of one style must differ
    assert GANStep.mode_seeking_term(distinct[:2], z[:2], y[:2]) == 0
    # farther images for the same latents: a smaller term
    assert GANStep.mode_seeking_term(distinct * 3, z, y) < spread


def test_mode_seeking_moves_g_only_when_on():
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 2

    def g_after(weight):
        s = _stepper(mixing_prob=0.0, mode_seeking=weight)
        torch.manual_seed(1)
        assert torch.isfinite(s.step(x, y, 0)).all()
        return [p.detach().clone() for p in s.G.parameters()]

    off = g_after(0.0)
    assert all(torch.equal(a, b) for a, b in zip(off, g_after(0.0)))  # the comparison is deterministic
    assert not all(torch.equal(a, b) for a, b in zip(off, g_after(1.0)))
