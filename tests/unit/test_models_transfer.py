"""ray_gan.models.transfer: copying a base model's weights into a model of other styles."""

import pytest
import torch

from ray_gan.config import ModelConfig
from ray_gan.models import build_generator
from ray_gan.models.transfer import transfer_state


def test_transfer_state_matches_style_rows_by_name():
    cfg = ModelConfig(arch="stylegan", resolution=8, num_styles=3, g_channels=8, z_dim=8, w_dim=8, embed_dim=4,
                      mapping_layers=1, max_channels=16)
    base = build_generator(cfg)
    child = build_generator(cfg.model_copy(update={"num_styles": 2}))
    counts = transfer_state(child, base.state_dict(), ["a", "b", "c"], ["c", "new"])
    emb, base_emb = child.mapping.embed.weight, base.mapping.embed.weight
    assert torch.equal(emb[0], base_emb[2])  # "c" keeps its row
    assert torch.allclose(emb[1], base_emb.mean(dim=0))  # a new style starts at the mean
    assert counts["style_rows_copied"] == 2 and counts["style_rows_new"] == 2  # embed + w_avg
    assert torch.equal(child.const, base.const)


def test_transfer_state_starts_a_head_the_base_lacks_fresh_but_refuses_other_gaps():
    from ray_gan.models import build_discriminator

    cfg = ModelConfig(arch="stylegan", resolution=8, num_styles=2, d_channels=8, max_channels=16)
    base, child = build_discriminator(cfg), build_discriminator(cfg)
    before = child.classify.weight.detach().clone()
    old = {k: v for k, v in base.state_dict().items() if not k.startswith("classify.")}  # pre-style-head base
    counts = transfer_state(child, old, ["a", "b"], ["a", "b"])
    assert counts["initialised"] == 2  # classify.weight, classify.bias
    assert torch.equal(child.classify.weight, before)
    assert torch.equal(child.embed.weight, base.embed.weight)
    del old["out.weight"]  # anything else missing is a different architecture
    with pytest.raises(ValueError, match="out.weight"):
        transfer_state(child, old, ["a", "b"], ["a", "b"])
