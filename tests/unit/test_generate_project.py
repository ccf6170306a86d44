"""ray_gan.generate.project: finding the latent and style of an image."""

import numpy as np

from ray_gan.generate.render import Renderer


def test_projection_recovers_a_generated_image_and_its_style(tiny_stylegan):
    from ray_gan.generate.project import project

    r = Renderer(tiny_stylegan, "cpu")
    target = r.render([1], [42])[0]
    p = project(r, target, steps=120, restarts=4, seed=0)
    assert p.style == "beta"
    others = r.render([1] * 16, list(range(100, 116)))  # what a random latent gives
    chance = np.mean([10 * np.log10(255**2 / ((o.astype(float) - target) ** 2).mean()) for o in others])
    assert p.psnr_db > chance + 4.0
    assert set(p.restyled) == {"alpha", "beta", "gamma"}
    assert np.array_equal(p.restyled["beta"], p.reconstruction)


def test_projection_refines_in_w_where_z_falls_short(tiny_stylegan):
    from ray_gan.generate.project import project

    r = Renderer(tiny_stylegan, "cpu")
    a, b = r.render([1, 1], [42, 7])
    target = ((a.astype(np.float64) + b) / 2).round().astype(np.uint8)  # no single latent draws this
    z_only = project(r, target, style="beta", steps=60, restarts=2, seed=0, refine_steps=0)
    refined = project(r, target, style="beta", steps=60, restarts=2, seed=0, refine_steps=80)
    assert z_only.w_offset is None and z_only.z == refined.z  # the same z search
    assert refined.w_offset is not None and refined.mse < 0.9 * z_only.mse
    assert np.array_equal(refined.restyled["beta"], refined.reconstruction)
    # every style gets the same offset: the other styles change too
    assert not np.array_equal(refined.restyled["alpha"], z_only.restyled["alpha"])
