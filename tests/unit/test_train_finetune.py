"""ray_gan.train.finetune: FreezeD (freeze_input_layers) and where it may be asked for."""

import pytest
from helpers import small
from helpers import stepper as _stepper

from ray_gan.config import TrainConfig
from ray_gan.models import build_discriminator


def test_freeze_d_is_for_fine_tuning_and_within_the_discriminators_depth():
    with pytest.raises(ValueError, match="for fine-tuning"):
        TrainConfig.from_flat(dataset="d", out="o", freeze_d=1)
    depth = len(build_discriminator(small()).input_layers())
    assert depth == 3  # from-RGB and the 16 → 8 and 8 → 4 blocks
    with pytest.raises(ValueError, match="has 3 input-side layers"):
        _stepper(freeze_d=4, init_from="base-model")
