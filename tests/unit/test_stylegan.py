"""The stylegan architecture and the training step: shapes, conditioning, and that each
regulariser/option does what it says."""

import copy

import pytest
import torch
import torch.nn.functional as F

from ray_gan.config import ModelConfig, TrainConfig
from ray_gan.models import build_discriminator, build_generator
from ray_gan.models.stylegan import ModulatedConv2d, same_style_packs
from ray_gan.train.augment import diff_augment
from ray_gan.train.finetune import freeze_input_layers
from ray_gan.train.step import GANStep


def small(res=16, styles=3):
    return ModelConfig(arch="stylegan", resolution=res, num_styles=styles, g_channels=8, d_channels=8, z_dim=16,
                       w_dim=16, embed_dim=8, mapping_layers=2, max_channels=32)


@pytest.mark.parametrize("res", [8, 16, 32, 64])
def test_shapes_every_resolution(res):
    cfg = small(res)
    G, D = build_generator(cfg), build_discriminator(cfg)
    z, s = torch.randn(4, 16), torch.tensor([0, 1, 2, 0])
    x = G(z, s)
    assert x.shape == (4, 3, res, res)
    assert D(x, s).shape == (4,)
    assert G.num_ws == len(G.ws_resolution())
    assert sorted(G.layer_range("coarse") + G.layer_range("fine")) == list(range(G.num_ws))


def test_resolution_must_be_power_of_two_in_range():
    with pytest.raises(ValueError, match="power-of-two"):
        ModelConfig(arch="stylegan", resolution=48)
    with pytest.raises(ValueError, match="power-of-two"):
        ModelConfig(arch="stylegan", resolution=512)


def test_demodulation_normalises_output_scale_whatever_the_style():
    torch.manual_seed(0)
    conv = ModulatedConv2d(32, 32, 3, w_dim=8)
    x = torch.randn(8, 32, 16, 16)
    with torch.no_grad():
        conv.affine.bias.fill_(10.0)  # huge styles
        big = conv(x, torch.randn(8, 8)).std()
        conv.affine.bias.fill_(0.1)  # tiny styles
        tiny = conv(x, torch.randn(8, 8)).std()
    assert float(big) == pytest.approx(float(tiny), rel=0.3)  # demodulated: scale of the styles cancels
    assert 0.5 < float(big) < 2.0


def test_label_and_noise_matter_and_eval_noise_is_fixed():
    torch.manual_seed(0)
    G = build_generator(small())
    z = torch.randn(2, 16)
    G.eval()
    with torch.no_grad():
        a, b = G(z, torch.tensor([0, 0])), G(z, torch.tensor([1, 1]))
        for layer in G.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(0.5)
        c1, c2 = G(z, torch.tensor([0, 0])), G(z, torch.tensor([0, 0]))
        G.train()
        d1, d2 = G(z, torch.tensor([0, 0])), G(z, torch.tensor([0, 0]))
    assert not torch.allclose(a, b)  # the style label changes the image
    assert torch.equal(c1, c2)  # eval: constant noise, deterministic
    assert not torch.allclose(d1, d2)  # training: fresh noise


def test_without_noise_inputs_the_image_is_a_function_of_w_alone():
    torch.manual_seed(0)
    G = build_generator(small().model_copy(update={"noise_inputs": False}))
    assert not any("noise" in k for k in G.state_dict())  # no strengths, no stored noise images
    z, s = torch.randn(2, 16), torch.tensor([0, 1])
    with torch.no_grad():
        G.train()
        a, b = G(z, s), G(z, s)
        G.eval()
        c = G(z, s)
    assert torch.equal(a, b) and torch.allclose(a, c)  # training mode draws no noise either
    with_noise = build_generator(small())
    assert any("noise_strength" in k for k in with_noise.state_dict())


def test_w_avg_tracks_each_styles_mean_and_truncation_uses_it():
    torch.manual_seed(0)
    G = build_generator(small())
    z, s = torch.randn(512, 16), torch.arange(512) % 3
    w = G.mapping(z, s).detach()
    for _ in range(2000):
        G.update_w_avg(w, s)
    for k in range(3):
        assert torch.allclose(G.w_avg[k], w[s == k].mean(dim=0), atol=1e-4)
    t = G.truncate(w, s, 0.0)
    assert torch.allclose(t, G.w_avg[s])


def test_diffaugment_changes_images_keeps_shape_and_is_differentiable():
    x = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = diff_augment(x, "color,translation,cutout", torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.allclose(x, y)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # cutout zeroes a quarter of the image (half the side); translation shifts content
    ones = torch.ones(16, 3, 16, 16)
    cut = diff_augment(ones, "cutout", torch.Generator().manual_seed(1))
    assert (cut == 0).float().mean(dim=(1, 2, 3)).max() == pytest.approx(0.25, abs=0.01)
    with pytest.raises(ValueError, match="unknown DiffAugment"):
        diff_augment(x, "rotate")


def _stepper(arch="stylegan", pack=1, **train):
    torch.manual_seed(0)
    mc = small().model_copy(update={"pack": pack}) if arch == "stylegan" else ModelConfig(arch="dcgan", resolution=16, num_styles=3, g_channels=8,
                                                        d_channels=8)
    G, D = build_generator(mc), build_discriminator(mc)
    cfg = TrainConfig.from_flat(dataset="d", out="o", arch=arch, **train)
    if cfg.freeze_d:  # as the training loop does before it builds the step
        freeze_input_layers(D, cfg.freeze_d)
    return GANStep(G, D, copy.deepcopy(G).eval(), mc, cfg, torch.device("cpu"))


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


def test_freeze_d_is_for_fine_tuning_and_within_the_discriminators_depth():
    with pytest.raises(ValueError, match="for fine-tuning"):
        TrainConfig.from_flat(dataset="d", out="o", freeze_d=1)
    depth = len(build_discriminator(small()).input_layers())
    assert depth == 3  # from-RGB and the 16 → 8 and 8 → 4 blocks
    with pytest.raises(ValueError, match="has 3 input-side layers"):
        _stepper(freeze_d=4, init_from="base-model")


def _hp(cfg: TrainConfig, mcfg: ModelConfig, world: int) -> dict:
    return cfg.hyperparameters(mcfg, world)


def test_hyperparameter_defaults_per_arch():
    hp = _hp(TrainConfig.from_flat(dataset="d", out="o", arch="stylegan", batch_size=32), small(32), 2)
    assert hp["beta1"] == 0.0 and hp["r1_gamma"] == pytest.approx(0.0002 * 32 * 32 / 64)
    assert hp["ema_decay"] == 0.999 and hp["style_loss"] == 1.0
    hp = _hp(TrainConfig.from_flat(dataset="d", out="o", lr_g=1e-3), ModelConfig(arch="dcgan", num_styles=3), 1)
    assert hp["lr_g"] == 1e-3 and hp["beta1"] == 0.5 and hp["r1_gamma"] == 0.0
    assert hp["ema_decay"] == 0.999 and hp["style_loss"] == 0.0  # no style head in dcgan
    # the style loss needs stylegan's style head and two or more styles: asked for elsewhere, a clear error
    with pytest.raises(ValueError, match="style_loss needs a conditional stylegan"):
        _hp(TrainConfig.from_flat(dataset="d", out="o", style_loss=1.0), ModelConfig(arch="dcgan", num_styles=3), 1)
    one_style = _hp(TrainConfig.from_flat(dataset="d", out="o", arch="stylegan"), small(16, styles=1), 1)
    assert one_style["style_loss"] == 0.0  # default quietly off where there is nothing to classify


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


def test_minibatch_stddev_groups_consecutive_samples():
    from ray_gan.models.layers import MinibatchStdDev

    torch.manual_seed(0)
    a, b = torch.randn(8, 5, 4, 4), torch.randn(8, 5, 4, 4) * 3
    mb = MinibatchStdDev(group_size=4)
    joint = mb(torch.cat([a, b]))
    # the halves are scored as if alone: no group mixes reals with fakes
    assert torch.allclose(joint[:8], mb(a), atol=1e-6) and torch.allclose(joint[8:], mb(b), atol=1e-6)
    # the extra channel is the group's mean feature std (population), constant per group
    expect = a[:4].std(dim=0, unbiased=False).mean()
    assert torch.allclose(joint[:4, 5], expect.expand(4, 4, 4), atol=1e-5)
    assert not torch.allclose(joint[4, 5], joint[0, 5])


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


def test_same_style_packs_cuts_each_style_into_whole_packs():
    y = torch.tensor([2, 0, 1, 0, 2, 2, 1, 0, 0, 1, 2])  # counts 4, 3, 4
    assert torch.equal(same_style_packs(y, 1), torch.arange(len(y)))
    for pack in (2, 3):
        keep = same_style_packs(y, pack)
        assert len(set(keep.tolist())) == len(keep)
        ys = y[keep]
        assert all(len(set(ys[i : i + pack].tolist())) == 1 for i in range(0, len(ys), pack))
        assert torch.equal(torch.bincount(ys, minlength=3), torch.bincount(y) // pack * pack)


def test_packing_discriminator_scores_one_logit_per_pack_and_refuses_a_partial_pack():
    D = build_discriminator(small().model_copy(update={"pack": 2}))
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.tensor([0, 0, 1, 1, 2, 2, 0, 0])
    logits, classes = D(x, y, classes=True)
    assert logits.shape == (4,) and classes.shape == (4, 3)
    x2 = x.clone()
    x2[1] = x[0]  # pack 0 now holds one image twice
    assert not torch.allclose(D(x2, y)[0], logits[0])
    with pytest.raises(ValueError, match="multiple of 2"):
        D(x[:7], y[:7])
    with pytest.raises(ValueError, match="stylegan setting"):
        ModelConfig(arch="dcgan", pack=2)
    with pytest.raises(ValueError, match="too small for discriminator packs"):
        _hp(TrainConfig.from_flat(dataset="d", out="o", arch="stylegan", batch_size=5),
                                small().model_copy(update={"pack": 2}), 1)


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


@pytest.mark.parametrize("pack", [1, 2])
def test_packing_lets_d_tell_repeated_images_from_distinct_ones(pack):
    """What packing is for: real packs hold different images, a collapsed G's packs the
    same image twice. Each image alone is drawn from the same set either way, so an
    unpacked D learns next to nothing; a packed D separates the two."""
    torch.manual_seed(0)
    pool = torch.rand(64, 3, 8, 8) * 2 - 1
    mc = ModelConfig(arch="stylegan", resolution=8, num_styles=1, conditional=False, d_channels=8,
                     max_channels=16, pack=pack)
    D = build_discriminator(mc)
    opt = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
    y = torch.zeros(32, dtype=torch.long)

    def batches():
        i = torch.randperm(64)[:32]
        distinct = pool[i]  # 16 pairs of two different images
        repeated = pool[i[:16]].repeat_interleave(2, 0)  # 16 pairs of one image twice
        return distinct, repeated

    for _ in range(150):
        distinct, repeated = batches()
        loss = F.softplus(-D(distinct, y)).mean() + F.softplus(D(repeated, y)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        distinct, repeated = batches()
        gap = float(D(distinct, y).mean() - D(repeated, y).mean())
    if pack == 2:
        assert gap > 2.0
    else:
        assert abs(gap) < 1.0


def test_training_packs_stylegan_by_default_as_far_as_a_batch_holds_every_style():
    def built(arch="stylegan", styles=5, **train):
        return TrainConfig.from_flat(dataset="d", out="o", arch=arch, **train).new_model_config(styles, 32)

    # packs of 2 where a worker's batch (32) holds a pack of every style
    assert [built(styles=n).pack for n in (5, 16, 17, 1)] == [2, 2, 1, 2]

    assert built().pack == 2 and built(styles=17).pack == 1 and built(pack=4).pack == 4
    assert built("dcgan").pack == 1
    with pytest.raises(ValueError, match="stylegan setting"):
        built("dcgan", pack=2)
