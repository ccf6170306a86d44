"""Model directories written before the one-owner-per-concern refactor still load,
render the same images, plan a resume and restore their training state
(tests/fixtures/README.md)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ray_gan import checkpoint as ckpt
from ray_gan.config import TrainConfig
from ray_gan.data.dataset import read_dataset_info
from ray_gan.generate.render import Renderer
from ray_gan.models import build_discriminator, build_generator
from ray_gan.train.plan import plan_run
from ray_gan.train.step import GANStep

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODEL, DATASET = str(FIXTURES / "model-v1"), str(FIXTURES / "dataset-v1")


def test_an_old_model_directory_renders_the_images_it_rendered_then():
    expected = json.loads((FIXTURES / "model-v1-renders.json").read_text())
    grid = np.asarray(Image.open(io.BytesIO((FIXTURES / "model-v1-renders.png").read_bytes())).convert("RGB"))
    images = Renderer(MODEL, "cpu").render(expected["styles"], expected["seeds"], expected["truncation"])
    got = np.concatenate(list(images), axis=1)
    assert got.shape == grid.shape == (16, 64, 3)
    # the same bytes on this machine; other CPUs may round a last bit differently
    assert np.abs(got.astype(int) - grid.astype(int)).max() <= 1


def test_an_old_model_plans_a_resume_and_restores_its_training_state():
    info = ckpt.read_model_info(MODEL)
    assert "run" not in info.raw["train_config"]  # written with the flat train config of the time
    cfg = TrainConfig.from_flat(dataset=DATASET, out=MODEL, arch=info.config.arch, resume=True, steps=4,
                                batch_size=8, workers=1)
    plan = plan_run(cfg, read_dataset_info(DATASET), info)
    assert (plan.resume_step, plan.model, plan.done) == (2, info.config, False)

    state = ckpt.read_training_state(MODEL, 2, rank=0)  # every weights file checked against its sha256
    assert state.rng is not None and [h["step"] for h in state.history] == [2]
    G, D = build_generator(plan.model), build_discriminator(plan.model)
    G.load_state_dict(state.generator)
    D.load_state_dict(state.discriminator)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    G_ema.load_state_dict(state.generator_ema)
    step = GANStep(G, D, G_ema, plan.model, plan.train, torch.device("cpu"))
    step.load_optimizer_state(state.optimizer)
    torch.manual_seed(0)
    x, y = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 4
    assert torch.isfinite(step.step(x, y, 2)).all()
