"""ray_gan.generate.forward: traced passes give the eager passes' bytes, and run while
another Python thread holds the GIL."""

import sys

import numpy as np
import pytest
import torch

import ray_gan.checkpoint as ckpt
from ray_gan.config import MixSpec, ModelConfig
from ray_gan.generate.directions import compute_directions, save_directions
from ray_gan.generate.forward import Forward
from ray_gan.generate.render import Renderer
from ray_gan.models import build_generator


def _model(tmp_path, arch: str) -> str:
    cfg = ModelConfig.default_for(arch, 3, 32)  # a new model of the architecture (its preset)
    torch.manual_seed(0)
    return ckpt.write_generator_model(str(tmp_path / arch), build_generator(cfg).eval(), cfg, ["a", "b", "c"],
                                      step=1).uri


@pytest.mark.parametrize("arch", ["stylegan", "dcgan", "vanilla"])
def test_traced_rendering_gives_the_eager_bytes(arch, tmp_path):
    uri = _model(tmp_path, arch)
    seeds = list(range(300, 300 + 37))  # 48 rows once padded: two micro-batches of 32 and 16
    styles = [s % 3 for s in seeds]
    psi = [0.5 + (s % 5) / 10 for s in seeds]
    eager = Renderer(uri, "cpu", render_batch=32)
    traced = Renderer(uri, "cpu", render_batch=32, traced=True)
    assert traced.forward.traced and not eager.forward.traced
    for _ in range(3):  # the graph executor profiles the first calls; bytes must not change after
        assert np.array_equal(traced.render(styles, seeds, psi), eager.render(styles, seeds, psi))
    if arch != "stylegan":
        return
    G, info = eager.G, eager.info
    d, mean = compute_directions(G, 3, components=2, samples=200)
    save_directions(info, d, mean, 200)
    traced = Renderer(uri, "cpu", render_batch=32, traced=True)
    for mix, edits in ((MixSpec(layers="fine", style="b"), None), (None, {"pc0": 2.0}),
                       (MixSpec(layers="coarse", seed=7), {"pc1": -1.5})):
        a = traced.render(styles, seeds, psi, mix=mix, edits=edits)
        assert np.array_equal(a, eager.render(styles, seeds, psi, mix=mix, edits=edits)), (mix, edits)
    w = eager.w([0, 1], [5, 6], 0.7)
    assert torch.equal(traced.w([0, 1], [5, 6], 0.7), w)
    assert np.array_equal(traced.synthesize(w), eager.synthesize(w))


def _python_calls(fn) -> int:
    """Python-level calls (functions and builtins) made while ``fn`` runs."""
    calls = [0]

    def count(frame, event, arg) -> None:
        calls[0] += event in ("call", "c_call")

    sys.setprofile(count)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls[0]


def test_a_traced_forward_runs_no_python_per_layer(tmp_path):
    """The reason for tracing: every Python step of an eager forward must win the GIL back
    from the replica's other threads (a convoy: 25x slower beside one busy thread on the
    2-core machine). A traced forward enters C++ once per pass, whatever the depth."""
    uri = _model(tmp_path, "stylegan")
    eager, traced = (Renderer(uri, "cpu", render_batch=32, traced=t) for t in (False, True))
    ws = torch.randn(32, eager.G.num_ws, eager.G.w_dim)
    with torch.no_grad():
        traced.forward.synthesis(ws)
        n_traced = _python_calls(lambda: traced.forward.synthesis(ws))
        n_eager = _python_calls(lambda: eager.forward.synthesis(ws))
    assert n_eager > 10 * n_traced, (n_eager, n_traced)  # modules, layers, functional calls
    assert n_traced < 50, n_traced  # the wrappers and the context manager, not the layers


def test_an_untraceable_generator_renders_eagerly(tmp_path, caplog):
    uri = _model(tmp_path, "dcgan")
    r = Renderer(uri, "cpu")

    class Broken(torch.nn.Module):
        cfg = r.G.cfg

        def forward(self, z, s):
            raise RuntimeError("no trace")

    with caplog.at_level("WARNING"):
        f = Forward(Broken(), r.device, traced=True)
    assert not f.traced and "rendering eagerly" in caplog.text
