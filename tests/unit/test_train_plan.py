"""plan_run: what a training run will do, decided from the config, dataset.json and
model.json alone (no storage, no Ray)."""

from __future__ import annotations

import pytest

from ray_gan.checkpoint import ModelInfo
from ray_gan.config import TrainConfig
from ray_gan.data.dataset import DatasetInfo
from ray_gan.train.plan import RunPlan, TrainError, plan_run

STYLES = ["flat", "outline", "stripes"]


def dataset(n_train: int = 300, styles=STYLES, checksum: str = "c1", channels: int = 3) -> DatasetInfo:
    shards = [{"path": "train-0.parquet", "split": "train"}, {"path": "val-0.parquet", "split": "val"}]
    return DatasetInfo(uri="/d", styles=list(styles), resolution=32, counts={"train": {"total": n_train}},
                       shards=shards, checksum=checksum, raw={"channels": channels})


def model(step: int = 500, arch: str = "stylegan", styles=STYLES, trained: bool = True, **raw) -> ModelInfo:
    mcfg = TrainConfig.from_flat(dataset="/d", out="/m", arch=arch).new_model_config(len(styles), 32)
    doc = {"dataset": {"uri": "/d", "checksum": "c1"} if trained else None,
           "train_config": {"arch": arch, "freeze_d": 0}, "hyperparameters": {"lr_g": 0.1}, **raw}
    return ModelInfo(uri="/m", config=mcfg, styles=list(styles), step=step, checkpoint="/m/checkpoints/step-1",
                     weights_sha256="ab" * 32, raw=doc)


def cfg(**flat) -> TrainConfig:
    return TrainConfig.from_flat(dataset="/d", out="/m", **flat)


def test_a_fresh_run_builds_the_preset_model_and_its_hyperparameters():
    plan = plan_run(cfg(g_channels=8, batch_size=32), dataset())
    assert plan.resume_step is None and plan.init_from is None and not plan.done and not plan.notes
    assert (plan.model.arch, plan.model.g_channels, plan.model.d_channels, plan.model.pack) == ("stylegan", 8, 16, 2)
    assert plan.hyperparameters["lr_g"] == 0.0025 and plan.hyperparameters["r1_gamma"] == pytest.approx(0.0002 * 32**2 / 64)
    assert plan.val_shards == ["/d/val-0.parquet"] and plan.image_bytes == 32 * 32 * 3
    # what workers get survives the trip through a plain dict
    assert RunPlan.model_validate(plan.model_dump()) == plan


def test_an_existing_model_needs_resume_and_matching_styles():
    with pytest.raises(TrainError, match="pass --resume"):
        plan_run(cfg(), dataset(), model())
    with pytest.raises(TrainError, match="model styles"):
        plan_run(cfg(resume=True), dataset(styles=["a", "b"]), model())
    with pytest.raises(TrainError, match="cannot be resumed"):
        plan_run(cfg(resume=True), dataset(), model(trained=False))


def test_a_resume_keeps_the_models_architecture_and_says_what_it_ignores():
    plan = plan_run(cfg(resume=True, arch="dcgan", g_channels=64, steps=900), dataset(checksum="c2"), model())
    assert plan.resume_step == 500 and plan.model.arch == "stylegan" and plan.train.arch == "stylegan"
    assert plan.model.g_channels == 16
    text = "\n".join(plan.notes)
    assert "--arch 'dcgan' ignored" in text and "g_channels is 16" in text and "checksum differs" in text


def test_a_model_already_at_its_steps_has_nothing_to_do():
    plan = plan_run(cfg(resume=True, steps=500), dataset(), model(step=500))
    assert plan.done and "nothing to do" in plan.notes[-1]
    assert plan.hyperparameters == {"lr_g": 0.1}  # the model's own, as recorded


def test_fine_tuning_takes_the_bases_architecture_for_the_new_styles():
    base = model(styles=["a", "flat"])
    plan = plan_run(cfg(init_from="/base", freeze_d=1, arch="dcgan"), dataset(), base=base)
    assert plan.init_from.styles == ["a", "flat"] and plan.init_from.checkpoint == base.checkpoint
    assert (plan.model.arch, plan.model.num_styles, plan.train.arch) == ("stylegan", 3, "stylegan")
    assert "style rows kept for ['flat']" in plan.notes[0]
    with pytest.raises(TrainError, match="input-side layers"):
        plan_run(cfg(init_from="/base", freeze_d=9), dataset(), base=base)


def test_bad_combinations_are_refused_before_ray_starts():
    with pytest.raises(TrainError, match="fewer than one step needs"):
        plan_run(cfg(batch_size=64, workers=2), dataset(n_train=100))
    with pytest.raises(TrainError, match="style_loss needs a conditional stylegan"):
        plan_run(cfg(arch="dcgan", style_loss=1.0), dataset())
    with pytest.raises(TrainError, match="too small for discriminator packs"):
        plan_run(cfg(pack=4, batch_size=8), dataset())
    with pytest.raises(TrainError, match="bad model settings"):
        plan_run(cfg(arch="dcgan", pack=2), dataset())


def test_style_balance_weights_come_from_the_train_split_per_style():
    ds = dataset()
    ds.counts["train"]["per_style"] = {"flat": 210, "outline": 60, "stripes": 30}
    assert plan_run(cfg(), ds).style_weights == [1.0, 1.0, 1.0]
    w = plan_run(cfg(style_balance="uniform"), ds).style_weights
    assert w == pytest.approx([300 / 210 / 3, 300 / 60 / 3, 300 / 30 / 3])
    with pytest.raises(TrainError, match="style-balance sqrt"):
        plan_run(cfg(style_balance="sqrt"), dataset())  # a dataset.json without per-style counts


@pytest.mark.parametrize("arch", ["stylegan", "dcgan", "vanilla"])
def test_a_grey_dataset_gets_a_one_channel_model(arch):
    grey = plan_run(cfg(arch=arch), dataset(channels=1))
    assert grey.model.channels == 1
    assert any("grey" in n for n in grey.notes) == (arch != "vanilla")  # vanilla is one-channel anyway
    colour = plan_run(cfg(arch=arch), dataset())
    assert colour.model.channels == (1 if arch == "vanilla" else 3)
