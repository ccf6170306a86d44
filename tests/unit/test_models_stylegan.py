"""ray_gan.models.stylegan: shapes, conditioning, noise inputs, per-style mean latents,
modulated convolutions and the packing discriminator."""

import pytest
import torch
import torch.nn.functional as F
from helpers import small

from ray_gan.config import ModelConfig, TrainConfig
from ray_gan.models import build_discriminator, build_generator
from ray_gan.models.stylegan import ModulatedConv2d, same_style_packs


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
        TrainConfig.from_flat(dataset="d", out="o", arch="stylegan", batch_size=5).hyperparameters(
            small().model_copy(update={"pack": 2}), 1)


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


def test_new_models_draw_inside_the_rendered_range_and_stored_ones_stay_linear():
    """Issue #20's colour fringes: a linear output leaves [-1, 1] by different amounts per
    channel, which D sees but a rendered image clips channel by channel. New models end
    in tanh; a model.json from before the option keeps the linear output it trained with."""
    new = ModelConfig.default_for("stylegan", num_styles=2, resolution=16)
    assert new.bounded_output
    G = build_generator(new).eval()
    with torch.no_grad():
        for p in G.parameters():
            p.mul_(8.0)  # weights far from their start: a linear output would leave the range
        x = G(torch.randn(16, new.z_dim), torch.arange(16) % 2)
    assert x.abs().max() <= 1.0 and x.abs().max() > 0.9
    stored = new.model_dump()
    del stored["bounded_output"]
    old = ModelConfig.model_validate(stored)
    assert not old.bounded_output
    G_old = build_generator(old).eval()
    G_old.load_state_dict(G.state_dict())  # same weights, same state-dict keys
    with torch.no_grad():
        assert G_old(torch.randn(16, new.z_dim), torch.arange(16) % 2).abs().max() > 1.0
    with pytest.raises(ValueError, match="bounded_output is a stylegan setting"):
        ModelConfig(arch="dcgan", bounded_output=True)
    assert not TrainConfig.from_flat(dataset="d", out="o", bounded_output=False).new_model_config(2, 16).bounded_output
