"""ray_gan.generate.interpolate: frames between two (style, seed) endpoints."""

import numpy as np
import pytest

from ray_gan.generate.interpolate import Endpoint, interpolate, write_interpolation
from ray_gan.generate.render import Renderer


def test_interpolation_ends_at_its_endpoints_and_moves_smoothly(tiny_stylegan, tmp_path):
    r = Renderer(tiny_stylegan, "cpu")
    frames = interpolate(r, Endpoint("alpha", 3), Endpoint("beta", 9), steps=6)
    ends = r.render([0, 1], [3, 9])
    assert np.abs(frames[0].astype(int) - ends[0]).max() <= 1
    assert np.abs(frames[-1].astype(int) - ends[1]).max() <= 1
    steps = [np.abs(frames[i + 1].astype(float) - frames[i]).mean() for i in range(5)]
    assert max(steps) < np.abs(frames[-1].astype(float) - frames[0]).mean()  # no jumps
    uris = write_interpolation(frames, str(tmp_path / "interp"))
    from PIL import Image

    gif = Image.open(uris["gif"])
    assert gif.n_frames == 2 * 6 - 2 and Image.open(uris["strip"]).size[0] > 6 * 16


def test_dcgan_interpolates_seeds_within_a_style_only(tiny_model):
    r = Renderer(tiny_model, "cpu")
    frames = interpolate(r, Endpoint("alpha", 1), Endpoint("alpha", 2), steps=4)
    assert np.abs(frames[0].astype(int) - r.render([0], [1])[0]).max() <= 1
    with pytest.raises(ValueError, match="mapping network"):
        interpolate(r, Endpoint("alpha", 1), Endpoint("beta", 2))
    with pytest.raises(ValueError, match="STYLE:SEED"):
        Endpoint.parse("alpha")
