"""The evaluation catches failure (issue #21): images known to be bad — real images blurred
with colour fringes along their edges (what a 10-minute stylegan drew), noise, a constant
image, an untrained generator — score clearly worse than real images on the headline
metrics, and sit near the floor of the calibration rows, while real images sit near the
ceiling."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import write_tiny_dataset, write_untrained_model

from ray_gan.data.dataset import read_dataset_info
from ray_gan.evaluate import EvalConfig, run_evaluation
from ray_gan.evaluate.realdata import real_images
from ray_gan.generate.render import Renderer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_TRAIN, N_VAL, SIZE = 160, 48, 32
STYLES = ["alpha", "beta", "gamma"]


def fringed(images: np.ndarray) -> np.ndarray:
    """Blurred, with the red and blue channels pulled apart along every edge."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    x[:, 0] = torch.roll(x[:, 0], 2, dims=-1)
    x[:, 2] = torch.roll(x[:, 2], -2, dims=-1)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class Source:
    """An image source: ``pick(style, i)`` gives the i-th image of a style."""

    def __init__(self, info, pick) -> None:
        self.info, self.device, self.pick = info, torch.device("cpu"), pick

    def render(self, styles, seeds, truncation=1.0):
        counters = {}
        out = []
        for s in styles:
            counters[s] = counters.get(s, -1) + 1
            out.append(self.pick(int(s), counters[s]))
        return np.stack(out)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("truth")
    data = write_tiny_dataset(str(root / "ds"), n_train=N_TRAIN, n_val=N_VAL, size=SIZE)
    model = write_untrained_model(str(root / "model"), STYLES, resolution=SIZE, seed=0)
    train = real_images(read_dataset_info(data), "train", {0: 0, 1: 1, 2: 2}, resolution=SIZE)
    return data, model, train


def _evaluate(setup, pick=None):
    data, model, _ = setup
    cfg = EvalConfig(model=model, data=data, n_per_style=N_VAL, classifier_steps=150, kid_subsets=20, device="cpu")
    info = Renderer(model, "cpu").info
    return run_evaluation(cfg, log=lambda s: None, renderer=None if pick is None else Source(info, pick))


def test_known_failures_score_near_the_floor_and_real_images_near_the_ceiling(setup):
    _, _, train = setup
    by_style = {k: train.images[train.styles == k] for k in range(3)}
    real = _evaluate(setup, lambda s, i: by_style[s][i])  # unseen real images: as good as it gets
    bad = {
        "fringed": _evaluate(setup, lambda s, i: fringed(by_style[s][i : i + 1])[0]),
        "noise": _evaluate(setup, lambda s, i: np.random.default_rng(1000 * s + i).integers(
            0, 256, (SIZE, SIZE, 3), dtype=np.uint8)),
        "constant": _evaluate(setup, lambda s, i: np.full((SIZE, SIZE, 3), 128, np.uint8)),
        "untrained": _evaluate(setup),
    }
    lines = [f"{'':10} {'FID':>8} {'cov':>6} {'acc':>6} {'pos fid':>8} {'pos cov':>8}"]
    for name, r in [("real", real), *bad.items()]:
        lines.append(f"{name:10} {r.fid:8.2f} {r.coverage:6.3f} {r.style_accuracy:6.3f} "
                     f"{r.position['fid']:8.2f} {r.position['coverage']:8.2f}")
    print("\n".join(lines))
    assert real.classifier.val_accuracy > 0.9  # features worth trusting
    assert real.position["fid"] > 0.85 and real.position["coverage"] > 0.8  # at the ceiling
    for name, r in bad.items():
        assert r.fid > 4 * real.fid, (name, r.fid, real.fid)
        assert r.coverage < real.coverage - 0.5, (name, r.coverage, real.coverage)
        assert r.position["fid"] < 0.25 and r.position["coverage"] < 0.35, (name, r.position)  # near the floor
