import pytest
from pydantic import ValidationError

from ray_gan.config import BatchJobSpec, ModelConfig, TrainConfig, VariantsRequest


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
