"""ray_gan.style_weights.blend: blending two models' weights (generators and discriminators)."""

import numpy as np
import pytest
import torch

from ray_gan import checkpoint as ckpt
from ray_gan import storage
from ray_gan.checkpoint import load_generator, read_model_info
from ray_gan.generate.render import Renderer


def test_blend_alpha_0_and_1_reproduce_the_parents(tmp_path, untrained_model):
    from ray_gan.style_weights.blend import blend_models

    a = untrained_model(str(tmp_path / "a"), ["x", "y"], arch="stylegan", seed=1)
    b = untrained_model(str(tmp_path / "b"), ["x", "y"], arch="stylegan", seed=2)
    img = {k: Renderer(u, "cpu").render([0, 1, 1], [1, 2, 3]) for k, u in (("a", a), ("b", b))}
    out0 = blend_models(a, b, str(tmp_path / "o0"), alpha=0.0)
    out1 = blend_models(a, b, str(tmp_path / "o1"), alpha=1.0)
    half = blend_models(a, b, str(tmp_path / "h"), alpha=0.5)
    assert np.array_equal(Renderer(out0.uri, "cpu").render([0, 1, 1], [1, 2, 3]), img["a"])
    assert np.array_equal(Renderer(out1.uri, "cpu").render([0, 1, 1], [1, 2, 3]), img["b"])
    mid = Renderer(half.uri, "cpu").render([0, 1, 1], [1, 2, 3])
    assert not np.array_equal(mid, img["a"]) and not np.array_equal(mid, img["b"])
    # layer swap: only the fine layers from B
    fine = blend_models(a, b, str(tmp_path / "f"), alpha=1.0, layers=["fine"])
    Ga, _ = load_generator(a)
    Gb, _ = load_generator(b)
    Gf, _ = load_generator(fine.uri)
    assert torch.equal(Gf.blocks[-1].conv1.conv.weight, Gb.blocks[-1].conv1.conv.weight)
    assert torch.equal(Gf.conv4.conv.weight, Ga.conv4.conv.weight)
    assert torch.equal(Gf.mapping.layers[0].weight, Ga.mapping.layers[0].weight)
    assert fine.raw["blend"]["layers"] == ["16"]  # 16 px model: coarse = 4, 8; fine = 16


@pytest.mark.parametrize("arch", ["stylegan", "dcgan"])
def test_blend_carries_the_discriminators_so_the_blend_can_be_fine_tuned(tmp_path, untrained_model, arch):
    from ray_gan.style_weights.blend import blend_models

    a = untrained_model(str(tmp_path / "a"), ["x", "y"], arch=arch, seed=1, discriminator=True)
    b = untrained_model(str(tmp_path / "b"), ["x", "y"], arch=arch, seed=2, discriminator=True)
    d = {k: ckpt.read_discriminator_state(read_model_info(u).checkpoint) for k, u in (("a", a), ("b", b))}
    floats = [n for n, t in d["a"].items() if t.is_floating_point() and not torch.equal(t, d["b"][n])]
    assert floats  # the parents' discriminators differ

    def blended_d(info):
        return ckpt.read_discriminator_state(info.checkpoint)

    ends = {alpha: blend_models(a, b, str(tmp_path / f"o{alpha}"), alpha=alpha) for alpha in (0.0, 0.25, 1.0)}
    for alpha, parent in ((0.0, "a"), (1.0, "b")):  # the ends are the parents' Ds, bit for bit
        assert all(torch.equal(t, d[parent][n]) for n, t in blended_d(ends[alpha]).items())
    quarter = blended_d(ends[0.25])
    assert all(torch.allclose(quarter[n], d["a"][n] + 0.25 * (d["b"][n] - d["a"][n]), atol=1e-6) for n in floats)
    assert ends[0.25].raw["blend"]["discriminator"] == "lerp(A, B, 0.25)"
    assert ends[0.25].raw["weights_sha256"]["discriminator"]  # recorded and checked on read
    # a blend of some layer groups keeps A's D
    fine = blend_models(a, b, str(tmp_path / "f"), alpha=1.0, layers=["fine"])
    assert all(torch.equal(t, d["a"][n]) for n, t in blended_d(fine).items())
    assert fine.raw["blend"]["discriminator"] == "A's"
    # a parent without a D: a generator-only blend that says why
    g_only = untrained_model(str(tmp_path / "g"), ["x", "y"], arch=arch, seed=3)
    plain = blend_models(a, g_only, str(tmp_path / "p"), alpha=0.5)
    assert blended_d(plain) is None and plain.raw["blend"]["discriminator"] == "none: B has no discriminator"
    # a corrupted D is refused, not loaded
    uri = storage.join(ends[0.25].checkpoint, ckpt.DISCRIMINATOR_FILE)
    data = bytearray(storage.read_bytes(uri))
    data[-1] ^= 1
    storage.write_bytes(uri, bytes(data))
    with pytest.raises(storage.StorageError, match="do not match"):
        blended_d(ends[0.25])


def test_blend_refuses_incompatible_generators(tmp_path, untrained_model):
    from ray_gan.style_weights.blend import blend_models

    a = untrained_model(str(tmp_path / "a"), ["x"], arch="stylegan", resolution=16)
    b = untrained_model(str(tmp_path / "b"), ["x"], arch="stylegan", resolution=32)
    with pytest.raises(ValueError, match="not compatible"):
        blend_models(a, b, str(tmp_path / "o"))
