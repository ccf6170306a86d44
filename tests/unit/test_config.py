"""ray_gan.config: the validated settings of every command, spec and request body."""

import pytest
from helpers import small
from pydantic import ValidationError

from ray_gan.config import BatchJobSpec, MixSpec, ModelConfig, TrainConfig, VariantsRequest


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError, match="extra"):
        BatchJobSpec(job_id="j", model="m", variants_per_style=1, output="o", varaints=3)
    with pytest.raises(ValidationError):
        VariantsRequest(styles=["a"], n=2, colour="red")


def test_ranges_and_ids():
    with pytest.raises(ValidationError):
        VariantsRequest(styles=[], n=1)
    with pytest.raises(ValidationError):
        VariantsRequest(styles=["a"], n=0)
    with pytest.raises(ValidationError, match="job_id"):
        BatchJobSpec(job_id="../etc", model="m", variants_per_style=1, output="o")
    with pytest.raises(ValidationError, match="power-of-two"):
        ModelConfig(arch="dcgan", resolution=48)


def test_vanilla_defaults_are_the_classic_mlp():
    c = ModelConfig.default_for("vanilla", num_styles=1, resolution=32)
    assert (c.z_dim, c.resolution, c.channels, c.conditional) == (100, 28, 1, False)
    assert ModelConfig.default_for("vanilla", num_styles=3, resolution=32).conditional


def test_new_stylegan_models_have_no_noise_inputs_but_stored_ones_keep_theirs():
    from ray_gan.models import build_generator

    new = ModelConfig.default_for("stylegan", num_styles=2, resolution=16)
    assert not new.noise_inputs
    stored = new.model_dump()
    del stored["noise_inputs"]  # a model.json written before the option existed
    old = ModelConfig.model_validate(stored)
    assert old.noise_inputs and any("noise_strength" in k for k in build_generator(old).state_dict())
    cfg = TrainConfig.from_flat(dataset="d", out="o", arch="stylegan", noise_inputs=True)
    assert cfg.new_model_config(2, 16).noise_inputs  # asked for explicitly
    with pytest.raises(ValidationError, match="noise_inputs is a stylegan setting"):
        ModelConfig(arch="dcgan", noise_inputs=False)


def test_resolution_must_be_power_of_two_in_range():
    with pytest.raises(ValueError, match="power-of-two"):
        ModelConfig(arch="stylegan", resolution=48)
    with pytest.raises(ValueError, match="power-of-two"):
        ModelConfig(arch="stylegan", resolution=512)


def test_hyperparameter_defaults_per_arch():
    hp = TrainConfig.from_flat(dataset="d", out="o", arch="stylegan", batch_size=32).hyperparameters(small(32), 2)
    assert hp["beta1"] == 0.0 and hp["r1_gamma"] == pytest.approx(0.0002 * 32 * 32 / 64)
    assert hp["style_loss"] == 1.0
    assert hp["mode_seeking"] == 1.0  # recorded in model.json with the rest
    assert TrainConfig.from_flat(dataset="d", out="o", arch="stylegan", batch_size=32,
                                 mode_seeking=0.0).hyperparameters(small(32), 2)["mode_seeking"] == 0.0
    dcgan = ModelConfig(arch="dcgan", num_styles=3)
    hp = TrainConfig.from_flat(dataset="d", out="o", lr_g=1e-3).hyperparameters(dcgan, 1)
    assert hp["lr_g"] == 1e-3 and hp["beta1"] == 0.5 and hp["r1_gamma"] == 0.0
    assert hp["style_loss"] == 0.0  # no style head in dcgan
    assert hp["mode_seeking"] == 0.0
    # the style loss needs stylegan's style head and two or more styles: asked for elsewhere, a clear error
    with pytest.raises(ValueError, match="style_loss needs a conditional stylegan"):
        TrainConfig.from_flat(dataset="d", out="o", style_loss=1.0).hyperparameters(dcgan, 1)
    one_style = TrainConfig.from_flat(dataset="d", out="o", arch="stylegan").hyperparameters(small(16, styles=1), 1)
    assert one_style["style_loss"] == 0.0  # default quietly off where there is nothing to classify


def test_training_packs_stylegan_by_default_as_far_as_a_batch_holds_every_style():
    def built(arch="stylegan", styles=5, **train):
        return TrainConfig.from_flat(dataset="d", out="o", arch=arch, **train).new_model_config(styles, 32)

    # packs of 2 where a worker's batch (16 by default) holds a pack of every style
    assert [built(styles=n).pack for n in (5, 8, 9, 1)] == [2, 2, 1, 2]
    assert built(styles=16, batch_size=32).pack == 2

    assert built().pack == 2 and built(styles=9).pack == 1 and built(pack=4).pack == 4
    assert built("dcgan").pack == 1
    with pytest.raises(ValueError, match="stylegan setting"):
        built("dcgan", pack=2)


def test_control_values_are_bounded_where_specs_and_bodies_are_parsed():
    from pydantic import ValidationError

    from ray_gan.config import BatchJobSpec, VariantsRequest

    for layers in ("-:", ":-", "-:-", "1:2:3", "12345:", "middle"):
        with pytest.raises(ValidationError):  # "-:" was a 500 (int("-")) in the HTTP route
            MixSpec(layers=layers)
    for layers in ("coarse", "fine", "all", ":", "1:", ":-1", "-2:", "0:3"):
        assert MixSpec(layers=layers).layers == layers
    assert MixSpec(seed=2**62).seed == 2**62
    for bad in ({"seed": 10**23}, {"seed": 2**62 + 1}, {"seed_offset": 2**62}):  # seeds overflowed torch / int64
        with pytest.raises(ValidationError):
            MixSpec(**bad)
    body = {"styles": ["a"]}
    spec = {"job_id": "j", "model": "m", "variants_per_style": 1, "output": "o"}
    with pytest.raises(ValidationError):
        BatchJobSpec(**spec, seed_base=2**62 + 1)
    for model, base in ((VariantsRequest, body), (BatchJobSpec, spec)):
        assert model(**base, edits={"pc0": -100, "thick.ness_2": 100}).edits["pc0"] == -100
        for edits in ({"pc0": float("inf")}, {"pc0": float("nan")}, {"pc0": -1e3}, {"bad name": 1.0}, {"": 1.0},
                      {"x" * 129: 1.0}, {f"pc{i}": 1.0 for i in range(33)}):
            with pytest.raises(ValidationError):
                model(**base, edits=edits)
    # JSON as FastAPI reads a body: Infinity and NaN are numbers to Python's json module
    import json

    with pytest.raises(ValidationError, match="finite"):
        VariantsRequest(**json.loads('{"styles": ["a"], "edits": {"pc0": Infinity}}'))
