"""stylegan through Ray: train a base, fine-tune it onto a new style, blend the two,
and run a batch job with every style control, each image reproducible from its row."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ray_gan import checkpoint as ckpt
from ray_gan import storage
from ray_gan.batch.job import BatchError, read_manifest, run_batch
from ray_gan.checkpoint import load_generator, read_model_info
from ray_gan.config import BatchJobSpec, FinetuneConfig, MixSpec, PrepareConfig, TrainConfig
from ray_gan.data.demo import write_demo_data
from ray_gan.data.prepare import prepare
from ray_gan.generate.directions import compute_directions, save_directions
from ray_gan.generate.render import Renderer
from ray_gan.models import build_generator
from ray_gan.style_weights.blend import blend_models
from ray_gan.train.trainer import TrainError, finetune, train

pytestmark = pytest.mark.integration

TINY = {"workers": 2, "batch_size": 8, "log_every": 1, "g_channels": 8, "d_channels": 8}


def _dataset(root, styles: set[str]) -> str:
    raw = root / "raw"
    write_demo_data(lambda key, data: key.split("/")[0] in styles and storage.write_bytes(str(raw / key), data),
                    per_style=24, size=32, seed=1)
    prepare(PrepareConfig(src=str(raw), dst=str(root / "ds"), resolution=16, val_fraction=0.25))
    return str(root / "ds")


@pytest.fixture(scope="module")
def base(ray_cluster, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("style-weights")
    data = _dataset(root / "a", {"flat", "outline", "stripes"})
    out = str(root / "base")
    train(TrainConfig.from_flat(dataset=data, out=out, arch="stylegan", steps=4, checkpoint_every=4, **TINY))
    return {"root": root, "data": data, "model": out}


def test_stylegan_trains_through_ray_with_its_regularisers(base):
    info = read_model_info(base["model"])
    assert info.config.arch == "stylegan" and info.step == 4 and info.styles == ["flat", "outline", "stripes"]
    hp = info.raw["hyperparameters"]
    assert hp["beta1"] == 0.0 and hp["r1_gamma"] > 0  # stylegan defaults: Adam β1 0, lazy R1 on
    G, _ = load_generator(base["model"])
    assert G.w_avg.abs().sum() > 0  # per-style mean latents tracked during training
    assert not torch.allclose(G.w_avg[0], G.w_avg[1])


def test_finetune_starts_from_the_base_and_maps_styles_by_name(base, untrained_model):
    root = base["root"]
    data = _dataset(root / "b", {"gradient", "flat"})
    out = str(root / "child")
    finetune(FinetuneConfig.from_flat(base=base["model"], data=data, out=out, steps=2, checkpoint_every=2, workers=2, batch_size=8, freeze_d=1))
    info = read_model_info(out)
    # FreezeD: D's from-RGB layer is the base's, bit for bit; the layers above it adapted
    d_child = ckpt.read_state(info.checkpoint, "discriminator")
    d_base = ckpt.read_state(read_model_info(base["model"]).checkpoint, "discriminator")
    assert torch.equal(d_child["from_rgb.weight"], d_base["from_rgb.weight"])
    assert not torch.equal(d_child["fc.weight"], d_base["fc.weight"])
    # a depth the base's D does not have is refused before any training
    with pytest.raises(TrainError, match="has 3 input-side layers"):
        finetune(FinetuneConfig.from_flat(base=base["model"], data=data, out=str(root / "too-deep"), steps=2, workers=2, batch_size=8, freeze_d=4))
    assert info.styles == ["flat", "gradient"]
    assert info.raw["init_from"]["model"] == read_model_info(base["model"]).uri
    assert info.raw["train_config"]["optim"]["augment"] == "diffaugment"
    child, _ = load_generator(out)
    parent, pinfo = load_generator(base["model"])
    fresh = build_generator(info.config)
    # two steps from the base's weights stay near them; a fresh init is far away
    assert (child.const - parent.const).norm() < 0.2 * (fresh.const - parent.const).norm()
    # the blend of base and child: alpha 0 is the base, image for image
    blended = blend_models(base["model"], out, str(root / "blend0"), alpha=0.0)
    assert blended.styles == pinfo.styles
    a = Renderer(base["model"], "cpu").render([0, 2], [5, 6])
    assert np.array_equal(Renderer(blended.uri, "cpu").render([0, 2], [5, 6]), a)
    half = blend_models(base["model"], out, str(root / "blend-fine"), alpha=1.0, layers=["fine"])
    assert not np.array_equal(Renderer(half.uri, "cpu").render([0, 2], [5, 6]), a)
    # a whole-model blend carries a D (the parents' interpolated), so it fine-tunes like a trained model
    mid = blend_models(base["model"], out, str(root / "blend-mid"), alpha=0.5)
    assert mid.raw["blend"]["discriminator"] == "lerp(A, B, 0.5)"
    finetune(FinetuneConfig.from_flat(base=mid.uri, data=data, out=str(root / "from-blend"), steps=2, checkpoint_every=2, workers=2, batch_size=8))
    assert read_model_info(str(root / "from-blend")).raw["init_from"]["model"] == mid.uri
    # a generator-only model is refused before any training, with the reason
    g_only = untrained_model(str(root / "g-only"), ["flat", "gradient"], arch="stylegan")
    with pytest.raises(TrainError, match="no discriminator weights"):
        finetune(FinetuneConfig.from_flat(base=g_only, data=data, out=str(root / "from-g-only"), steps=2, workers=2, batch_size=8))


def test_batch_with_style_controls_is_reproducible_from_each_row(base):
    G, info = load_generator(base["model"])
    d, mean = compute_directions(G, len(info.styles), components=3, samples=500)
    save_directions(info, d, mean, 500)
    out = str(base["root"] / "batch")
    spec = BatchJobSpec(job_id="controls", model=base["model"], variants_per_style=5, chunk_size=3, replicas=1,
                        truncation={"flat": 0.5}, mix={"layers": "coarse", "style": "stripes", "seed_offset": 100},
                        edits={"pc1": 1.5}, output=out)
    result = run_batch(spec)
    assert result.images == 15
    from ray_gan.batch.verify import verify_output

    assert verify_output(out).ok, verify_output(out).summary()
    rows = read_manifest(out).to_pylist()
    assert len(rows) == 15 and len({r["image_id"] for r in rows}) == 15
    r = Renderer(base["model"], "cpu")
    for row in rows[::4]:
        assert row["truncation"] == (0.5 if row["style"] == "flat" else 1.0)
        assert row["mix_style"] == "stripes" and row["mix_seed"] == row["seed"] + 100
        again = r.render([row["style_index"]], [row["seed"]], row["truncation"],
                         mix=MixSpec(layers=row["mix_layers"], style=row["mix_style"], seed=row["mix_seed"]),
                         edits=json.loads(row["edits"]))[0]
        stored = np.asarray(Image.open(io.BytesIO(storage.read_bytes(row["image_uri"]))))
        assert np.array_equal(again, stored)
    # a control the model cannot apply fails before any work, with a message
    with pytest.raises((BatchError, ValueError), match="unknown edit"):
        run_batch(spec.model_copy(update={"edits": {"nope": 1.0}, "output": out + "-bad"}))
