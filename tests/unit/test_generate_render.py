"""ray_gan.generate.render: latents from seeds, batch-independent bytes, truncation (global
and per style) and style mixing."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import SEEDS

from ray_gan.config import MixSpec
from ray_gan.generate.render import RENDER_ALIGN, RENDER_BATCH, Renderer, device_fingerprint, latents_from_seeds


def test_latents_depend_only_on_seed():
    a = latents_from_seeds([5, 6], 32)
    b = latents_from_seeds([6], 32)
    assert torch.equal(a[1], b[0])
    assert not torch.equal(a[0], a[1])


def test_image_bytes_do_not_depend_on_batch_composition(tiny_model):
    r = Renderer(tiny_model, device="cpu")
    seeds = list(range(100, 100 + RENDER_BATCH + 7))
    together = r.render([1] * len(seeds), seeds, 0.8)
    alone = r.render([1], [seeds[-1]], 0.8)
    mixed = r.render([0, 1, 2], [1, seeds[-1], 3], 0.8)
    assert np.array_equal(together[-1], alone[0])
    assert np.array_equal(mixed[1], alone[0])


@pytest.mark.parametrize("arch", ["stylegan", "dcgan", "vanilla"])
def test_image_bytes_do_not_depend_on_the_micro_batch_size(arch, tmp_path):
    """Serve renders in micro-batches of up to 64 rows (ServeConfig.batching.render_batch),
    batch jobs in 16: at every multiple of 16 up to 128, at the default model size of each
    architecture, every image has the same bytes (the contract of ray_gan.generate.render)."""
    import ray_gan.checkpoint as ckpt
    from ray_gan.config import ModelConfig
    from ray_gan.models import build_generator

    cfg = ModelConfig.default_for(arch, 3, 32)  # a new model of the architecture (its preset)
    torch.manual_seed(0)
    uri = ckpt.write_generator_model(str(tmp_path / "m"), build_generator(cfg).eval(), cfg, ["a", "b", "c"], step=1).uri
    seeds = list(range(1000, 1000 + 64 + 5))  # 80 rows once padded: micro-batches of 16 to 80 rows
    styles = [s % 3 for s in seeds]
    base = Renderer(uri, "cpu", render_batch=RENDER_ALIGN).render(styles, seeds, 0.7)
    for size in range(2 * RENDER_ALIGN, 128 + 1, RENDER_ALIGN):
        assert np.array_equal(Renderer(uri, "cpu", render_batch=size).render(styles, seeds, 0.7), base), size
    one = Renderer(uri, "cpu", render_batch=64)
    assert np.array_equal(one.render([styles[7]], [seeds[7]], 0.7)[0], base[7])  # alone, padded to 16 rows


def test_render_batch_must_be_a_multiple_of_16(tiny_model):
    with pytest.raises(ValueError, match="multiple of 16"):
        Renderer(tiny_model, "cpu", render_batch=24)


def test_device_fingerprint_names_what_bytes_depend_on():
    fp = device_fingerprint("cpu")
    assert fp["kind"] == "cpu" and fp["torch"] == torch.__version__ and fp["cudnn"] is None
    assert fp["name"] and fp["cpu_capability"]


def test_truncation_zero_collapses_to_the_mean_latent(tiny_model):
    r = Renderer(tiny_model, device="cpu")
    imgs = r.render([0] * 4, [1, 2, 3, 4], 0.0)
    assert all(np.array_equal(imgs[0], im) for im in imgs[1:])
    spread_full = r.render([0] * 8, list(range(8)), 1.0).astype(float).std(axis=0).mean()
    spread_trunc = r.render([0] * 8, list(range(8)), 0.3).astype(float).std(axis=0).mean()
    assert spread_trunc < spread_full


def diversity(images: np.ndarray) -> float:
    x = images.reshape(len(images), -1).astype(np.float64)
    d = np.abs(x[:, None] - x[None]).mean(axis=2)
    return float(d[np.triu_indices(len(x), 1)].mean())


def low_pass(images: np.ndarray) -> np.ndarray:
    return F.avg_pool2d(torch.from_numpy(images).permute(0, 3, 1, 2).float(), 4).numpy()


@pytest.mark.parametrize("fixture", ["tiny_stylegan", "tiny_model"])
def test_truncation_lowers_diversity(fixture, request):
    r = Renderer(request.getfixturevalue(fixture), "cpu")
    d = [diversity(r.render([0] * len(SEEDS), SEEDS, psi)) for psi in (1.0, 0.6, 0.3, 0.0)]
    assert d[0] > d[1] > d[2] > d[3]
    assert d[3] == 0.0  # psi 0: every seed gives the mean image


def test_truncation_is_per_style_towards_that_styles_mean(tiny_stylegan):
    r = Renderer(tiny_stylegan, "cpu")
    means = r.render([0, 1, 2], [0, 0, 0], 0.0)
    assert len({m.tobytes() for m in means}) == 3  # each style has its own mean image
    assert np.array_equal(r.render([1], [123], 0.0)[0], means[1])
    mixed = r.render([0, 1], [5, 5], [1.0, 0.0])  # per-image values
    assert np.array_equal(mixed[0], r.render([0], [5], 1.0)[0]) and np.array_equal(mixed[1], means[1])


def test_mixing_coarse_takes_structure_fine_keeps_it(tiny_stylegan):
    r = Renderer(tiny_stylegan, "cpu")
    a = r.render([0] * 24, SEEDS)
    b = r.render([0] * 24, [s + 500 for s in SEEDS])
    coarse = r.render([0] * 24, SEEDS, mix=MixSpec(layers="coarse", seed_offset=500))
    fine = r.render([0] * 24, SEEDS, mix=MixSpec(layers="fine", seed_offset=500))
    la, lb = low_pass(a), low_pass(b)
    # coarse layers from B: the low-frequency structure follows B; fine from B: it stays A's
    assert np.abs(low_pass(coarse) - lb).mean() < np.abs(low_pass(coarse) - la).mean()
    assert np.abs(low_pass(fine) - la).mean() < np.abs(low_pass(fine) - lb).mean()
    all_b = r.render([0] * 24, SEEDS, mix=MixSpec(layers="all", seed_offset=500))
    assert np.array_equal(all_b, b)
    # another style for the mixed layers, explicit seed
    other = r.render([0] * 4, SEEDS[:4], mix=MixSpec(layers="fine", style="beta", seed=7))
    assert not np.array_equal(other, a[:4])


def test_mixing_and_edits_need_a_mapping_network(tiny_model):
    r = Renderer(tiny_model, "cpu")
    with pytest.raises(ValueError, match="mapping network"):
        r.render([0], [0], mix=MixSpec())
