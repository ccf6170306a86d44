"""The evaluation catches failure (issue #21): images known to be bad — real images blurred
with colour fringes along their edges (what a 10-minute stylegan drew), noise, a constant
image, an untrained generator — score clearly worse than real images on the headline
metrics, sit near the floor of the calibration rows and are told apart by the detector,
while fresh real images sit near the ceiling and near chance for the detector."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_DATASET_STYLES, write_tiny_dataset, write_untrained_model

from ray_gan.data.dataset import read_dataset_info
from ray_gan.data.demo import iter_demo_images
from ray_gan.evaluate import EvalConfig, run_evaluation
from ray_gan.evaluate.realdata import real_images
from ray_gan.generate.render import Renderer
from ray_gan.images import decode

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
    cfg = EvalConfig(model=model, data=data, n_per_style=N_VAL, classifier_steps=150, detector_steps=150,
                     kid_subsets=20, device="cpu")
    info = Renderer(model, "cpu").info
    return run_evaluation(cfg, log=lambda s: None, renderer=None if pick is None else Source(info, pick))


def test_known_failures_score_near_the_floor_and_real_images_near_the_ceiling(setup):
    _, _, train = setup
    by_style = {k: train.images[train.styles == k] for k in range(3)}
    # A perfect generator: fresh draws from the procedure that made the dataset (another seed),
    # never seen by the classifier or the detector. Each render call draws new ones.
    fresh = {STYLES.index(name): [] for name in STYLES}
    for demo_style, _, png in iter_demo_images(per_style=120, size=SIZE, seed=7):
        name = next((k for k, v in TINY_DATASET_STYLES.items() if v == demo_style), None)
        if name is not None:
            fresh[STYLES.index(name)].append(decode(png))
    real = _evaluate(setup, lambda s, i: fresh[s].pop())
    bad = {
        "fringed": _evaluate(setup, lambda s, i: fringed(by_style[s][i : i + 1])[0]),
        "noise": _evaluate(setup, lambda s, i: np.random.default_rng(1000 * s + i).integers(
            0, 256, (SIZE, SIZE, 3), dtype=np.uint8)),
        "constant": _evaluate(setup, lambda s, i: np.full((SIZE, SIZE, 3), 128, np.uint8)),
        "untrained": _evaluate(setup),
    }
    lines = [f"{'':10} {'FID':>8} {'cov':>6} {'acc':>6} {'pos fid':>8} {'pos cov':>8} {'detect':>6}"]
    for name, r in [("real", real), *bad.items()]:
        lines.append(f"{name:10} {r.fid:8.2f} {r.coverage:6.3f} {r.style_accuracy:6.3f} "
                     f"{r.position['fid']:8.2f} {r.position['coverage']:8.2f} {r.detectability.accuracy:6.3f}")
    print("\n".join(lines))
    assert real.classifier.val_accuracy > 0.9  # features worth trusting
    # at the ceiling (fresh draws sit a little below it: the ceiling's train images taught the features)
    assert real.position["fid"] > 0.75 and real.position["coverage"] > 0.8
    assert real.detectability.accuracy < 0.65  # a detector cannot tell fresh real images apart (chance: 0.5)
    for name, r in bad.items():
        assert r.fid > 4 * real.fid, (name, r.fid, real.fid)
        assert r.coverage < real.coverage - 0.5, (name, r.coverage, real.coverage)
        assert r.position["fid"] < 0.25 and r.position["coverage"] < 0.35, (name, r.position)  # near the floor
        assert r.detectability.accuracy > 0.9 and r.position["detectability"] < 0.2, (name, r.detectability)
        assert all(s.detectability > 0.85 for s in r.per_style), (name, [s.detectability for s in r.per_style])
